// Package subscribe is hookgate's push side: every way an agent is told of an
// event as it happens (MCP resource subscriptions in both eras, Server-Sent
// Events, WebSocket). Each subscriber is a cursor over the durable log;
// a push is only the reader catching up after a wake-up, so a missed wake-up,
// a cut stream or a restart costs latency, never an event. The package owns
// no storage of its own.
package subscribe

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// Reader reads a principal's log by cursor; store.Store satisfies it.
type Reader interface {
	Read(ctx context.Context, principal string, q store.Query) ([]store.Event, error)
}

// Waiter hands out a channel closed when the principal's log next grows;
// *bridge.Wakeups satisfies it.
type Waiter interface {
	Wait(principal string) <-chan struct{}
}

// Follower reads one principal's log from a cursor and hands every event to
// a sink in ID order, waiting for wake-ups when it has caught up. It is the
// whole of a subscriber's state: the cursor. Nothing is buffered beyond one
// batch, so a slow sink slows only itself and memory stays bounded.
type Follower struct {
	Log       Reader
	Wake      Waiter
	Principal string
	Label     string   // "" follows every label
	After     store.ID // cursor: the last event already delivered
	// Batch is how many events are read at a time; <= 0 means 100.
	Batch int
	// Heartbeat, when > 0, calls Idle on a fixed Heartbeat tick whenever the
	// follower is caught up and waiting, so a quiet stream proves it is
	// alive through proxies with idle timeouts. A tick that falls while
	// events are being delivered is taken at the next wait, so Idle can
	// follow an event closely; it is never called mid-batch.
	Heartbeat time.Duration
	Idle      func() error
	// CaughtUp, when set, is called each time a read finds nothing new,
	// before waiting: a sink that batches work (such as saving its
	// cursor) finishes it there.
	CaughtUp func() error
}

// Run delivers events until ctx ends or deliver (or Idle) fails, and returns
// that error. After returns, f.After is the last event delivered, from which
// a later Run resumes.
func (f *Follower) Run(ctx context.Context, deliver func(store.Event) error) error {
	var heartbeat <-chan time.Time
	if f.Heartbeat > 0 && f.Idle != nil {
		t := time.NewTicker(f.Heartbeat)
		defer t.Stop()
		heartbeat = t.C
	}
	for {
		woken := f.Wake.Wait(f.Principal) // before the read, so no append is missed
		events, err := f.Log.Read(ctx, f.Principal, store.Query{After: f.After, Label: f.Label, Limit: f.Batch, MaxBytes: store.ReplyBytes})
		if err != nil {
			return fmt.Errorf("follow %s after %s: %w", f.Principal, f.After, err)
		}
		for _, e := range events {
			if err := deliver(e); err != nil {
				return err
			}
			f.After = e.ID
		}
		if len(events) > 0 {
			continue // there may be more behind this batch
		}
		if f.CaughtUp != nil {
			if err := f.CaughtUp(); err != nil {
				return err
			}
		}
		select {
		case <-woken:
		case <-heartbeat:
			if err := f.Idle(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Since returns a cursor that starts at t's millisecond: every event
// committed at or after t is after it. IDs take their milliseconds from the
// commit clock, so a subscriber that starts "from now" uses Since(now) and
// misses nothing committed once it has started; at worst it also sees
// events committed earlier within that same millisecond.
func Since(t time.Time) store.ID {
	ms := t.UnixMilli()
	if ms <= 0 {
		return store.Zero
	}
	return store.ID{MS: uint64(ms) - 1, Seq: math.MaxUint64}
}
