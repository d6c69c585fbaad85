package server_test

// The push benchmarks' rig: paced posting, arrival records and the
// subscribers of every push path (see bench_push_test.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// postRecord is one POST of a paced phase: when it was due, sent and
// answered, and the event ID hookgate answered.
type postRecord struct {
	id                  string
	due, sent, answered time.Time
	err                 error
}

// errNotSent marks the POSTs a paced phase never sent (its context ended).
var errNotSent = errors.New("not sent: the phase's context ended first")

// post sends one new webhook and returns when it was sent and answered
// and, from hookgate, the event ID (the bare server answers an empty body).
// The answer time is taken as soon as the response headers are in, which
// is when the provider's POST returns.
func (g *loadGen) post(ctx context.Context) (postRecord, error) {
	req, err := g.request(ctx)
	if err != nil {
		return postRecord{}, err
	}
	p := postRecord{sent: time.Now()}
	resp, err := g.client.Do(req)
	p.answered = time.Now()
	if err != nil {
		return p, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return p, err
	}
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("POST %s: status %d: %s", g.url, resp.StatusCode, body)
	}
	if len(body) > 0 {
		var out struct {
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal(body, &out); err != nil || out.ID == "" || out.Duplicate {
			return p, fmt.Errorf("POST %s answered %s, want a new event's ID", g.url, body)
		}
		p.id = out.ID
	}
	return p, nil
}

// pacedRun is what one paced phase sent.
type pacedRun struct {
	posts   []postRecord
	elapsed time.Duration
}

// paced sends at rate for d, open loop like openLoop: POST i is due at
// start + i/rate whatever the earlier answers did, and workers bounds the
// POSTs in flight. Unlike openLoop it keeps every POST's record, because
// push latency is matched per event ID.
func (g *loadGen) paced(ctx context.Context, rate float64, d time.Duration, workers int) pacedRun {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second) // bounds a stuck POST
	defer cancel()
	total := max(int(rate*d.Seconds()), 1)
	interval := time.Duration(float64(time.Second) / rate)
	posts := make([]postRecord, total)
	due := make(chan int, total) // never blocks the pacer
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range due {
				p, err := g.post(ctx)
				p.due, p.err = posts[i].due, err
				posts[i] = p
			}
		})
	}
	start := time.Now()
	timer := time.NewTimer(time.Hour) // reset before every wait
	defer timer.Stop()
	sent := 0
pace:
	for ; sent < total; sent++ {
		at := start.Add(time.Duration(sent) * interval)
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break pace
			}
		}
		posts[sent].due = at
		due <- sent
	}
	close(due)
	wg.Wait()
	for i := sent; i < total; i++ {
		posts[i].err = errNotSent
	}
	return pacedRun{posts: posts, elapsed: time.Since(start)}
}

// requirePosted fails the benchmark if a POST of the run failed, or (with
// wantIDs) was answered without an event ID: latencies of a run with
// failures would describe a different load.
func requirePosted(tb testing.TB, what string, run pacedRun, wantIDs bool) {
	tb.Helper()
	failed := 0
	var first error
	for _, p := range run.posts {
		err := p.err
		if err == nil && wantIDs && p.id == "" {
			err = errors.New("answered without an event ID")
		}
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		tb.Fatalf("%s: %d of %d POSTs failed; first: %v", what, failed, len(run.posts), first)
	}
}

// arrivals records when each event reached one subscriber, by event ID.
// Subscribers record from their own goroutines; the benchmark reads after
// waitFor.
type arrivals struct {
	name string

	mu    sync.Mutex
	at    map[string]time.Time
	order []string // IDs in arrival order
	dups  int
	bad   error // the first malformed delivery
}

func newArrivals(name string) *arrivals {
	return &arrivals{name: name, at: make(map[string]time.Time)}
}

// record notes that id arrived at t; a second arrival of the same ID
// counts as a duplicate and keeps the first time.
func (a *arrivals) record(id string, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, seen := a.at[id]; seen {
		a.dups++
		return
	}
	a.at[id] = t
	a.order = append(a.order, id)
}

// fail keeps the first malformed delivery for verify.
func (a *arrivals) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bad == nil {
		a.bad = err
	}
}

// missing counts the IDs of ids that have not arrived.
func (a *arrivals) missing(ids []string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := a.at[id]; !ok {
			n++
		}
	}
	return n
}

// waitFor polls until every ID of ids has arrived, failing after d.
func (a *arrivals) waitFor(tb testing.TB, ids []string, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		n := a.missing(ids)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %d of %d events had not arrived %s after the phase", a.name, n, len(ids), d)
		}
		time.Sleep(pollEvery) // polling against a deadline
	}
}

// latencies returns, for each POST of posts, its event's arrival time
// minus the POST's answer time; call it after waitFor.
func (a *arrivals) latencies(posts []postRecord) []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]time.Duration, 0, len(posts))
	for _, p := range posts {
		out = append(out, a.at[p.id].Sub(p.answered))
	}
	return out
}

// earlyPct is the percentage of latencies below zero: events that reached
// the subscriber before their POST's answer reached the sender.
func earlyPct(lat []time.Duration) float64 {
	if len(lat) == 0 {
		return 0
	}
	n := 0
	for _, d := range lat {
		if d < 0 {
			n++
		}
	}
	return 100 * float64(n) / float64(len(lat))
}

// pushRig is one gateway with one generic webhook and a healthy subscriber
// of each kind on it (SSE, 2025 MCP, 2026 MCP), all in this process, and
// the generator that posts to it. It remembers every event ID it was
// answered, so verify can check that each subscriber got each exactly once.
type pushRig struct {
	g      *gateway
	gen    *loadGen
	secret string
	subs   []*arrivals
	posted []string // every event ID answered, all phases
}

// newPushRig starts the gateway and connects the subscribers; every body
// it posts carries pad bytes of padding. Each subscriber is following the
// log (SSE preamble read, 2025 subscribe answered, 2026
// listen acknowledged) when it returns.
func newPushRig(b *testing.B, pad int) *pushRig {
	b.Helper()
	g := startGateway(b, b.TempDir())
	cs := connect(b, g.url, g.token, "")
	reg := mustTool(b, cs, "register_webhook", map[string]any{"label": "push"}).Structured
	url, _ := reg["url"].(string)
	secret, _ := reg["secret"].(string)
	uri, _ := reg["resourceUri"].(string)
	if url == "" || secret == "" || uri == "" {
		b.Fatalf("register_webhook returned %v", reg)
	}
	r := &pushRig{g: g, gen: newLoadGen(b, url, secret, pushWorkers), secret: secret}
	r.gen.pad = strings.Repeat("x", pad)

	sse := newArrivals("sse")
	c, err := dialSSE(b.Context(), strings.TrimPrefix(g.url, "http://"), g.token, "?label=push", 0)
	if err != nil {
		b.Fatalf("SSE subscriber: %v", err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			id, err := c.next()
			at := time.Now()
			if err != nil {
				if errors.Is(err, errMalformed) {
					sse.fail(err)
				}
				return
			}
			sse.record(id, at)
		}
	}()
	b.Cleanup(func() { c.conn.Close(); <-stopped })
	r.subs = []*arrivals{
		sse,
		mcpPushSubscriber(b, g.url, g.token, "2025-11-25", uri, newArrivals("mcp2025")),
		mcpPushSubscriber(b, g.url, g.token, "", uri, newArrivals("mcp2026")),
	}
	return r
}

// pushPhase is one paced phase's POSTs and, per subscriber (in
// pushRig.subs order), the latency of each of its events.
type pushPhase struct {
	posts   []postRecord
	lat     [][]time.Duration
	elapsed time.Duration
}

// phase posts at pushRate for d, waits until every subscriber has every
// event, and returns the latencies.
func (r *pushRig) phase(b *testing.B, d time.Duration) pushPhase {
	b.Helper()
	run := r.gen.paced(b.Context(), pushRate, d, pushWorkers)
	requirePosted(b, "push phase", run, true)
	ids := make([]string, len(run.posts))
	for i, p := range run.posts {
		ids[i] = p.id
	}
	r.posted = append(r.posted, ids...)
	p := pushPhase{posts: run.posts, elapsed: run.elapsed}
	for _, s := range r.subs {
		s.waitFor(b, ids, deliveryWait)
		p.lat = append(p.lat, s.latencies(run.posts))
	}
	return p
}

// merge adds another phase, for figures over several.
func (p *pushPhase) merge(o pushPhase) {
	p.posts = append(p.posts, o.posts...)
	p.elapsed += o.elapsed
	if p.lat == nil {
		p.lat = make([][]time.Duration, len(o.lat))
	}
	for i := range o.lat {
		p.lat[i] = append(p.lat[i], o.lat[i]...)
	}
}

// rate is the events per second the phases achieved.
func (p pushPhase) rate() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(len(p.posts)) / p.elapsed.Seconds()
}

// postLatencies is each POST's time from send to answer.
func (p pushPhase) postLatencies() []time.Duration {
	out := make([]time.Duration, len(p.posts))
	for i, x := range p.posts {
		out[i] = x.answered.Sub(x.sent)
	}
	return out
}

// verify fails the benchmark unless every subscriber received every event
// posted, exactly once, in ID order, each well-formed, and nothing else: a
// latency figure over lost or repeated events would look better than it is.
func (r *pushRig) verify(b *testing.B) {
	b.Helper()
	for _, s := range r.subs {
		s.mu.Lock()
		bad, dups, got, order := s.bad, s.dups, len(s.at), slices.Clone(s.order)
		s.mu.Unlock()
		switch {
		case bad != nil:
			b.Fatalf("%s: %v", s.name, bad)
		case dups > 0:
			b.Fatalf("%s: %d events arrived more than once", s.name, dups)
		case got != len(r.posted):
			b.Fatalf("%s: %d distinct events arrived, %d were posted", s.name, got, len(r.posted))
		case !slices.IsSortedFunc(order, compareIDs):
			b.Fatalf("%s: events arrived out of ID order", s.name)
		}
	}
}

// mcpPushSubscriber connects the SDK client of the given era (version ""
// negotiates 2026-07-28), subscribes to uri and records into rec the
// arrival of every notifications/resources/updated for it, by its
// hookgate/eventId, checking that the inline event carries the same ID.
// For 2026 it returns once the listen is acknowledged, so no event posted
// afterwards can be missed. It is push_test.go's subscriber for a
// benchmark: it takes testing.TB and keeps arrival times.
func mcpPushSubscriber(tb testing.TB, base, token, version, uri string, rec *arrivals) *arrivals {
	tb.Helper()
	handler := func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
		at := time.Now()
		if req.Params.URI != uri {
			return
		}
		id, _ := req.Params.Meta["hookgate/eventId"].(string)
		ev, _ := req.Params.Meta["hookgate/event"].(map[string]any)
		if id == "" || ev["id"] != id {
			rec.fail(fmt.Errorf("%w: notification _meta %v", errMalformed, req.Params.Meta))
			return
		}
		rec.record(id, at)
	}
	acked := make(chan struct{}, 1)
	client := mcp.NewClient(&mcp.Implementation{Name: "push-bench", Version: "1"}, &mcp.ClientOptions{ResourceUpdatedHandler: handler})
	client.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "notifications/subscriptions/acknowledged" {
				select {
				case acked <- struct{}{}:
				default:
				}
			}
			return next(ctx, method, req)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), handshakeWait)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   base + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{token: token, base: http.DefaultTransport}},
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		tb.Fatalf("connect MCP %q: %v", version, err)
	}
	tb.Cleanup(func() { _ = cs.Close() })
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
		tb.Fatalf("subscribe %s (%q): %v", uri, version, err)
	}
	if version == "" {
		select {
		case <-acked:
		case <-ctx.Done():
			tb.Fatalf("2026 listen for %s never acknowledged", uri)
		}
	}
	return rec
}

// errMalformed marks a delivery that does not carry what hookgate
// promises (an SSE event whose data is not the event its id names, a
// notification without its event ID).
var errMalformed = errors.New("malformed delivery")
