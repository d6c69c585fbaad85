package clients

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential delay between attempts: Initial before the
// second attempt, doubling up to Max, each with up to a fifth added at
// random so that many clients cut at once do not return in one burst.
type Backoff struct {
	Initial time.Duration // <= 0 means 1 s
	Max     time.Duration // <= 0 means 1 min
}

// Delay is the wait after failed attempt n (1 for the first failure).
func (b Backoff) Delay(n int) time.Duration {
	d, limit := b.Initial, b.Max
	if d <= 0 {
		d = time.Second
	}
	if limit <= 0 {
		limit = time.Minute
	}
	for i := 1; i < min(n, 32) && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d + rand.N(d/5+1)
}

// sleep waits d or until ctx ends, and reports whether the full wait
// passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
