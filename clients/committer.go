package clients

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// flushTimeout bounds one checkpoint save plus its ack, so a server that
// hangs cannot hold completions back for long; what fails is retried.
const flushTimeout = 30 * time.Second

// committer records completions: it saves the checkpoint, then acks the
// completed events to the server, in batches, on a goroutine of its own so
// that a slow fsync or a slow ack never holds up a handler. Completions
// that arrive while one batch is being saved form the next batch.
type committer struct {
	cfg   Config
	track *tracker
	src   acker

	mu      sync.Mutex
	pending []string // completed, not yet acked
	saveErr error    // the last failed save, reported when the run ends
	// reack holds the checkpoint's recent completions at the start of a
	// run, acked again once, best effort: a run that died between saving
	// its checkpoint and acking left them pending on the server, and a push
	// driver, which resumes after the checkpoint, would never see them
	// again to ack. Kept apart from pending because some may be gone from
	// the server by now, which fails their ack for good.
	reack      []string
	reackTries int

	wake chan struct{} // one token: there is something to commit
	stop chan struct{} // closed by close
	done chan struct{} // closed when the loop has returned
	// saved is the tracker version last saved.
	saved int
}

func startCommitter(cfg Config, track *tracker, src acker) *committer {
	c := &committer{
		cfg: cfg, track: track, src: src,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		saved: -1,
	}
	go c.loop()
	return c
}

// reackAttempts bounds the tries of the start-of-run re-ack, reackRetry
// spaces them.
const (
	reackAttempts = 5
	reackRetry    = time.Second
)

// reackRecent queues the checkpoint's recent completions for one more ack
// (see committer.reack) and has it tried at once.
func (c *committer) reackRecent(ids []string) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	c.reack = slices.Clone(ids)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// add queues a completed event for the checkpoint and the ack.
func (c *committer) add(id string) {
	c.mu.Lock()
	c.pending = append(c.pending, id)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *committer) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
			ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
			c.flush(ctx)
			cancel()
		case <-c.stop:
			return
		}
	}
}

// flush saves the progress (if it changed) and then acks what completed
// up to now. An ack that fails is kept for the next flush; the events stay
// in the checkpoint, so even if it never succeeds a later run acks them
// without running the handler again.
func (c *committer) flush(ctx context.Context) {
	c.mu.Lock()
	ids := c.pending
	c.pending = nil
	c.mu.Unlock()
	p, version := c.track.progress()
	if version != c.saved {
		if err := c.cfg.Checkpoint.Save(ctx, p); err != nil {
			c.cfg.Logger.Warn("save checkpoint", "err", err)
			c.mu.Lock()
			c.saveErr = err
			c.mu.Unlock()
		} else {
			c.saved = version
			c.mu.Lock()
			c.saveErr = nil
			c.mu.Unlock()
		}
	}
	c.flushReack(ctx)
	if len(ids) == 0 {
		return
	}
	if err := c.src.ack(ctx, ids); err != nil {
		c.cfg.Logger.Warn("ack events; will retry", "count", len(ids), "err", err)
		c.mu.Lock()
		c.pending = append(ids, c.pending...)
		c.mu.Unlock()
	}
}

// flushReack tries the start-of-run re-ack, dropping it once it worked or
// failed reackAttempts times (a session not up yet fails it too, so it is
// tried again at later flushes).
func (c *committer) flushReack(ctx context.Context) {
	c.mu.Lock()
	ids := c.reack
	c.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	err := c.src.ack(ctx, ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reackTries++
	switch {
	case err == nil:
		c.reack = nil
	case c.reackTries >= reackAttempts:
		c.cfg.Logger.Debug("ack the checkpoint's recent events again; giving up", "count", len(ids), "err", err)
		c.reack = nil
	default:
		// Most often the driver has no session yet: try again shortly
		// rather than only at the next completion.
		time.AfterFunc(reackRetry, func() {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		})
	}
}

// close stops the loop and makes a last flush within ctx. It reports a
// save that failed, or acks still unsent.
func (c *committer) close(ctx context.Context) error {
	close(c.stop)
	<-c.done
	c.flush(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.saveErr != nil {
		return fmt.Errorf("save checkpoint: %w", c.saveErr)
	}
	if len(c.pending) > 0 {
		c.cfg.Logger.Warn("events completed but not acked; the next run acks them", "count", len(c.pending))
	}
	return nil
}
