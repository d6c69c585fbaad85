package server_test

// Push benchmarks (scripts/bench.sh runs them with the others and puts
// their figures in BENCHMARKS.md). They follow bench_test.go's conventions:
// one fixed, time-bounded measurement per invocation (`-benchtime 1x`),
// figures via b.ReportMetric, ns/op set to 0, loopback only, and every
// wait bounded by a deadline so that a hung stream fails the benchmark
// instead of hanging it.
//
// Every subscriber (SSE, 2025 MCP, 2026 MCP, stuck or idle) lives in this
// benchmark process, next to the load generator, on the same cores as
// hookgate. Push latency is measured in one clock: the POST's answer and
// each arrival are time.Now() in this process, and latency is arrival
// minus answer. hookgate wakes its feeds as soon as an event is durable,
// before it writes the 2xx, so an event can reach a subscriber before its
// POST's answer reaches the sender; such latencies are negative and are
// kept as measured (the *_early_pct figures count them), never clamped.

import (
	"bufio"
	"bytes"
	"context"
	byteorder "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	// pushRate is the paced webhook rate of the push latency phases: the
	// issue's 1,000 events/s.
	pushRate = 1000
	// pushWorkers bounds the POSTs in flight in a paced phase; at 1,000/s
	// and a few ms each about 2 are in flight, so the pool never holds a
	// POST back.
	pushWorkers = 32
	// pushRounds is how many times BenchmarkPushLatency alternates a bare
	// phase and a push phase (each of `phase`).
	pushRounds = 2
	// fanoutSubscribers is how many idle SSE subscribers
	// BenchmarkPushFanout10k holds; the target is ≥ 10,000.
	fanoutSubscribers = 10_000
	// fanoutRounds is how many single events it fans out, one at a time.
	fanoutRounds = 5
	// fanoutDialers bounds the subscriber connections being set up at once,
	// well under the listen backlog (somaxconn, 4096 here).
	fanoutDialers = 64
	// fdMargin is the descriptors a process needs besides the subscribers'
	// sockets: the store, the listener, log pipes, MCP clients, the
	// generator's keep-alive connections.
	fdMargin = 512
	// deliveryWait bounds every wait for events to reach their subscribers.
	deliveryWait = 30 * time.Second
	// handshakeWait bounds connecting a subscriber and reading its preamble.
	handshakeWait = 30 * time.Second
	// stuckRcvbuf is the SO_RCVBUF of a stuck subscriber's socket, set
	// before connecting so that the advertised window stays small and the
	// server's writes block early (the kernel doubles it and may round it up).
	stuckRcvbuf = 4096
	// stuckPad is the "pad" string in every body of
	// BenchmarkPushStuckSubscriber (all its phases): with events of about
	// 4 KiB the stuck reader's socket buffers (up to tcp_wmem's 4 MiB on
	// the server's side) fill within a second at 1,000 events/s, so
	// hookgate's writes to it really block within the phase. Small events
	// would fit in the kernel's buffers for the whole phase and test nothing.
	stuckPad = 4 << 10
	// cutWait bounds the wait for hookgate to cut a stuck subscriber: its
	// 10 s write deadline (subscribe.DefaultWriteTimeout) after the socket
	// buffers fill, plus margin.
	cutWait = 30 * time.Second
	// pollEvery is the interval of every poll against a deadline.
	pollEvery = 5 * time.Millisecond
)

// BenchmarkPushLatency is the end-to-end push latency at 1,000 events/s:
// from the provider's POST getting its 2xx to the event arriving at (a) an
// SSE client of GET /v1/stream, (b) a 2025-11-25 MCP subscriber (the SDK
// client, resources/subscribe + the session's GET stream), (c) a
// 2026-07-28 listener (the SDK client, subscriptions/listen). Next to it,
// the round trip of the same paced loop against the bare server (the test
// binary re-executed, as in BenchmarkIngest) in the same run. Bare and push
// phases alternate, pushRounds times each. Target: p99 < 5 ms for each
// subscriber. Every subscriber must get every event exactly once, in ID
// order, or the benchmark fails.
func BenchmarkPushLatency(b *testing.B) {
	skipIfInstrumented(b)
	r := newPushRig(b, 0)
	bareURL, _ := startBare(b)
	bare := newLoadGen(b, bareURL+"/hooks/wh_bare", r.secret, pushWorkers)
	ctx := b.Context()

	requirePosted(b, "bare warm-up", bare.paced(ctx, pushRate, warmUp, pushWorkers), false)
	r.phase(b, warmUp)
	b.ResetTimer()
	var rtt []time.Duration
	var push pushPhase
	var cpu cpuUse
	for range pushRounds {
		run := bare.paced(ctx, pushRate, phase, pushWorkers)
		requirePosted(b, "bare", run, false)
		for _, p := range run.posts {
			rtt = append(rtt, p.answered.Sub(p.sent))
		}
		var p pushPhase
		cpu.add(measureCPU(b, r.g.cmd.Process.Pid, func() { p = r.phase(b, phase) }))
		push.merge(p)
	}
	b.StopTimer()
	r.verify(b)

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(push.rate(), "events/s")
	for i, s := range r.subs {
		lat := loadStats{latencies: push.lat[i]}
		b.ReportMetric(lat.quantileMS(0.50), s.name+"_p50_ms")
		b.ReportMetric(lat.quantileMS(0.99), s.name+"_p99_ms")
		b.ReportMetric(earlyPct(push.lat[i]), s.name+"_early_pct")
	}
	bareStats := loadStats{latencies: rtt}
	b.ReportMetric(bareStats.quantileMS(0.50), "bare_rtt_p50_ms")
	b.ReportMetric(bareStats.quantileMS(0.99), "bare_rtt_p99_ms")
	post := loadStats{latencies: push.postLatencies()}
	b.ReportMetric(post.quantileMS(0.50), "post_p50_ms")
	b.ReportMetric(post.quantileMS(0.99), "post_p99_ms")
	b.ReportMetric(cpu.otherCores(push.elapsed), "other_cores")
}

// BenchmarkPushStuckSubscriber checks that a subscriber that never reads
// delays no one and leaves the server's memory bounded. Three phases at
// 1,000 events/s, each of `phase`, with the same healthy subscribers as
// BenchmarkPushLatency and events of about 4 KiB (stuckPad): clean; stuck,
// with one stuck SSE feed and one stuck 2025 MCP GET stream (raw
// connections that read their response headers, then nothing, with a
// small SO_RCVBUF) connected just before it; and, once hookgate has cut
// both and the MCP session is deleted, clean again. It reports the healthy
// subscribers' p50/p99 in each phase (the two clean phases show the
// noise), the cores other processes took in each, hookgate's VmRSS and
// its anonymous part (RssAnon; the rest is the bbolt mmap) at the start
// and at the end of each phase, what the kernel held unsent for each
// stuck reader at the end of the stuck phase (outside hookgate's RSS), and
// how long after connecting each stuck subscriber was cut. A stuck
// subscriber counts as cut when the server's end of its connection has
// left ESTABLISHED in /proc/net/tcp (its FIN cannot reach a reader with a
// full window, so the client never sees it).
func BenchmarkPushStuckSubscriber(b *testing.B) {
	r := newPushRig(b, stuckPad)
	pid := r.g.cmd.Process.Pid
	r.phase(b, warmUp)
	b.ResetTimer()
	memStart := procMemory(b, pid)
	var clean, during, after pushPhase
	cleanCPU := measureCPU(b, pid, func() { clean = r.phase(b, phase) })
	memBefore := procMemory(b, pid)

	stuck := openStuck(b, r)
	stuckCPU := measureCPU(b, pid, func() { during = r.phase(b, phase) })
	memStuck := procMemory(b, pid)
	sendQ := stuck.sendQueues(b)
	cutAfter := stuck.waitCut(b, cutWait)
	stuck.close(b)
	afterCPU := measureCPU(b, pid, func() { after = r.phase(b, phase) })
	memAfter := procMemory(b, pid)
	b.StopTimer()
	r.verify(b)

	b.ReportMetric(0, "ns/op")
	phases := []struct {
		name string
		p    pushPhase
		cpu  cpuUse
		mem  map[string]float64 // at the phase's end
	}{{"clean", clean, cleanCPU, memBefore}, {"stuck", during, stuckCPU, memStuck}, {"after", after, afterCPU, memAfter}}
	for i, s := range r.subs {
		for _, ph := range phases {
			lat := loadStats{latencies: ph.p.lat[i]}
			b.ReportMetric(lat.quantileMS(0.50), s.name+"_"+ph.name+"_p50_ms")
			b.ReportMetric(lat.quantileMS(0.99), s.name+"_"+ph.name+"_p99_ms")
		}
	}
	b.ReportMetric(memStart["VmRSS"], "rss_start_MiB")
	b.ReportMetric(memStart["RssAnon"], "anon_start_MiB")
	for _, ph := range phases {
		b.ReportMetric(ph.cpu.otherCores(ph.p.elapsed), ph.name+"_other_cores")
		b.ReportMetric(ph.mem["VmRSS"], "rss_"+ph.name+"_MiB")
		b.ReportMetric(ph.mem["RssAnon"], "anon_"+ph.name+"_MiB")
	}
	cut := 0
	for name, d := range cutAfter {
		if d > 0 {
			cut++
			b.ReportMetric(d.Seconds(), "stuck_"+name+"_cut_s")
		} else {
			b.Logf("the stuck %s subscriber was not cut within %s", name, cutWait)
		}
	}
	b.ReportMetric(float64(cut), "stuck_cut")
	for name, q := range sendQ {
		b.ReportMetric(float64(q)/1024, "stuck_"+name+"_sendq_KiB")
	}
}

// BenchmarkPushFanout10k holds fanoutSubscribers idle SSE subscribers
// (GET /v1/stream, one raw connection each) and reports hookgate's VmRSS
// per subscriber and the subscribers that would fit in 1 GiB; then it
// POSTs one event at a time, fanoutRounds times, and reports the time from
// each POST's 2xx until the last subscriber had the event (the fan-out
// time), and p50/p99 of each subscriber's arrival. Targets: ≥ 10,000
// concurrent subscribers, under 20 KiB each. Every subscriber must get
// each event exactly once, and nothing else, or the benchmark fails.
//
// The feeds' 15 s heartbeat is a per-feed ticker started at connect, so
// none fires before the first subscriber has been connected 15 s; the
// benchmark counts the heartbeats its subscribers received while measuring
// (heartbeats) so that a slow setup that let them in shows up.
func BenchmarkPushFanout10k(b *testing.B) {
	n := fanoutSubscribers
	ensureFDs(b, n+fdMargin)
	g := startGateway(b, b.TempDir())
	url, secret := registerGeneric(b, g, "fanout")
	poster := newLoadGen(b, url, secret, 1)
	ctx := b.Context()
	// One event before anyone subscribes: the first append's one-off costs
	// stay out of round 1, and its ID is the subscribers' cursor, so none
	// can see it (a feed "from now" may include the current millisecond).
	warm, err := poster.post(ctx)
	if err != nil {
		b.Fatal(err)
	}
	pid := g.cmd.Process.Pid
	rssEmpty := procMemory(b, pid)["VmRSS"]

	b.ResetTimer()
	start := time.Now()
	f := openFanout(b, strings.TrimPrefix(g.url, "http://"), g.token, "?after="+warm.id, n)
	connected := time.Since(start)
	rssIdle := procMemory(b, pid)["VmRSS"]

	var rounds [fanoutRounds]postRecord
	cpu := measureCPU(b, pid, func() {
		for i := range rounds {
			waitServerIdle(b, pid)
			rounds[i], err = poster.post(ctx)
			if err != nil {
				b.Fatalf("round %d: %v", i, err)
			}
			select {
			case <-f.done[i]:
			case <-time.After(deliveryWait):
				b.Fatalf("round %d: %d of %d subscribers got the event within %s", i, f.got[i].Load(), n, deliveryWait)
			}
		}
	})
	rssAfter := procMemory(b, pid)["VmRSS"]
	b.StopTimer()
	heartbeats := f.close()

	var spans, arrivals []time.Duration
	for i, round := range rounds {
		last := f.subs[0].at[i].Sub(round.answered)
		for j := range f.subs {
			s := &f.subs[j]
			if s.err != nil {
				b.Fatalf("subscriber %d: %v", j, s.err)
			}
			if s.n != fanoutRounds || s.ids[i] != round.id {
				b.Fatalf("subscriber %d got %d events (event %d: %q), want exactly the %d posted (event %d: %q)", j, s.n, i, s.ids[i], fanoutRounds, i, round.id)
			}
			d := s.at[i].Sub(round.answered)
			arrivals = append(arrivals, d)
			last = max(last, d)
		}
		spans = append(spans, last)
	}
	perSub := (rssIdle - rssEmpty) / float64(n) // MiB
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n), "subscribers")
	b.ReportMetric(rssEmpty, "rss_empty_MiB")
	b.ReportMetric(rssIdle, "rss_idle_MiB")
	b.ReportMetric(rssAfter, "rss_after_MiB")
	b.ReportMetric(perSub*1024, "KiB/subscriber")
	b.ReportMetric((rssAfter-rssEmpty)/float64(n)*1024, "KiB/subscriber_after")
	b.ReportMetric((1024-rssEmpty)/perSub, "subscribers/GiB")
	b.ReportMetric(connected.Seconds(), "connect_s")
	b.ReportMetric(float64(heartbeats), "heartbeats")
	spanStats := loadStats{latencies: spans}
	b.ReportMetric(spanStats.quantileMS(0.5), "fanout_ms")
	b.ReportMetric(float64(slices.Max(spans))/float64(time.Millisecond), "fanout_max_ms")
	all := loadStats{latencies: arrivals}
	b.ReportMetric(all.quantileMS(0.50), "arrival_p50_ms")
	b.ReportMetric(all.quantileMS(0.99), "arrival_p99_ms")
	var posts []time.Duration
	for _, r := range rounds {
		posts = append(posts, r.answered.Sub(r.sent))
	}
	postStats := loadStats{latencies: posts}
	b.ReportMetric(postStats.quantileMS(0.5), "post_ms")
	deliveries := fanoutRounds * n
	b.ReportMetric(perRequestUS(cpu.server, deliveries), "server_cpu_us/delivery")
	b.ReportMetric(perRequestUS(cpu.client, deliveries), "client_cpu_us/delivery")
}

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

// sseConn is one GET /v1/stream over a raw TCP connection. Ten thousand of
// these must cost this process little, so there is no http.Client (whose
// transport keeps two goroutines and two 4 KiB buffers per connection):
// one bufio.Reader under http.ReadResponse, which undoes the chunked
// encoding, and a small one for the lines.
type sseConn struct {
	conn       net.Conn
	lines      *bufio.Reader
	heartbeats int // comment lines seen; read only by the conn's reader
}

// dialSSE connects to GET /v1/stream at addr with query (e.g.
// "?after=<id>"), checks the answer is a 200 event stream, and reads the
// preamble (the `retry:` line and the starting cursor): once it returns
// the feed is following the log. rcvbuf > 0 sets SO_RCVBUF before
// connecting.
func dialSSE(ctx context.Context, addr, token, query string, rcvbuf int) (*sseConn, error) {
	conn, err := dialRaw(ctx, addr, rcvbuf)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(handshakeWait))
	c, err := readSSEHandshake(conn, addr, token, query)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

func readSSEHandshake(conn net.Conn, addr, token, query string) (*sseConn, error) {
	if _, err := fmt.Fprintf(conn, "GET /v1/stream%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", query, addr, token); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("GET /v1/stream: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	c := &sseConn{conn: conn, lines: bufio.NewReaderSize(resp.Body, 2048)}
	retry := false
	for {
		line, err := c.line()
		if err != nil {
			return nil, fmt.Errorf("GET /v1/stream preamble: %w", err)
		}
		if len(line) == 0 {
			break
		}
		retry = retry || bytes.HasPrefix(line, []byte("retry:"))
	}
	if !retry {
		return nil, errors.New("GET /v1/stream: the preamble has no retry: line")
	}
	return c, nil
}

// dialRaw opens a loopback TCP connection, with SO_RCVBUF set before the
// handshake when rcvbuf > 0 (so that the window it advertises is small).
func dialRaw(ctx context.Context, addr string, rcvbuf int) (net.Conn, error) {
	d := net.Dialer{Timeout: handshakeWait}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// line reads one line without its line ending; the slice is valid until
// the next read.
func (c *sseConn) line() ([]byte, error) {
	line, err := c.lines.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := slices.Clone(line)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.lines.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// next returns the ID of the next event, skipping comments (counted as
// heartbeats) and blocks without data. An event whose data is not the
// event its id: line names is an errMalformed.
func (c *sseConn) next() (string, error) {
	var id string
	data, match := false, false
	for {
		line, err := c.line()
		if err != nil {
			return "", err
		}
		switch {
		case len(line) == 0:
			if data {
				if !match {
					return id, fmt.Errorf("%w: SSE event %s: data is not that event", errMalformed, id)
				}
				return id, nil
			}
			id = ""
		case line[0] == ':':
			c.heartbeats++
		case bytes.HasPrefix(line, []byte("id:")):
			id = string(bytes.TrimSpace(line[3:]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = true
			match = id != "" && bytes.Contains(line, []byte(`"id":"`+id+`"`))
		}
	}
}

// fanSub is one idle subscriber of BenchmarkPushFanout10k and what it
// received. Only its reader goroutine writes it; the benchmark reads it
// after fanout.close has waited for every reader.
type fanSub struct {
	conn *sseConn
	ids  [fanoutRounds]string
	at   [fanoutRounds]time.Time
	n    int   // events received
	err  error // a malformed event, or the stream ending before close
}

// fanout is BenchmarkPushFanout10k's subscribers. got[i] counts the
// subscribers that have received their i-th event; the one that completes
// the count closes done[i], so the benchmark waits on a channel rather
// than polling ten thousand counters.
type fanout struct {
	subs    []fanSub
	got     [fanoutRounds]atomic.Int64
	done    [fanoutRounds]chan struct{}
	closing atomic.Bool
	readers sync.WaitGroup
}

// openFanout connects n SSE subscribers to addr, at most fanoutDialers at
// a time, each with its own reader goroutine, and returns once every one
// has read its preamble. It fails the benchmark if any could not connect.
func openFanout(b *testing.B, addr, token, query string, n int) *fanout {
	b.Helper()
	f := &fanout{subs: make([]fanSub, n)}
	for i := range f.done {
		f.done[i] = make(chan struct{})
	}
	sem := make(chan struct{}, fanoutDialers)
	var ready sync.WaitGroup // every dial bounded by handshakeWait
	var failed atomic.Int64
	errs := make(chan error, 1)
	for i := range f.subs {
		sem <- struct{}{}
		ready.Add(1)
		f.readers.Go(func() {
			c, err := dialSSE(b.Context(), addr, token, query, 0)
			<-sem
			if err != nil {
				failed.Add(1)
				select {
				case errs <- err:
				default:
				}
				ready.Done()
				return
			}
			f.subs[i].conn = c
			ready.Done()
			f.read(&f.subs[i])
		})
	}
	ready.Wait()
	b.Cleanup(func() { f.close() })
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d SSE subscribers could not connect; first: %v", n, len(f.subs), <-errs)
	}
	return f
}

// read is one subscriber's reader: it keeps the arrival time of each of
// the first fanoutRounds events and counts the rest (there should be none).
func (f *fanout) read(s *fanSub) {
	for {
		id, err := s.conn.next()
		at := time.Now()
		if err != nil {
			if !f.closing.Load() || errors.Is(err, errMalformed) {
				s.err = err
			}
			return
		}
		if s.n < fanoutRounds {
			s.ids[s.n], s.at[s.n] = id, at
			if f.got[s.n].Add(1) == int64(len(f.subs)) {
				close(f.done[s.n])
			}
		}
		s.n++
	}
}

// close closes every connection (idempotent), waits for the readers and
// returns the heartbeats they saw.
func (f *fanout) close() int {
	if f.closing.Swap(true) {
		return 0
	}
	for i := range f.subs {
		if c := f.subs[i].conn; c != nil {
			c.conn.Close()
		}
	}
	f.readers.Wait()
	hb := 0
	for i := range f.subs {
		if c := f.subs[i].conn; c != nil {
			hb += c.heartbeats
		}
	}
	return hb
}

// ensureFDs makes sure this process, and the gateway it starts afterwards
// (which inherits the limit), may each open need descriptors: it raises
// the soft RLIMIT_NOFILE toward the hard one if needed and skips the
// benchmark if the hard limit is lower. It always sets the limit
// explicitly, because Go raises its own soft limit at start-up and gives
// children the original one unless the program called Setrlimit itself.
func ensureFDs(b *testing.B, need int) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Max < uint64(need) {
		b.Skipf("RLIMIT_NOFILE hard limit %d < %d descriptors needed", lim.Max, need)
	}
	lim.Cur = max(lim.Cur, uint64(need))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("raise RLIMIT_NOFILE to %d: %v", lim.Cur, err)
	}
	b.Logf("RLIMIT_NOFILE soft %d, hard %d (this process and the gateway)", lim.Cur, lim.Max)
}

// waitServerIdle polls the server's CPU time until it stops growing for
// two samples (the work of the previous round, such as the feeds' second,
// empty read, is done), or 2 s pass, so that one fan-out round does not
// start inside the tail of the one before.
func waitServerIdle(tb testing.TB, pid int) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Second)
	last, still := cpuTime(tb, pid), 0
	for still < 2 && time.Now().Before(deadline) {
		time.Sleep(2 * clockTick) // polling against a deadline
		now := cpuTime(tb, pid)
		if now == last {
			still++
		} else {
			still = 0
		}
		last = now
	}
}

// stuckSubs are BenchmarkPushStuckSubscriber's subscribers that never
// read: one SSE feed and one 2025 MCP session's GET stream.
type stuckSubs struct {
	r       *pushRig
	opened  time.Time
	conns   map[string]net.Conn // "sse", "mcp"
	session string              // the MCP session, deleted by close
}

// openStuck connects the stuck subscribers with a small SO_RCVBUF, reads
// each response's headers (the SSE one also its preamble, so it is
// following the log) and never reads again. It checks that /proc/net/tcp
// shows both connections established, so waitCut's reading is sound.
func openStuck(b *testing.B, r *pushRig) *stuckSubs {
	b.Helper()
	addr := strings.TrimPrefix(r.g.url, "http://")
	s := &stuckSubs{r: r, conns: map[string]net.Conn{}}
	b.Cleanup(func() {
		for _, c := range s.conns {
			c.Close()
		}
	})
	sse, err := dialSSE(b.Context(), addr, r.g.token, "?label=push", stuckRcvbuf)
	if err != nil {
		b.Fatalf("stuck SSE subscriber: %v", err)
	}
	s.conns["sse"] = sse.conn

	s.session = legacySession(b, r.g.url, r.g.token, "hookgate://webhooks/push")
	conn, err := dialRaw(b.Context(), addr, stuckRcvbuf)
	if err != nil {
		b.Fatal(err)
	}
	s.conns["mcp"] = conn
	_ = conn.SetDeadline(time.Now().Add(handshakeWait))
	fmt.Fprintf(conn, "GET /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\nMcp-Protocol-Version: 2025-11-25\r\n\r\n", addr, r.g.token, s.session)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("stuck MCP GET stream: %v %v", resp, err)
	}
	_ = conn.SetDeadline(time.Time{})
	s.opened = time.Now()
	for name, c := range s.conns {
		if sock, ok := serverSideSocket(b, c); !ok || sock.state != tcpEstablished {
			b.Fatalf("stuck %s: /proc/net/tcp shows state %#x (found %v) for the server's end, want established", name, sock.state, ok)
		}
	}
	return s
}

// waitCut polls until the server has cut every stuck connection or d has
// passed since they were opened, and returns, per subscriber, how long
// after opening it was seen cut (0: not cut).
func (s *stuckSubs) waitCut(b *testing.B, d time.Duration) map[string]time.Duration {
	b.Helper()
	cut := map[string]time.Duration{}
	for time.Since(s.opened) < d && len(cut) < len(s.conns) {
		for name, c := range s.conns {
			if _, done := cut[name]; done {
				continue
			}
			if sock, ok := serverSideSocket(b, c); !ok || sock.state != tcpEstablished {
				cut[name] = time.Since(s.opened)
			}
		}
		time.Sleep(10 * pollEvery) // polling against a deadline
	}
	for name := range s.conns {
		if _, ok := cut[name]; !ok {
			cut[name] = 0
		}
	}
	return cut
}

// sendQueues returns the bytes queued in the kernel for each stuck
// subscriber on the server's side: what it wrote that the reader never
// took, which lives outside the server's RSS.
func (s *stuckSubs) sendQueues(b *testing.B) map[string]int {
	b.Helper()
	out := map[string]int{}
	for name, c := range s.conns {
		sock, _ := serverSideSocket(b, c)
		out[name] = sock.sendQ
	}
	return out
}

// close closes the stuck connections (the kernel resets them, unread data
// and all) and ends the MCP session, which would otherwise keep buffering
// notifications for a replay that never comes.
func (s *stuckSubs) close(b *testing.B) {
	b.Helper()
	for name, c := range s.conns {
		c.Close()
		delete(s.conns, name)
	}
	req, _ := http.NewRequestWithContext(b.Context(), http.MethodDelete, s.r.g.url+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+s.r.g.token)
	req.Header.Set("Mcp-Session-Id", s.session)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatalf("DELETE the stuck MCP session: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		b.Logf("DELETE the stuck MCP session: %d", resp.StatusCode)
	}
}

// legacySession initialises a 2025-11-25 MCP session over plain HTTP and
// subscribes it to uri; it returns the session ID. The SDK client cannot
// make a stuck subscriber: it reads its GET stream itself.
func legacySession(tb testing.TB, base, token, uri string) string {
	tb.Helper()
	var session string
	call := func(msg map[string]any) {
		tb.Helper()
		body, _ := json.Marshal(msg)
		req, _ := http.NewRequest(http.MethodPost, base+"/mcp", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Content-Type", "application/json")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		ctx, cancel := context.WithTimeout(context.Background(), handshakeWait)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			tb.Fatalf("%s: %v", msg["method"], err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body) // a POST's stream ends with its answer
		if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
			session = id
		}
		_, isRequest := msg["id"]
		if resp.StatusCode >= 300 || (isRequest && (!bytes.Contains(raw, []byte(`"result"`)) || bytes.Contains(raw, []byte(`"error"`)))) {
			tb.Fatalf("%s: %d %s", msg["method"], resp.StatusCode, raw)
		}
	}
	call(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "stuck-bench", "version": "1"},
	}})
	if session == "" {
		tb.Fatal("initialize returned no Mcp-Session-Id")
	}
	call(map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
	call(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": map[string]any{"uri": uri}})
	return session
}

// tcpEstablished is TCP_ESTABLISHED in /proc/net/tcp's st column.
const tcpEstablished = 0x01

// tcpSocket is one socket's line of /proc/net/tcp: its state and the
// bytes its send queue holds (written by the process, not yet acked).
type tcpSocket struct {
	state int
	sendQ int
}

// serverSideSocket returns the server's end of the client connection c
// (local = c's remote address, remote = c's local address) from
// /proc/net/tcp, which lists every IPv4 socket of this network namespace;
// ok is false when no socket has that address pair any more.
func serverSideSocket(tb testing.TB, c net.Conn) (s tcpSocket, ok bool) {
	tb.Helper()
	key := procTCPAddr(tb, c.RemoteAddr()) + " " + procTCPAddr(tb, c.LocalAddr())
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		// sl local_address rem_address st tx_queue:rx_queue ...
		fields := strings.Fields(line)
		if len(fields) < 5 || fields[1]+" "+fields[2] != key {
			continue
		}
		st, err1 := strconv.ParseInt(fields[3], 16, 32)
		tx, _, _ := strings.Cut(fields[4], ":")
		q, err2 := strconv.ParseInt(tx, 16, 64)
		if err1 != nil || err2 != nil {
			tb.Fatalf("/proc/net/tcp: cannot parse %q", line)
		}
		return tcpSocket{state: int(st), sendQ: int(q)}, true
	}
	return tcpSocket{}, false
}

// procTCPAddr formats an IPv4 TCP address as /proc/net/tcp does: the
// address as a 32-bit number in host byte order, in hex, and the port in
// hex.
func procTCPAddr(tb testing.TB, a net.Addr) string {
	tb.Helper()
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		tb.Fatalf("%v is not a TCP address", a)
	}
	ap := ta.AddrPort()
	ip := ap.Addr().Unmap()
	if !ip.Is4() {
		tb.Fatalf("%v is not IPv4", a)
	}
	b := ip.As4()
	return fmt.Sprintf("%08X:%04X", byteorder.NativeEndian.Uint32(b[:]), ap.Port())
}
