package clients

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// flushTimeout bounds one checkpoint save plus its acks, so a server that
// hangs cannot hold completions back for long; what fails is retried.
const flushTimeout = 30 * time.Second

// committer records completions: it saves the checkpoint, then acks the
// completed events to the server, in batches, on a goroutine of its own so
// that a slow fsync or a slow ack never holds up a handler. Completions
// that arrive while one batch is being saved form the next batch.
//
// An event is acked only once a saved checkpoint holds it: while saves
// fail, nothing new is acked, and a save still failing when the run ends
// is the run's error. What fails (a save, or an ack that got no answer) is
// tried again with backoff until the run ends; an ID the server refuses
// to ack because it does not know it (gone after retention, say) is
// dropped, so that it cannot hold up the acks of the others.
type committer struct {
	cfg   Config
	track *tracker
	src   acker
	retry Backoff // spaces out the retries of failed saves and acks

	mu sync.Mutex
	// unsaved are completed events whose ack waits for a checkpoint save
	// that holds them.
	unsaved []string
	// unacked are events a saved checkpoint holds, not yet acked: those
	// of unsaved once saved, and, at the start of a run, the checkpoint's
	// recent completions (see reackRecent).
	unacked []string
	saveErr error // the last save's failure; nil once one succeeds

	wake chan struct{} // one token: there is something to commit
	stop chan struct{} // closed by close
	done chan struct{} // closed when the loop has returned
	// saved is the tracker version last saved; only the loop (and close,
	// after it) touch it.
	saved int
}

// startCommitter starts the committer of a run; retry spaces out its
// retries.
func startCommitter(cfg Config, track *tracker, src acker, retry Backoff) *committer {
	c := &committer{
		cfg: cfg, track: track, src: src, retry: retry,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		saved: -1,
	}
	go c.loop()
	return c
}

// reackRecent queues the checkpoint's recent completions for one more ack
// and has it tried at once. A run that died between saving its checkpoint
// and acking left them pending on the server, and a push driver, which
// resumes after the checkpoint, would never see them again to ack. Most
// are acked already, which is no error; some may be gone from the server
// by now, and are dropped when it refuses them.
func (c *committer) reackRecent(ids []string) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	c.unacked = append(c.unacked, ids...)
	c.mu.Unlock()
	signal(c.wake)
}

// add queues a completed event for the checkpoint and then the ack.
func (c *committer) add(id string) {
	c.mu.Lock()
	c.unsaved = append(c.unsaved, id)
	c.mu.Unlock()
	signal(c.wake)
}

// loop flushes on every wake and, while a flush leaves work undone, again
// after a backoff, until close.
func (c *committer) loop() {
	defer close(c.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop() // armed only while a flush has left work undone
	defer retry.Stop()
	failures := 0
	for {
		select {
		case <-c.wake:
		case <-retry.C:
		case <-c.stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		ok := c.flush(ctx)
		cancel()
		retry.Stop()
		if ok {
			failures = 0
			continue
		}
		failures++
		retry.Reset(c.retry.Delay(failures))
	}
}

// flush saves the progress (if it changed) and then acks what a saved
// checkpoint holds. It reports false when something is left to retry: a
// save that failed, or acks that got no answer. Events whose save failed
// are not acked; they wait for the next save.
func (c *committer) flush(ctx context.Context) bool {
	c.mu.Lock()
	ids := c.unsaved
	c.unsaved = nil
	c.mu.Unlock()
	ok := true
	// Every ID in ids completed before it was added, so the progress read
	// now holds it.
	p, version := c.track.progress()
	if version != c.saved {
		if err := c.cfg.Checkpoint.Save(ctx, p); err != nil {
			c.cfg.Logger.Warn("save checkpoint; its events are acked once a save succeeds", "count", len(ids), "err", err)
			c.mu.Lock()
			c.unsaved = append(ids, c.unsaved...)
			c.saveErr = err
			c.mu.Unlock()
			ids, ok = nil, false
		} else {
			c.saved = version
			c.mu.Lock()
			c.saveErr = nil
			c.mu.Unlock()
		}
	}
	c.mu.Lock()
	batch := append(c.unacked, ids...)
	c.unacked = nil
	c.mu.Unlock()
	if left := c.sendAcks(ctx, batch); len(left) > 0 {
		c.mu.Lock()
		c.unacked = append(left, c.unacked...)
		c.mu.Unlock()
		ok = false
	}
	return ok
}

// sendAcks acks ids and returns those to try again. A batch the server
// refuses (it refuses a whole batch for one ID it does not know) is acked
// again one ID at a time, so that only the IDs it refuses on their own are
// dropped; when the server cannot be reached, all of them are kept.
func (c *committer) sendAcks(ctx context.Context, ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	err := c.src.ack(ctx, ids)
	if err == nil {
		return nil
	}
	if !isRefusal(err) {
		c.cfg.Logger.Warn("ack events; will retry", "count", len(ids), "err", err)
		return ids
	}
	if len(ids) > 1 {
		c.cfg.Logger.Info("server refused a batch of acks; acking one at a time", "count", len(ids), "err", err)
	}
	var left []string
	for i, id := range ids {
		if len(ids) > 1 {
			err = c.src.ack(ctx, []string{id})
		}
		switch {
		case err == nil:
		case refusesID(err, id):
			// The checkpoint still lists it, so a redelivery is skipped
			// all the same.
			c.cfg.Logger.Warn("server refused the ack of an event it does not know; dropping it", "event", id, "err", err)
		case !isRefusal(err):
			c.cfg.Logger.Warn("ack events; will retry", "count", len(ids)-i, "err", err)
			return append(left, ids[i:]...)
		default:
			c.cfg.Logger.Warn("ack event refused; will retry", "event", id, "err", err)
			left = append(left, id)
		}
	}
	return left
}

// refusalError is a request the server answered with a refusal (a tool
// error, an error reply to a WebSocket ack), as opposed to one that got
// no answer at all (no session, a cut connection, a timeout).
type refusalError struct{ msg string }

// Error returns the refusal as the server worded it, with context.
func (e *refusalError) Error() string { return e.msg }

// isRefusal reports whether err is the server's answer rather than a
// failure to get one.
func isRefusal(err error) bool {
	var r *refusalError
	return errors.As(err, &r)
}

// refusesID reports whether err, the answer to an ack of id alone, refuses
// id for good: the contract has an unknown ID be a tool error that names
// it (hookgate: "event <id>: not found", or "event id <id> is not of the
// form..."), and other servers of the pattern say not found, unknown or
// invalid. A refusal that says neither, such as "store unavailable", is
// retried.
func refusesID(err error, id string) bool {
	if !isRefusal(err) {
		return false
	}
	msg := strings.ToLower(err.Error())
	if mentions(msg, strings.ToLower(id)) {
		return true
	}
	for _, word := range []string{"not found", "unknown", "invalid", "no such"} {
		if strings.Contains(msg, word) {
			return true
		}
	}
	return false
}

// mentions reports whether text holds id as a whole word, so that "1-1"
// is not found in "11-10".
func mentions(text, id string) bool {
	for i := 0; id != ""; {
		j := strings.Index(text[i:], id)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(id)
		if (start == 0 || !idChar(text[start-1])) && (end == len(text) || !idChar(text[end])) {
			return true
		}
		i = start + 1
	}
	return false
}

func idChar(b byte) bool {
	return b == '-' || b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// close stops the loop and makes a last flush within ctx. It reports a
// save that still fails (the events it holds are then not acked); acks
// still unsent are only logged, since the checkpoint holds them and the
// next run acks them.
func (c *committer) close(ctx context.Context) error {
	close(c.stop)
	<-c.done
	c.flush(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.saveErr != nil {
		return fmt.Errorf("save checkpoint (%d completed events not acked): %w", len(c.unsaved), c.saveErr)
	}
	if len(c.unacked) > 0 {
		c.cfg.Logger.Warn("events completed but not acked; the next run acks them", "count", len(c.unacked))
	}
	return nil
}
