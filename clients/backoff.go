package clients

import (
	"context"
	"errors"
	"log/slog"
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

// keepTrying is every driver's outer loop: it runs attempt until ctx ends
// or attempt fails with a stopError (a refusal no retry can fix), waiting
// between failures by the reconnect backoff. attempt reports whether it
// made progress (a connection accepted, a poll answered), which restarts
// the backoff, and returns nil to be run again at once. Each failure to be
// retried is logged as "<what>; retrying" with logArgs' attributes (where
// to resume), then reset (if not nil) drops what the next attempt must
// build afresh, such as a session. reset is not called when the loop ends:
// the run's last acks still need the session.
func keepTrying(ctx context.Context, log *slog.Logger, what string, logArgs func() []any, reset func(), attempt func() (progressed bool, err error)) error {
	for failures := 0; ; {
		progressed, err := attempt()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			failures = 0
		}
		if err == nil {
			continue
		}
		var stop *stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		failures++
		delay := reconnect().Delay(failures)
		log.Warn(what+"; retrying", append([]any{"err", err, "retry_in", delay}, logArgs()...)...)
		if reset != nil {
			reset()
		}
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
	}
}
