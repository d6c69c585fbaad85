package server_test

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/redistest"
)

const (
	// xaddRequests is what each redis-benchmark XADD run sends, with
	// ingestWorkers clients: about a second of work on the bench machine.
	xaddRequests = 30_000
	// crossPushRate and crossPushPhase pace BenchmarkRedisCrossReplicaPush:
	// far below the ingest rate, so latency is not queueing.
	crossPushRate  = 200
	crossPushPhase = 5 * time.Second
)

// xaddRate runs redis-benchmark's XADD against rs with ingestWorkers
// clients and returns its requests per second.
func xaddRate(b *testing.B, rs *redistest.Server) float64 {
	b.Helper()
	host, port, _ := strings.Cut(rs.Addr(), ":")
	out, err := exec.CommandContext(b.Context(), "redis-benchmark", "-h", host, "-p", port,
		"-c", strconv.Itoa(ingestWorkers), "-n", strconv.Itoa(xaddRequests), "-q",
		"XADD", "redisbench:xadd", "*", "payload", `{"type":"bench.created","amount":1}`).CombinedOutput()
	if err != nil {
		b.Fatalf("redis-benchmark: %v: %s", err, out)
	}
	// -q prints "<command>: <n> requests per second, p50=... msec".
	for line := range strings.Lines(string(out)) {
		if i := strings.Index(line, " requests per second"); i > 0 {
			fields := strings.Fields(line[:i])
			if rate, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
				return rate
			}
		}
	}
	b.Fatalf("redis-benchmark printed no rate: %s", out)
	return 0
}

// redisCLI runs one redis-cli command against rs and returns its output.
func redisCLI(b *testing.B, rs *redistest.Server, args ...string) string {
	b.Helper()
	host, port, _ := strings.Cut(rs.Addr(), ":")
	out, err := exec.CommandContext(b.Context(), "redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	if err != nil {
		b.Fatalf("redis-cli %v: %v: %s", args, err, out)
	}
	return string(out)
}

// redisCommandMicros is the time Redis spent running commands since the
// last CONFIG RESETSTAT, from INFO commandstats (its usec= fields): divided
// by the events appended, it is Redis's own CPU per webhook, the part of
// the cost no change in hookgate's process can remove.
func redisCommandMicros(b *testing.B, rs *redistest.Server) float64 {
	b.Helper()
	var total float64
	for line := range strings.Lines(redisCLI(b, rs, "INFO", "commandstats")) {
		_, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		for field := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(field, "usec="); ok {
				us, err := strconv.ParseFloat(v, 64)
				if err == nil {
					total += us
				}
			}
		}
	}
	return total
}

// redisReplicas starts two replicas of the binary on rs and registers a
// generic webhook on the first; it returns both and the webhook's ID and
// secret.
func redisReplicas(b *testing.B, rs *redistest.Server) (a, c *gateway, regID, secret string) {
	b.Helper()
	a = startGateway(b, b.TempDir(), "--redis", rs.URL(), "--dev-token")
	c = startGateway(b, b.TempDir(), "--redis", rs.URL())
	url, secret := registerGeneric(b, a, "bench")
	return a, c, url[strings.LastIndex(url, "/")+1:], secret
}

// BenchmarkRedisIngest is the ingest throughput of signed generic webhooks
// on Redis (appendonly yes, appendfsync always: the durable setting the
// README asks for), with one replica and with two sharing the load, as a
// ratio to redis-benchmark's XADD rate against the same redis-server in the
// same run (its rate before and after the hookgate phases, averaged). The
// closed-loop concurrency is ingestWorkers in every case, split evenly
// between the two replicas.
func BenchmarkRedisIngest(b *testing.B) {
	skipIfInstrumented(b)
	rs := redistest.Start(b, redistest.AppendOnly())
	a, c, regID, secret := redisReplicas(b, rs)
	one := newLoadGen(b, a.url+"/hooks/"+regID, secret, ingestWorkers)
	twoA := newLoadGen(b, a.url+"/hooks/"+regID, secret, ingestWorkers/2)
	twoB := newLoadGen(b, c.url+"/hooks/"+regID, secret, ingestWorkers/2)
	ctx := b.Context()
	requireNoFailures(b, "warm-up A", one.closedLoop(ctx, ingestWorkers, warmUp))
	requireNoFailures(b, "warm-up B", twoB.closedLoop(ctx, ingestWorkers/2, warmUp))

	b.ResetTimer()
	xaddBefore := xaddRate(b, rs)
	redisCLI(b, rs, "CONFIG", "RESETSTAT")
	var single, pair loadStats
	for range ingestRounds {
		s := one.closedLoop(ctx, ingestWorkers, ingestPhase)
		requireNoFailures(b, "one replica", s)
		single.merge(s)

		var sa, sb loadStats
		done := make(chan struct{})
		go func() { sb = twoB.closedLoop(ctx, ingestWorkers/2, ingestPhase); close(done) }()
		sa = twoA.closedLoop(ctx, ingestWorkers/2, ingestPhase)
		<-done
		requireNoFailures(b, "two replicas, A", sa)
		requireNoFailures(b, "two replicas, B", sb)
		both := loadStats{ok: sa.ok + sb.ok, elapsed: max(sa.elapsed, sb.elapsed), latencies: append(sa.latencies, sb.latencies...)}
		pair.merge(both)
	}
	redisUS := redisCommandMicros(b, rs)
	xaddAfter := xaddRate(b, rs)
	b.StopTimer()

	xadd := (xaddBefore + xaddAfter) / 2
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(xadd, "xadd_req/s")
	b.ReportMetric(single.rate(), "one_replica_events/s")
	b.ReportMetric(pair.rate(), "two_replicas_events/s")
	b.ReportMetric(single.rate()/xadd, "one_ratio_vs_xadd")
	b.ReportMetric(pair.rate()/xadd, "two_ratio_vs_xadd")
	if n := single.ok + pair.ok; n > 0 {
		b.ReportMetric(redisUS/float64(n), "redis_us/event")
	}
	b.ReportMetric(single.quantileMS(0.50), "one_p50_ms")
	b.ReportMetric(single.quantileMS(0.99), "one_p99_ms")
	b.ReportMetric(pair.quantileMS(0.50), "two_p50_ms")
	b.ReportMetric(pair.quantileMS(0.99), "two_p99_ms")
}

// BenchmarkRedisCrossReplicaPush is the push latency across replicas: POSTs
// paced at crossPushRate go to replica A, and an SSE subscriber on replica
// B times each event's arrival from the moment its POST was answered. The
// event crosses Redis twice (the append, then the wake-up on pub/sub) and
// B reads it from Redis. Reports p50 and p99 in milliseconds.
func BenchmarkRedisCrossReplicaPush(b *testing.B) {
	skipIfInstrumented(b)
	rs := redistest.Start(b, redistest.AppendOnly())
	a, c, regID, secret := redisReplicas(b, rs)
	gen := newLoadGen(b, a.url+"/hooks/"+regID, secret, 16)
	ctx := b.Context()

	conn, err := dialSSE(ctx, strings.TrimPrefix(c.url, "http://"), a.token, "", 0)
	if err != nil {
		b.Fatalf("SSE on B: %v", err)
	}
	b.Cleanup(func() { conn.conn.Close() })
	rec := newArrivals("SSE on B")
	go func() {
		for {
			id, err := conn.next()
			if err != nil {
				return
			}
			rec.record(id, time.Now())
		}
	}()

	b.ResetTimer()
	run := gen.paced(ctx, crossPushRate, crossPushPhase, 16)
	requirePosted(b, "POSTs to A", run, true)
	ids := make([]string, len(run.posts))
	for i, p := range run.posts {
		ids[i] = p.id
	}
	rec.waitFor(b, ids, 30*time.Second)
	b.StopTimer()

	lat := loadStats{latencies: rec.latencies(run.posts)}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(lat.quantileMS(0.50), "cross_p50_ms")
	b.ReportMetric(lat.quantileMS(0.99), "cross_p99_ms")
	b.ReportMetric(earlyPct(lat.latencies), "early_%")
}
