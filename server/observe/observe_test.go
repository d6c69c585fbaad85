package observe

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
)

// fakeClock is a clock the tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const (
	testPrincipal = "alice"
	testLabel     = "hooks"
)

// openStore opens a real bbolt store in the test's directory on clock,
// with one registration, testLabel of testPrincipal.
func openStore(t *testing.T, clock *fakeClock) store.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{Now: clock.Now, NoSync: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	err = st.PutRegistration(t.Context(), store.Registration{
		ID: "wh_test", Principal: testPrincipal, Label: testLabel, Provider: "generic",
		Secrets: []string{"whsec_test"}, CreatedAt: clock.Now(),
	})
	if err != nil {
		t.Fatalf("put registration: %v", err)
	}
	return st
}

// event is an event of testLabel whose ID carries the clock's time.
func event(clock *fakeClock, seq uint64) store.Event {
	return store.Event{ID: store.ID{MS: uint64(clock.Now().UnixMilli()), Seq: seq}, Label: testLabel}
}

// accept reports one accepted webhook of testLabel.
func accept(o *Observer, clock *fakeClock) {
	o.Webhook(bridge.WebhookReport{
		Outcome: bridge.OutcomeAccepted, Provider: "generic", Principal: testPrincipal, Label: testLabel,
		ReceivedAt: clock.Now(),
	})
}

// scrape returns reg's text exposition, as GET /metrics serves it.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// sample returns the value of the series named exactly series (name and
// labels in exposition order) in text; ok is false when it is absent.
func sample(text, series string) (v float64, ok bool) {
	for line := range strings.Lines(text) {
		if rest, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// wantSamples fails unless a scrape of reg has each series with its value.
func wantSamples(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	text := scrape(t, reg)
	for series, w := range want {
		if v, ok := sample(text, series); !ok || v != w {
			t.Errorf("scrape: %s = %v (present: %v), want %v", series, v, ok, w)
		}
	}
}

// statsOf returns testLabel's stats over the last hour.
func statsOf(t *testing.T, o *Observer) RegistrationStats {
	t.Helper()
	stats, err := o.Stats(t.Context(), testPrincipal, testLabel, time.Hour)
	if err != nil || len(stats) != 1 {
		t.Fatalf("Stats = %+v, %v; want one registration", stats, err)
	}
	return stats[0]
}

// TestMetricsOffDoesNoMetricWork: an observer built without a Registerer
// (--metrics=false) records into the no-op, leaves the store unwrapped
// (so store calls are not timed), and still keeps the stats get_stats and
// /v1/stats report. The same traffic with a Registerer does reach the
// collectors, so the test's traffic is traffic metrics would count.
func TestMetricsOffDoesNoMetricWork(t *testing.T) {
	clock := newFakeClock()
	st := openStore(t, clock)
	traffic := func(o *Observer) {
		accept(o, clock)
		e := event(clock, 1)
		o.Leased(testPrincipal, []store.Event{e}, clock.Now().Add(time.Minute))
		o.Acked(testPrincipal, []store.ID{e.ID}, 1)
		o.Subscribed("sse", "http", 1)
		o.Pushed("sse")
		o.CallbackDelivered("ok")
	}

	off := New(Options{Store: st, Now: clock.Now})
	if _, ok := off.metrics.(nopMetrics); !ok {
		t.Fatalf("metrics off: the observer records into %T, want nopMetrics", off.metrics)
	}
	if got := off.InstrumentStore(st); got != st {
		t.Errorf("metrics off: InstrumentStore wrapped the store (%T); store calls would still be timed", got)
	}
	traffic(off)
	if s := statsOf(t, off); s.Accepted != 1 || s.Acked != 1 || s.ProcessingLatency == nil {
		t.Errorf("metrics off: stats %+v, want 1 accepted and 1 acked with a processing latency", s)
	}

	reg := prometheus.NewRegistry()
	on := New(Options{Store: st, Now: clock.Now, Registerer: reg})
	if _, ok := on.InstrumentStore(st).(*timedStore); !ok {
		t.Error("metrics on: InstrumentStore did not wrap the store")
	}
	traffic(on)
	wantSamples(t, reg, map[string]float64{
		`hookgate_ingress_requests_total{outcome="accepted",provider="generic"}`: 1,
		`hookgate_events_acked_total{principal="alice",webhook="hooks"}`:         1,
		`hookgate_subscribers{era="http",path="sse"}`:                            1,
		`hookgate_push_notifications_total{path="sse"}`:                          1,
		`hookgate_callback_deliveries_total{result="ok"}`:                        1,
	})
}

// TestLeasedAgainBeforeSweepCountsTheExpiry: an event whose lease ran out
// and that is leased again before a sweep noticed had two leases run out
// without an ack, not one.
func TestLeasedAgainBeforeSweepCountsTheExpiry(t *testing.T) {
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	o := New(Options{Now: clock.Now, Registerer: reg})
	e := event(clock, 1)
	o.Leased(testPrincipal, []store.Event{e}, clock.Now().Add(time.Second))
	// Past the lease, and no sweep in between: the second Leased finds the
	// first lease still held.
	clock.Advance(1500 * time.Millisecond)
	o.Leased(testPrincipal, []store.Event{e}, clock.Now().Add(time.Second))
	clock.Advance(1500 * time.Millisecond)
	o.sweep(true)

	if got := o.window(regKey{testPrincipal, testLabel}).sum(clock.Now(), time.Hour).LeaseExpired; got != 2 {
		t.Errorf("stats count %d lease expiries, want 2", got)
	}
	wantSamples(t, reg, map[string]float64{`hookgate_leases_expired_total{principal="alice",webhook="hooks"}`: 2})
}

// TestScrapeSweepsExpiredLeases: a stuck agent leases and never comes back;
// nothing else happens (no poll, ack or get_stats). A scrape alone shows
// the expiry.
func TestScrapeSweepsExpiredLeases(t *testing.T) {
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	o := New(Options{Store: openStore(t, clock), Now: clock.Now, Registerer: reg})
	accept(o, clock)
	o.Leased(testPrincipal, []store.Event{event(clock, 1), event(clock, 2)}, clock.Now().Add(time.Minute))
	clock.Advance(time.Minute + time.Second)

	wantSamples(t, reg, map[string]float64{`hookgate_leases_expired_total{principal="alice",webhook="hooks"}`: 2})
}

// TestDropRate: drops are dead letters (by nack, or by a lease finding the
// last lease run out) and events deleted by retention while unacked, over
// the events accepted; lease expiries and plain nacks are not drops, and
// the rate never exceeds 1.
func TestDropRate(t *testing.T) {
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	o := New(Options{Store: openStore(t, clock), Now: clock.Now, Registerer: reg})
	if s := statsOf(t, o); s.DropRate != nil {
		t.Fatalf("drop rate with nothing accepted or dropped = %v, want null", *s.DropRate)
	}

	var events []store.Event
	for i := range 20 {
		accept(o, clock)
		events = append(events, event(clock, uint64(i)))
	}
	o.Leased(testPrincipal, events[:4], clock.Now().Add(time.Minute))
	o.Nacked(testPrincipal, events[0].ID, false) // back in the queue: not a drop
	o.Nacked(testPrincipal, events[1].ID, true)  // dead letter 1
	clock.Advance(2 * time.Minute)               // events[2:4]: lease expired, not drops
	o.DeadLettered(store.Dropped{Principal: testPrincipal, Label: testLabel, Events: 2})
	o.Compacted(store.CompactResult{Deleted: 5, Unacked: []store.Dropped{
		{Principal: testPrincipal, Label: testLabel, Events: 3},
		{Principal: "bob", Label: testLabel, Events: 7}, // another principal's
	}})

	s := statsOf(t, o)
	if s.Accepted != 20 || s.Nacked != 2 || s.LeaseExpired != 2 || s.DeadLettered != 3 || s.ExpiredUnacked != 3 {
		t.Fatalf("stats %+v, want 20 accepted, 2 nacked, 2 lease expiries, 3 dead letters, 3 expired unacked", s)
	}
	if s.DropRate == nil || *s.DropRate != 0.3 {
		t.Errorf("drop rate %v, want (3 dead + 3 expired) / 20 = 0.3", deref(s.DropRate))
	}
	if s.ActionSuccessRate == nil || *s.ActionSuccessRate != 0 {
		t.Errorf("action success rate %v, want 0 acks / (2 nacks + 2 expiries) = 0", deref(s.ActionSuccessRate))
	}
	wantSamples(t, reg, map[string]float64{
		`hookgate_events_dead_lettered_total{principal="alice",webhook="hooks"}`:   3,
		`hookgate_events_expired_unacked_total{principal="alice",webhook="hooks"}`: 3,
		`hookgate_events_expired_unacked_total{principal="bob",webhook="hooks"}`:   7,
	})

	// An hour on, the window holds only what comes next: more drops than
	// acceptances (events accepted before the window expire in it) cap
	// the rate at 1.
	clock.Advance(time.Hour)
	accept(o, clock)
	o.Compacted(store.CompactResult{Deleted: 3, Unacked: []store.Dropped{{Principal: testPrincipal, Label: testLabel, Events: 3}}})
	if s := statsOf(t, o); s.Accepted != 1 || s.DropRate == nil || *s.DropRate != 1 {
		t.Errorf("1 accepted and 3 expired in the window: drop rate %v (stats %+v), want 1", deref(s.DropRate), s)
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}
