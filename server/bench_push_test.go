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
	"slices"
	"strings"
	"testing"
	"time"
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
