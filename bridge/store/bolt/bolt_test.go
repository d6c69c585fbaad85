package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/storetest"
)

// TestConformance runs the shared suite on real files, fsync included.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	paths := map[store.Store]string{}
	open := func(t *testing.T, path string, clock *storetest.Clock) store.Store {
		t.Helper()
		s, err := Open(path, Options{Now: clock.Now})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		paths[s] = path
		return s
	}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, clock *storetest.Clock) store.Store {
			return open(t, filepath.Join(t.TempDir(), "hookgate.db"), clock)
		},
		Reopen: func(t *testing.T, s store.Store, clock *storetest.Clock) store.Store {
			mu.Lock()
			path := paths[s]
			delete(paths, s)
			mu.Unlock()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, path, clock)
		},
	})
}

func TestOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookgate.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()

	began := time.Now()
	second, err := Open(path, Options{NoSync: true})
	if err == nil {
		second.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another process") || !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("second Open: %v, want an ErrUnavailable saying the store is in use", err)
	}
	if elapsed := time.Since(began); elapsed > 5*lockTimeout {
		t.Errorf("second Open took %v, want about %v", elapsed, lockTimeout)
	}
}

// TestCloseWithAppendsInFlight races appends against Close: each append
// either fails cleanly or is durable, and none hangs.
func TestCloseWithAppendsInFlight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookgate.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx := t.Context()
	const n = 200
	ids := make(chan store.ID, n)
	started := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i == n/2 {
				close(started)
			}
			res, err := s.Append(ctx, newEvent("p", "reg", fmt.Sprint(i)))
			if err == nil {
				ids <- res.ID
			} else if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("Append racing Close: %v, want ErrUnavailable", err)
			}
		})
	}
	<-started
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(ids)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	for id := range ids {
		if _, err := s.Get(ctx, "p", id); err != nil {
			t.Errorf("event %s acknowledged before Close is missing after reopen: %v", id, err)
		}
	}
}

// TestGroupIsolation checks that one failing operation in a commit group
// does not fail the others: an append to a deleted registration is queued
// among good appends.
func TestGroupIsolation(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "hookgate.db"), Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	ctx := t.Context()
	reg := store.Registration{ID: "dead-reg", Principal: "p", Label: "gone"}
	if err := s.PutRegistration(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRegistration(ctx, "p", "gone"); err != nil {
		t.Fatal(err)
	}

	const n = 100
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			regID := "live-reg"
			if i%10 == 0 {
				regID = reg.ID
			}
			_, errs[i] = s.Append(ctx, newEvent("p", regID, fmt.Sprint(i)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%10 == 0 {
			if !errors.Is(err, store.ErrGone) {
				t.Errorf("Append %d to a deleted registration: %v, want ErrGone", i, err)
			}
		} else if err != nil {
			t.Errorf("Append %d: %v", i, err)
		}
	}
	if n, err := s.Pending(ctx, "p", ""); err != nil || n != 90 {
		t.Errorf("Pending = %d, %v; want 90", n, err)
	}
}

func TestBadPayload(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "hookgate.db"), Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	e := newEvent("p", "reg", "")
	e.Payload = json.RawMessage(`{"unterminated":`)
	if _, err := s.Append(t.Context(), e); err == nil {
		t.Error("Append of a payload that is not JSON succeeded")
	}
}

func newEvent(principal, regID, providerEventID string) store.NewEvent {
	return store.NewEvent{
		Principal:       principal,
		RegistrationID:  regID,
		Label:           "hooks",
		Source:          "generic",
		Type:            "bench.event",
		ProviderEventID: providerEventID,
		ReceivedAt:      time.Now(),
		Verified:        true,
		Payload:         json.RawMessage(`{"id":"evt_1","type":"bench.event","data":{"object":{"amount":1999,"currency":"usd"}}}`),
	}
}

// openBench opens a store in a fresh file for a benchmark.
func openBench(b *testing.B, noSync bool) store.Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "hookgate.db"), Options{NoSync: noSync})
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchmarkAppend(b *testing.B, noSync bool) {
	s := openBench(b, noSync)
	ctx := context.Background()
	var mu sync.Mutex
	var latencies []time.Duration
	b.SetParallelism(16) // webhook ingress: many concurrent requests per CPU
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			began := time.Now()
			if _, err := s.Append(ctx, newEvent("p", "reg", "")); err != nil {
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

// BenchmarkAppend measures durable appends from concurrent callers: group
// commit is what keeps this from being one fsync per event.
func BenchmarkAppend(b *testing.B) { benchmarkAppend(b, false) }

// BenchmarkAppendNoSync is BenchmarkAppend without fsync: the cost of the
// store itself.
func BenchmarkAppendNoSync(b *testing.B) { benchmarkAppend(b, true) }

// BenchmarkAppendSerial measures one caller at a time: the latency of an
// append at low load, one fsync each.
func BenchmarkAppendSerial(b *testing.B) {
	s := openBench(b, false)
	ctx := context.Background()
	var latencies []time.Duration
	for b.Loop() {
		began := time.Now()
		if _, err := s.Append(ctx, newEvent("p", "reg", "")); err != nil {
			b.Fatal(err)
		}
		latencies = append(latencies, time.Since(began))
	}
	reportLatency(b, latencies)
}

// BenchmarkLeaseAck measures an agent's loop, lease ten and ack them, over
// a backlog that appends keep filling.
func BenchmarkLeaseAck(b *testing.B) {
	s := openBench(b, false)
	ctx := context.Background()
	fill := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if _, err := s.Append(ctx, newEvent("p", "reg", "")); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
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
		ids := make([]store.ID, len(res.Events))
		for i, e := range res.Events {
			ids[i] = e.ID
		}
		if _, err := s.Ack(ctx, "p", ids); err != nil {
			b.Fatal(err)
		}
	}
}
