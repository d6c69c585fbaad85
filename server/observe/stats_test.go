package observe

import (
	"testing"
	"time"
)

func TestWindowSumsOnlyTheWindow(t *testing.T) {
	var w window
	t0 := time.Date(2026, 11, 25, 10, 0, 30, 0, time.UTC)
	w.record(t0, func(c *counts) { c.Accepted += 1 })
	w.record(t0.Add(10*time.Minute), func(c *counts) { c.Accepted += 10 })
	w.record(t0.Add(59*time.Minute), func(c *counts) { c.Accepted += 100 })
	now := t0.Add(59 * time.Minute)
	if got := w.sum(now, time.Hour).Accepted; got != 111 {
		t.Fatalf("last hour: %d, want 111", got)
	}
	if got := w.sum(now, 50*time.Minute).Accepted; got != 110 {
		t.Fatalf("last 50 minutes: %d, want 110", got)
	}
	// A slot reused an hour later starts from zero instead of adding up.
	w.record(t0.Add(time.Hour), func(c *counts) { c.Accepted += 1000 })
	if got := w.sum(t0.Add(time.Hour), time.Hour).Accepted; got != 1110 {
		t.Fatalf("after wrapping: %d, want 1110 (the first minute rolled out)", got)
	}
}

func TestSummariseQuantiles(t *testing.T) {
	var b [len(latencyBounds) + 1]int
	if summarise(b) != nil {
		t.Fatal("no samples should summarise to nil")
	}
	for range 98 {
		b[latencyBucket(3*time.Millisecond)]++ // ≤ 5 ms bucket
	}
	b[latencyBucket(400*time.Millisecond)] += 2 // ≤ 500 ms bucket
	got := summarise(b)
	if got.Count != 100 || got.P50 != 5 || got.P99 != 500 {
		t.Fatalf("summary %+v, want count 100, p50 5 ms, p99 500 ms", got)
	}
	b[len(latencyBounds)] += 1000 // beyond the largest bound
	if got := summarise(b); got.P99 != -1 {
		t.Fatalf("p99 above every bound = %v, want -1", got.P99)
	}
}
