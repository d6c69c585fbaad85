package redis

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/redistest"
)

// relayWait bounds each wait of the relay tests; none takes it unless broken.
const relayWait = 15 * time.Second

// wakeLog records what a Relay wakes.
type wakeLog struct {
	mu    sync.Mutex
	local []string
	all   int
}

func (w *wakeLog) NotifyLocal(principal string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.local = append(w.local, principal)
}

func (w *wakeLog) NotifyAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all++
}

func (w *wakeLog) snapshot() ([]string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.local), w.all
}

// waitUntil polls cond against relayWait.
func (w *wakeLog) waitUntil(t *testing.T, what string, cond func(local []string, all int) bool) {
	t.Helper()
	deadline := time.Now().Add(relayWait)
	for {
		local, all := w.snapshot()
		if cond(local, all) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (local wake-ups %v, wake-alls %d)", what, relayWait, local, all)
		}
		time.Sleep(5 * time.Millisecond) // polling against a deadline
	}
}

// runRelay opens a relay on srv and runs it until the test ends.
func runRelay(t *testing.T, srv *redistest.Server, opts RelayOptions) (*Relay, *wakeLog) {
	t.Helper()
	r, err := NewRelay(srv.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	w := &wakeLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, w); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	// Subscribed once the first wake-all (on subscribing) has come.
	w.waitUntil(t, "first subscription", func(_ []string, all int) bool { return all >= 1 })
	return r, w
}

// TestRelayAcrossReplicas: a wake-up published by one relay reaches the
// other, not the publisher itself, and not a relay with another key prefix;
// after Redis is killed and restarted, the relays subscribe again on their
// own, wake every waiter once for what they may have missed, and carry
// wake-ups again.
func TestRelayAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	long := RelayOptions{Recheck: time.Hour}
	a, fromA := runRelay(t, srv, long)
	_, fromB := runRelay(t, srv, long)
	other := long
	other.KeyPrefix = "other:"
	_, fromOther := runRelay(t, srv, other)

	a.Publish("alice")
	fromB.waitUntil(t, "B woken for alice", func(local []string, _ int) bool { return slices.Equal(local, []string{"alice"}) })
	if local, _ := fromA.snapshot(); len(local) != 0 {
		t.Errorf("A was woken by its own wake-up: %v", local)
	}
	if local, _ := fromOther.snapshot(); len(local) != 0 {
		t.Errorf("a relay with another key prefix was woken: %v", local)
	}

	_, allBefore := fromB.snapshot()
	srv.Kill()
	a.Publish("bob") // lost or retried: either way B must wake bob's waiters
	srv.Restart()
	fromB.waitUntil(t, "B resubscribed and woke everyone", func(_ []string, all int) bool { return all > allBefore })
	a.Publish("carol")
	fromB.waitUntil(t, "B woken for carol after the restart", func(local []string, _ int) bool { return slices.Contains(local, "carol") })
}

// TestRelayRecheck: with nothing published, the relay still wakes every
// waiter every Recheck.
func TestRelayRecheck(t *testing.T) {
	srv := redistest.Start(t)
	_, w := runRelay(t, srv, RelayOptions{Recheck: 20 * time.Millisecond})
	w.waitUntil(t, "periodic wake-alls", func(_ []string, all int) bool { return all >= 4 })
}

// TestRelayCoalesces: many wake-ups for one principal queued before the
// relay runs go out as one.
func TestRelayCoalesces(t *testing.T) {
	srv := redistest.Start(t)
	long := RelayOptions{Recheck: time.Hour}
	_, w := runRelay(t, srv, long)
	r, err := NewRelay(srv.URL(), long)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for range 100 {
		r.Publish("alice")
	}
	r.Publish("bob")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx, &wakeLog{}); close(done) }()
	defer func() { cancel(); <-done }()
	w.waitUntil(t, "alice and bob", func(local []string, _ int) bool {
		return slices.Contains(local, "alice") && slices.Contains(local, "bob")
	})
	if local, _ := w.snapshot(); len(local) != 2 {
		t.Errorf("wake-ups received %v, want alice and bob once each", local)
	}
}
