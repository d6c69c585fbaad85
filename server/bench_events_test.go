package server_test

// Benchmark of the MCP Events extension's webhook mode (scripts/bench.sh
// puts its figures in BENCHMARKS.md). It follows bench_push_test.go's
// conventions: the real binary, loopback only, one fixed measurement per
// invocation (`-benchtime 1x`), figures via b.ReportMetric, ns/op 0, every
// wait bounded by a deadline.
//
// The callback receiver lives in this benchmark process and verifies every
// request with the official Standard Webhooks library, as a real receiver
// would; arrivals and POST answers are read from the same clock.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const (
	// eventsBacklog is how many events BenchmarkEventsWebhook stores before
	// subscribing with a cursor before them all: draining that backlog is
	// the delivery rate.
	eventsBacklog = 5000
	// eventsRate is the paced webhook rate of the latency phases, the push
	// benchmarks' rate.
	eventsRate = pushRate
)

// BenchmarkEventsWebhook measures webhook-mode delivery of the MCP Events
// extension (events/subscribe) to a callback on loopback:
//
//   - the delivery rate: eventsBacklog events are stored first, then a
//     subscription with a cursor before them drains the backlog; the rate
//     is the events after the first divided by the time from the first
//     arrival to the last. Next to it, the same receiver handler taking
//     one signed POST after another over one keep-alive connection from
//     this process (sequential, as a subscription's deliveries are), with
//     a body of the same size, in the same run: delivery_vs_bare is the
//     ratio of the two rates.
//   - latency: signed webhooks posted open loop at eventsRate, from each
//     POST's 2xx to the callback receiving the event, p50/p99; next to it
//     the round trip of the same paced loop against the bare server (as in
//     BenchmarkPushLatency), alternating pushRounds times: p99_vs_bare_rtt
//     is the ratio of the p99s.
//
// Every event must reach the callback exactly once, in ID order, with a
// valid signature, or the benchmark fails.
func BenchmarkEventsWebhook(b *testing.B) {
	skipIfInstrumented(b)
	g := startGateway(b, b.TempDir(), "--events-allow-local-callbacks")
	hookURL, hookSecret := registerGeneric(b, g, "orders")
	gen := newLoadGen(b, hookURL, hookSecret, pushWorkers)
	bareURL, _ := startBare(b)
	bare := newLoadGen(b, bareURL+"/hooks/wh_bare", hookSecret, pushWorkers)
	ctx := b.Context()
	pid := g.cmd.Process.Pid

	secret := evSecret()
	rc := newEventsReceiver(b, secret)
	// The cursor: an event before the subscription's first.
	warm, err := gen.post(ctx)
	if err != nil {
		b.Fatal(err)
	}
	backlog := postBacklog(b, gen, eventsBacklog)

	b.ResetTimer()
	cpu := measureCPU(b, pid, func() {
		status, res := evCall(b, g.url, g.token, "events/subscribe", map[string]any{
			"name": "orders", "arguments": map[string]any{}, "cursor": warm.id,
			"delivery": map[string]any{"mode": "webhook", "url": rc.srv.URL + "/hook", "secret": secret},
		})
		if status != http.StatusOK || res.Error != nil || res.Result["truncated"] != false {
			b.Fatalf("subscribe: HTTP %d, %+v %v", status, res.Error, res.Result)
		}
		rc.arr.waitFor(b, backlog, 2*deliveryWait)
	})
	first, last := rc.span(backlog)
	drain := last.Sub(first)
	rate := float64(len(backlog)-1) / drain.Seconds()
	bareRate := rc.bareRate(b, len(backlog))

	requirePosted(b, "bare warm-up", bare.paced(ctx, eventsRate, warmUp, pushWorkers), false)
	warmRun := gen.paced(ctx, eventsRate, warmUp, pushWorkers)
	requirePosted(b, "events warm-up", warmRun, true)
	rc.arr.waitFor(b, postedIDs(warmRun), deliveryWait)
	var rtt, lat []time.Duration
	var elapsed time.Duration
	var posts int
	for range pushRounds {
		run := bare.paced(ctx, eventsRate, phase, pushWorkers)
		requirePosted(b, "bare", run, false)
		for _, p := range run.posts {
			rtt = append(rtt, p.answered.Sub(p.sent))
		}
		run = gen.paced(ctx, eventsRate, phase, pushWorkers)
		requirePosted(b, "events", run, true)
		rc.arr.waitFor(b, postedIDs(run), deliveryWait)
		lat = append(lat, rc.arr.latencies(run.posts)...)
		elapsed += run.elapsed
		posts += len(run.posts)
	}
	b.StopTimer()
	rc.verify(b, len(backlog)+len(warmRun.posts)+posts) // all after the cursor

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rate, "delivered/s")
	b.ReportMetric(bareRate, "bare_post/s")
	b.ReportMetric(rate/bareRate, "delivery_vs_bare")
	b.ReportMetric(drain.Seconds(), "drain_s")
	b.ReportMetric(perRequestUS(cpu.server, len(backlog)), "server_cpu_us/delivery")
	latStats := loadStats{latencies: lat}
	bareStats := loadStats{latencies: rtt}
	b.ReportMetric(float64(posts)/elapsed.Seconds(), "events/s")
	b.ReportMetric(latStats.quantileMS(0.50), "webhook_p50_ms")
	b.ReportMetric(latStats.quantileMS(0.99), "webhook_p99_ms")
	b.ReportMetric(earlyPct(lat), "webhook_early_pct")
	b.ReportMetric(bareStats.quantileMS(0.50), "bare_rtt_p50_ms")
	b.ReportMetric(bareStats.quantileMS(0.99), "bare_rtt_p99_ms")
	b.ReportMetric(latStats.quantileMS(0.99)/bareStats.quantileMS(0.99), "p99_vs_bare_rtt")
}

// postBacklog posts n webhooks from pushWorkers workers as fast as they
// are answered and returns their event IDs in ID order.
func postBacklog(b *testing.B, gen *loadGen, n int) []string {
	b.Helper()
	var next atomic.Int64
	ids := make([]string, n)
	errs := make(chan error, pushWorkers)
	var wg sync.WaitGroup
	for range pushWorkers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				p, err := gen.post(b.Context())
				if err != nil {
					errs <- err
					return
				}
				ids[i] = p.id
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("backlog: %v", err)
	}
	slices.SortFunc(ids, compareIDs)
	return ids
}

// postedIDs are the event IDs hookgate answered in a run.
func postedIDs(run pacedRun) []string {
	ids := make([]string, len(run.posts))
	for i, p := range run.posts {
		ids[i] = p.id
	}
	return ids
}

// eventsReceiver is a webhook callback on loopback: it verifies every
// request with the Standard Webhooks library, answers the verification
// challenge, and records each delivery's arrival by hookgate's event ID
// (_meta["hookgate/id"]). /bare runs the same handler for the sequential
// baseline, without recording.
type eventsReceiver struct {
	srv    *httptest.Server
	wh     *standardwebhooks.Webhook
	arr    *arrivals
	sample atomic.Pointer[[]byte] // a delivered body, for the baseline
}

func newEventsReceiver(b *testing.B, secret string) *eventsReceiver {
	b.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		b.Fatal(err)
	}
	rc := &eventsReceiver{wh: wh, arr: newArrivals("webhook")}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	b.Cleanup(rc.srv.Close)
	return rc
}

func (rc *eventsReceiver) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if err := rc.wh.Verify(body, r.Header); err != nil {
		rc.arr.fail(fmt.Errorf("signature: %w", err))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var msg struct {
		Type      string         `json:"type"`
		Challenge string         `json:"challenge"`
		EventID   string         `json:"eventId"`
		Meta      map[string]any `json:"_meta"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		rc.arr.fail(fmt.Errorf("body %.60q: %w", body, err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	switch {
	case msg.Type == "verification":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"challenge": msg.Challenge})
		return
	case r.URL.Path == "/bare":
		return
	}
	id, _ := msg.Meta["hookgate/id"].(string)
	if id == "" || msg.EventID != r.Header.Get("webhook-id") {
		rc.arr.fail(fmt.Errorf("delivery %.80q with webhook-id %q", body, r.Header.Get("webhook-id")))
	}
	rc.sample.CompareAndSwap(nil, &body)
	rc.arr.record(id, at)
}

// span is the first and last arrival among ids.
func (rc *eventsReceiver) span(ids []string) (first, last time.Time) {
	a := rc.arr
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		t := a.at[id]
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	return first, last
}

// bareRate POSTs n copies of a delivered body to /bare one after another
// over one keep-alive connection, each signed afresh like a delivery, and
// returns the rate.
func (rc *eventsReceiver) bareRate(b *testing.B, n int) float64 {
	b.Helper()
	sample := rc.sample.Load()
	if sample == nil {
		b.Fatal("no delivery to copy for the baseline")
	}
	body := *sample
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	start := time.Now()
	for i := range n {
		req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, rc.srv.URL+"/bare", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		msgID := fmt.Sprintf("bare-%d", i)
		sig, err := rc.wh.Sign(msgID, now, body)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", msgID)
		req.Header.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
		req.Header.Set("webhook-signature", sig)
		req.Header.Set("X-MCP-Subscription-Id", "bare")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatalf("bare POST: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("bare POST: status %d", resp.StatusCode)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// verify fails the benchmark unless exactly want distinct events arrived,
// each once, in ID order, all well signed.
func (rc *eventsReceiver) verify(b *testing.B, want int) {
	b.Helper()
	a := rc.arr
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.bad != nil:
		b.Fatalf("webhook: %v", a.bad)
	case a.dups > 0:
		b.Fatalf("webhook: %d events arrived more than once", a.dups)
	case len(a.order) != want:
		b.Fatalf("webhook: %d distinct events arrived, %d were posted after the cursor", len(a.order), want)
	case !slices.IsSortedFunc(a.order, compareIDs):
		b.Fatal("webhook: events arrived out of ID order")
	}
}
