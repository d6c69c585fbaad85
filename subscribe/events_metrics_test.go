package subscribe_test

import (
	"bytes"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/subscribe"
)

// callbackCounts is a subscribe.CallbackMetrics that counts results.
type callbackCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callbackCounts) CallbackDelivered(result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[result]++
}

func (c *callbackCounts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// TestEventsCallbackMetrics: every webhook-mode delivery attempt is
// counted by its result: a 2xx is ok; a failure with attempts left is a
// retry; a 410 is refused; the last failed attempt is abandoned. The
// harness allows 4 attempts.
func TestEventsCallbackMetrics(t *testing.T) {
	counts := &callbackCounts{n: map[string]int{}}
	env := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.Metrics = counts })
	env.register("alice", "orders")
	var flakyTries atomic.Int32
	rc := newReceiver(t, answerFor(func(r received) int {
		switch {
		case bytes.Contains(r.body, []byte(`"flaky"`)):
			if flakyTries.Add(1) == 1 {
				return http.StatusServiceUnavailable
			}
		case bytes.Contains(r.body, []byte(`"refused"`)):
			return http.StatusGone
		case bytes.Contains(r.body, []byte(`"broken"`)):
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}))
	env.mustCall(alice, "events/subscribe", subParams("orders", nil, rc.url("/m"), newSecret(32)))
	for _, typ := range []string{"fine", "flaky", "refused", "broken"} {
		env.publish("alice", "orders", typ, "", "")
	}
	want := map[string]int{
		subscribe.CallbackOK:        2, // fine, and flaky's second attempt
		subscribe.CallbackRetry:     4, // flaky's first, broken's first three
		subscribe.CallbackRefused:   1,
		subscribe.CallbackAbandoned: 1, // broken's fourth
	}
	if err := waitFor(10*time.Second, func() bool { return maps.Equal(counts.snapshot(), want) }); err != nil {
		t.Fatalf("callback results %v, want %v (%d requests received)", counts.snapshot(), want, len(rc.deliveries()))
	}
}
