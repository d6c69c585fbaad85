package clients_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/clients"
)

// TestSwitchPollerToListenerIsOneCall proves the promise of the package:
// a program moves from the tool poller to the 2026 listener by changing
// one constructor call. The two examples are the same program; outside
// their doc comments they differ in exactly that line. Then one handler,
// the same value, runs under each constructor against a real hookgate,
// and the wire shows each really used its own path.
func TestSwitchPollerToListenerIsOneCall(t *testing.T) {
	poll, err := os.ReadFile("examples/poll/main.go")
	if err != nil {
		t.Fatal(err)
	}
	push, err := os.ReadFile("examples/push/main.go")
	if err != nil {
		t.Fatal(err)
	}
	a, b := codeLines(string(poll)), codeLines(string(push))
	if len(a) != len(b) {
		t.Fatalf("examples/poll has %d code lines, examples/push %d: more than the constructor differs", len(a), len(b))
	}
	var diffs []string
	for i := range a {
		if a[i] != b[i] {
			diffs = append(diffs, a[i]+" → "+b[i])
		}
	}
	if len(diffs) != 1 || !strings.Contains(diffs[0], "clients.NewToolPoller(cfg)") || !strings.Contains(diffs[0], "clients.NewListener(cfg)") {
		t.Fatalf("the examples differ in %q; want only the constructor call", diffs)
	}

	g := startHookgate(t)
	rc := newRecorder(t)
	handler := rc.handler(0, nil) // the one handler, written once
	for _, step := range []struct {
		name        string
		newDriver   func(clients.Config) clients.Driver
		used, avoid string
	}{
		{"poller", clients.NewToolPoller, "poll_events", "subscriptions/listen"},
		{"listener", clients.NewListener, "subscriptions/listen", "poll_events"},
	} {
		label := "switch-" + step.name
		url, secret := g.register(t, label)
		used, avoid := rc.method(step.used), rc.method(step.avoid)
		cfg := clients.Config{Server: g.url, Token: g.token, Label: label, PollWait: time.Second, HTTPClient: &http.Client{Transport: rc}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- step.newDriver(cfg).Run(ctx, handler) }()
		ids, err := postMany(url, secret, 5)
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, step.name+" handled the events", func() bool { return rc.has(ids) })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Run returned %v", step.name, err)
		}
		used, avoid = rc.method(step.used)-used, rc.method(step.avoid)-avoid
		if used == 0 || avoid != 0 {
			t.Errorf("%s: %s called %d times, %s %d times", step.name, step.used, used, step.avoid, avoid)
		}
	}
}

// codeLines is src without comment lines and blank lines.
func codeLines(src string) []string {
	var out []string
	for line := range strings.Lines(src) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "//") {
			continue
		}
		out = append(out, line)
	}
	return out
}

// cutter cuts open subscriptions/listen responses on demand, as a proxy
// timeout or a redeploy would: the client's read fails, and the SDK
// silently drops the subscription.
type cutter struct {
	base http.RoundTripper
	mu   sync.Mutex
	open []io.Closer
}

func (c *cutter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil && r.Header.Get("Mcp-Method") == "subscriptions/listen" {
		c.mu.Lock()
		c.open = append(c.open, resp.Body)
		c.mu.Unlock()
	}
	return resp, err
}

func (c *cutter) opened() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.open {
		_ = b.Close()
	}
	c.open = nil
}

// TestListenerSurvivesSilentCut: after its listen stream is cut, the 2026
// listener notices (the SDK would not), listens again and catches up, so
// events stored after the cut arrive without waiting for a resync.
func TestListenerSurvivesSilentCut(t *testing.T) {
	g := startHookgate(t)
	url, secret := g.register(t, "cut")
	rc := newRecorder(t)
	cut := &cutter{base: rc}
	cfg := clients.Config{
		Server: g.url, Token: g.token, Label: "cut",
		Resync:     time.Hour, // only the cut detection can bring the later events
		HTTPClient: &http.Client{Transport: cut},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- clients.NewListener(cfg).Run(ctx, rc.handler(0, nil)) }()

	// Once a listen is open, events posted can only arrive through it (or
	// the catch-up read right after its acknowledgement): either way the
	// listen is live when they have been handled.
	waitUntil(t, 10*time.Second, "a listen open", func() bool { return cut.opened() > 0 })
	first, err := postMany(url, secret, 3)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "events before the cut", func() bool { return rc.has(first) })
	listens := rc.method("subscriptions/listen")
	cut.cut()
	waitUntil(t, 10*time.Second, "a new listen after the cut", func() bool { return rc.method("subscriptions/listen") > listens })
	second, err := postMany(url, secret, 3)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "events after the cut", func() bool { return rc.has(second) })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
}
