package clients_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/clients"
)

// TestConcurrencyKeepsLabelOrderAndRetries: with Concurrency 4 over three
// labels, handlers of different labels overlap while each label's events
// are handled one at a time, in ID order, even though every fifth event
// fails once (and is nacked with the retry delay) before it succeeds.
func TestConcurrencyKeepsLabelOrderAndRetries(t *testing.T) {
	g := startHookgate(t)
	labels := []string{"conc-a", "conc-b", "conc-c"}
	urls, secrets := make([]string, len(labels)), make([]string, len(labels))
	for i, label := range labels {
		urls[i], secrets[i] = g.register(t, label)
	}
	// Interleaved, so the poller's first batch holds every label.
	var posted []string
	for n := range 30 {
		for i := range labels {
			id, err := post(urls[i], secrets[i], n)
			if err != nil {
				t.Fatal(err)
			}
			posted = append(posted, id)
		}
	}
	// The first event of each label waits until handlers of two labels
	// have started: it passes only if the runner runs labels side by side.
	overlap := make(chan struct{})
	startedLabels := map[string]bool{}
	rc := newRecorder(t)
	var (
		mu        sync.Mutex
		order     = map[string][]string{} // label → IDs completed, in order
		running   = map[string]int{}      // label → handlers running now
		active    int
		maxActive int
		failed    = map[string]bool{}
		n         int
	)
	inner := rc.handler(0, nil)
	handler := func(ctx context.Context, e clients.Event) error {
		mu.Lock()
		n++
		fail := n%5 == 0 && !failed[e.ID]
		first := !startedLabels[e.Label]
		startedLabels[e.Label] = true
		if len(startedLabels) == 2 {
			close(overlap)
			startedLabels["(closed)"] = true
		}
		running[e.Label]++
		active++
		maxActive = max(maxActive, active)
		if running[e.Label] > 1 {
			t.Errorf("two handlers at once on label %s", e.Label)
		}
		mu.Unlock()
		if first {
			select {
			case <-overlap:
			case <-time.After(10 * time.Second):
				t.Errorf("the first event of %s waited 10 s and no other label's handler started", e.Label)
			}
		}
		mu.Lock()
		running[e.Label]--
		active--
		if fail {
			failed[e.ID] = true
			mu.Unlock()
			return errors.New("transient failure")
		}
		order[e.Label] = append(order[e.Label], e.ID)
		mu.Unlock()
		return inner(ctx, e)
	}
	cfg := clients.Config{
		Server: g.url, Token: g.token, // no label: every webhook's events
		Concurrency: 4,
		Retry:       clients.Backoff{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond},
		PollWait:    time.Second,
		HTTPClient:  &http.Client{Transport: rc},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- clients.NewToolPoller(cfg).Run(ctx, handler) }()
	waitUntil(t, 30*time.Second, "every event handled", func() bool { return rc.has(posted) })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	for label, ids := range order {
		for i := 1; i < len(ids); i++ {
			if !idBefore(ids[i-1], ids[i]) {
				t.Errorf("label %s: %s handled after %s", label, ids[i], ids[i-1])
			}
		}
	}
	if len(failed) == 0 || rc.method("nack_event") < len(failed) {
		t.Errorf("%d handler failures, %d nack_event calls: want a nack per failure", len(failed), rc.method("nack_event"))
	}
	t.Logf("max %d handlers at once; %d failures retried", maxActive, len(failed))
}

// TestRefusalsStopTheDriver: what no retry can fix ends Run with an error
// at once instead of retrying forever: a bad token, an unknown label.
func TestRefusalsStopTheDriver(t *testing.T) {
	g := startHookgate(t)
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			for _, cfg := range []clients.Config{
				{Server: g.url, Token: "hg_not_a_token", Label: "orders"},
				{Server: g.url, Token: g.token, Label: "no-such-label"},
			} {
				if d.name == "tool-poller" && cfg.Token == g.token {
					continue // poll_events with an unknown label is simply empty
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := d.new(cfg).Run(ctx, func(context.Context, clients.Event) error { return nil })
				cancel()
				if err == nil || errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("token %.6s…, label %s: Run returned %v, want a prompt error", cfg.Token, cfg.Label, err)
				}
			}
		})
	}
}

// TestToolPollerStopsWithoutNacks: when a tool poller stops, the events it
// took but whose handler never finished are not handed back with
// nack_event (a nack counts as one in the stats, and at an event's last
// allowed attempt dead-letters it though no handler saw it through): their
// lease runs out and they come back, here to a second run.
func TestToolPollerStopsWithoutNacks(t *testing.T) {
	g := startHookgate(t)
	label := "stopping"
	url, secret := g.register(t, label)
	ids, err := postMany(url, secret, 5)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRecorder(t)
	cfg := clients.Config{
		Server: g.url, Token: g.token, Label: label,
		PollWait:   time.Second,
		HTTPClient: &http.Client{Transport: rc},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- clients.NewToolPoller(cfg).Run(ctx, func(ctx context.Context, e clients.Event) error {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done() // the program stops while this handler runs
			return ctx.Err()
		})
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("no handler started")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	if n := rc.method("nack_event"); n != 0 {
		t.Errorf("the stopping poller sent %d nack_event calls for events no handler finished", n)
	}
	if n := rc.method("ack_event"); n != 0 {
		t.Errorf("the stopping poller sent %d ack_event calls, and no handler finished", n)
	}

	// Once their lease runs out (2 s on the test server) they come back.
	rc2 := newRecorder(t)
	cfg.HTTPClient = &http.Client{Transport: rc2}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { done <- clients.NewToolPoller(cfg).Run(ctx2, rc2.handler(0, nil)) }()
	waitUntil(t, 30*time.Second, "every event handled by the second run", func() bool { return rc2.has(ids) })
	cancel2()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("second run returned %v", err)
	}
}
