package observe

import (
	"sync"
	"time"
)

// statsSlots is how many one-minute slots a registration's stats keep: the
// longest window get_stats can ask for.
const statsSlots = 60

// MaxWindow is the longest window Stats answers for.
const MaxWindow = statsSlots * time.Minute

// latencyBounds are the upper bounds, in milliseconds, of the buckets the
// windowed stats count latencies in; a quantile is reported as the bound of
// the bucket it falls in. The last bucket is everything above.
var latencyBounds = [...]float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 18e5, 36e5}

// counts are the per-registration tallies of one minute, or of a window.
type counts struct {
	Accepted, Duplicates, BadSignatures, Stale, TooLarge int
	Acked, Nacked, LeaseExpired, DeadLettered            int
	ExpiredUnacked                                       int
	delivery, processing                                 [len(latencyBounds) + 1]int
}

func (c *counts) add(o *counts) {
	c.Accepted += o.Accepted
	c.Duplicates += o.Duplicates
	c.BadSignatures += o.BadSignatures
	c.Stale += o.Stale
	c.TooLarge += o.TooLarge
	c.Acked += o.Acked
	c.Nacked += o.Nacked
	c.LeaseExpired += o.LeaseExpired
	c.DeadLettered += o.DeadLettered
	c.ExpiredUnacked += o.ExpiredUnacked
	for i := range c.delivery {
		c.delivery[i] += o.delivery[i]
		c.processing[i] += o.processing[i]
	}
}

// slot is one minute of counts.
type slot struct {
	minute int64 // Unix minute the counts belong to
	counts
}

// window keeps the last statsSlots minutes of one registration's counts.
type window struct {
	mu    sync.Mutex
	slots [statsSlots]slot
}

// record applies f to the counts of the minute of now.
func (w *window) record(now time.Time, f func(*counts)) {
	minute := now.Unix() / 60
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &w.slots[minute%statsSlots]
	if s.minute != minute {
		*s = slot{minute: minute}
	}
	f(&s.counts)
}

// sum adds up the slots within d before now.
func (w *window) sum(now time.Time, d time.Duration) counts {
	last := now.Unix() / 60
	first := last - int64(d/time.Minute) + 1
	w.mu.Lock()
	defer w.mu.Unlock()
	var total counts
	for i := range w.slots {
		if s := &w.slots[i]; s.minute >= first && s.minute <= last {
			total.add(&s.counts)
		}
	}
	return total
}

// latencyBucket is the index of the bucket d falls in.
func latencyBucket(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	for i, bound := range latencyBounds {
		if ms <= bound {
			return i
		}
	}
	return len(latencyBounds)
}

// Latency summarises one latency over a window, in milliseconds. P50 and
// P99 are the upper bounds of the buckets those quantiles fall in (-1 when
// above the largest bound).
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50Ms"`
	P99   float64 `json:"p99Ms"`
}

func summarise(buckets [len(latencyBounds) + 1]int) *Latency {
	n := 0
	for _, c := range buckets {
		n += c
	}
	if n == 0 {
		return nil
	}
	quantile := func(q float64) float64 {
		rank := int(q*float64(n) + 0.999999)
		seen := 0
		for i, c := range buckets {
			seen += c
			if seen >= rank {
				if i == len(latencyBounds) {
					return -1
				}
				return latencyBounds[i]
			}
		}
		return -1
	}
	return &Latency{Count: n, P50: quantile(0.5), P99: quantile(0.99)}
}
