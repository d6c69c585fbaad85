package redis

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/internal/redistest"
)

// benchmarkAppend measures appends from many concurrent callers, as webhook
// ingress makes them, on a server started with opts. Compare with
// redis-benchmark's XADD on the same machine to see what the script adds.
func benchmarkAppend(b *testing.B, opts ...redistest.Option) {
	srv := redistest.Start(b, opts...)
	s := openStore(b, srv, Options{})
	r := register(b, s, "p", "hooks")
	ctx := context.Background()
	var mu sync.Mutex
	var latencies []time.Duration
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			began := time.Now()
			if _, err := s.Append(ctx, newEvent(r, "")); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(began))
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	reportLatency(b, latencies)
}

// BenchmarkAppend measures appends to a Redis that keeps nothing on disk:
// the cost of the store and the round trip.
func BenchmarkAppend(b *testing.B) { benchmarkAppend(b) }

// BenchmarkAppendAOF measures appends to a Redis configured as the package
// documentation asks for durability (appendfsync always), which fsyncs once
// per event-loop turn for every write in it.
func BenchmarkAppendAOF(b *testing.B) { benchmarkAppend(b, redistest.AppendOnly()) }

// BenchmarkLeaseAck measures an agent's loop, lease ten and ack them, over
// a backlog that appends keep filling.
func BenchmarkLeaseAck(b *testing.B) {
	srv := redistest.Start(b)
	s := openStore(b, srv, Options{})
	r := register(b, s, "p", "hooks")
	ctx := context.Background()
	fill := func(n int) {
		for range n {
			if _, err := s.Append(ctx, newEvent(r, "")); err != nil {
				b.Fatal(err)
			}
		}
	}
	fill(1000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := s.Lease(ctx, "p", store.LeaseQuery{Limit: 10})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Events) == 0 {
			b.StopTimer()
			fill(1000)
			b.StartTimer()
			continue
		}
		if _, err := s.Ack(ctx, "p", eventIDs(res.Events)); err != nil {
			b.Fatal(err)
		}
	}
}

// reportLatency adds the median and 99th percentile of latencies to the
// benchmark's output, in milliseconds.
func reportLatency(b *testing.B, latencies []time.Duration) {
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	at := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
