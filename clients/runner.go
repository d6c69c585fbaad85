package clients

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// Handler does the work for one event. Return nil once the work is done
// for good: only then is the event recorded in the checkpoint and acked.
// Return an error to have it retried after a backoff (Config.Retry); the
// events of its label wait meanwhile, so they stay in order. ctx ends when
// the driver stops; a handler that returns early then leaves its event for
// the next run.
//
// A handler runs at least once per event, and more than once only when a
// run ended between the handler's return and the checkpoint save, so make
// its effects idempotent on Event.ID.
type Handler func(ctx context.Context, e Event) error

// Driver runs a Handler over one delivery path until ctx ends or a
// failure no retry can fix; every driver of this package is one.
type Driver interface {
	Run(ctx context.Context, h Handler) error
}

// acker is a delivery path's side of completion: what the server is told
// of an event's fate. Events taken but not finished when a run ends are
// not handed back: a leased one comes back when its lease runs out, and a
// cursor driver reads the others again from its checkpoint (see
// NewToolPoller for why not with nack_event).
type acker interface {
	// ack tells the server the events are done. It is called once a saved
	// checkpoint holds them, and again after a failure: with the same IDs
	// when it got no answer, one ID at a time when the server refused the
	// batch. A refusal (the server's answer) is a *refusalError; any other
	// error means no answer.
	ack(ctx context.Context, ids []string) error
	// nack tells the server the handler failed and will be retried after
	// delay; dead reports that the server gave up on the event.
	nack(ctx context.Context, e Event, delay time.Duration) (dead bool, err error)
}

// shutdownGrace bounds the last checkpoint save and acks after a run's
// context has ended.
const shutdownGrace = 5 * time.Second

// runner hands a driver's events to the handler with the semantics every
// driver shares: per-label order, bounded concurrency, retries with
// backoff, checkpoint before ack, and skipping what the checkpoint lists.
type runner struct {
	cfg    Config
	h      Handler
	src    acker
	track  *tracker
	commit *committer

	ctx    context.Context // the run's; handlers get it
	cancel context.CancelFunc
	slots  chan struct{} // one per running handler

	mu       sync.Mutex
	queues   map[string][]Event // per label, in the order given
	running  map[string]bool    // labels with a drain goroutine
	known    map[string]bool    // IDs queued, running or waiting to retry
	buffered int
	room     chan struct{} // closed when buffered drops
	wg       sync.WaitGroup
}

// newRunner starts a run over progress p, loaded from cfg.Checkpoint.
func newRunner(ctx context.Context, cfg Config, h Handler, src acker, p Progress) *runner {
	r := &runner{
		cfg:     cfg,
		h:       h,
		src:     src,
		track:   newTracker(p),
		slots:   make(chan struct{}, cfg.Concurrency),
		queues:  make(map[string][]Event),
		running: make(map[string]bool),
		known:   make(map[string]bool),
		room:    make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	r.commit = startCommitter(cfg, r.track, src, reconnect())
	r.commit.reackRecent(p.Recent)
	return r
}

// space waits until the runner can take more events and returns how many.
func (r *runner) space(ctx context.Context) (int, error) {
	for {
		r.mu.Lock()
		free, room := r.cfg.Buffer-r.buffered, r.room
		r.mu.Unlock()
		if free > 0 {
			return free, nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// offer hands the runner one event. One already queued or running is
// ignored; one the checkpoint lists as completed is acked again without
// running the handler. It waits for space, so a driver that offers only
// after space never waits here.
func (r *runner) offer(ctx context.Context, e Event) error {
	if _, err := r.space(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known[e.ID] {
		return nil
	}
	if r.track.completed(e.ID) {
		r.commit.add(e.ID)
		return nil
	}
	r.known[e.ID] = true
	r.buffered++
	r.track.given(e.ID)
	r.queues[e.Label] = append(r.queues[e.Label], e)
	if !r.running[e.Label] {
		r.running[e.Label] = true
		r.wg.Go(func() { r.drain(e.Label) })
	}
	return nil
}

// drain handles one label's events in order until its queue is empty or
// the run ends.
func (r *runner) drain(label string) {
	for {
		r.mu.Lock()
		q := r.queues[label]
		if len(q) == 0 || r.ctx.Err() != nil {
			delete(r.running, label)
			r.mu.Unlock()
			return
		}
		e := q[0]
		r.mu.Unlock()
		if !r.handle(e) {
			return // the run ended; e comes back to the next run (see acker)
		}
		r.mu.Lock()
		r.queues[label] = r.queues[label][1:]
		if len(r.queues[label]) == 0 {
			delete(r.queues, label)
		}
		delete(r.known, e.ID)
		r.buffered--
		close(r.room)
		r.room = make(chan struct{})
		r.mu.Unlock()
	}
}

// handle runs the handler on e until it succeeds or is given up, and
// reports false if the run ended first.
func (r *runner) handle(e Event) bool {
	for attempt := 1; ; attempt++ {
		select {
		case r.slots <- struct{}{}:
		case <-r.ctx.Done():
			return false
		}
		err := r.call(e)
		<-r.slots
		if err == nil {
			r.track.complete(e.ID)
			r.commit.add(e.ID)
			return true
		}
		if r.ctx.Err() != nil {
			return false // the handler most likely stopped because the run did
		}
		delay := r.cfg.Retry.Delay(attempt)
		dead, nackErr := r.src.nack(r.ctx, e, delay)
		if nackErr != nil {
			r.cfg.Logger.Warn("nack event", "event", e.ID, "err", nackErr)
		}
		switch {
		case dead:
			r.cfg.Logger.Warn("event dead-lettered by the server; moving on", "event", e.ID, "label", e.Label, "attempts", attempt, "err", err)
			return true
		case r.cfg.MaxAttempts > 0 && attempt >= r.cfg.MaxAttempts:
			r.cfg.Logger.Warn("giving up on event; it stays unacked", "event", e.ID, "label", e.Label, "attempts", attempt, "err", err)
			return true
		}
		r.cfg.Logger.Info("handler failed; retrying", "event", e.ID, "label", e.Label, "attempt", attempt, "retry_in", delay, "err", err)
		if !sleep(r.ctx, delay) {
			return false
		}
	}
}

// call runs the handler, turning a panic into an error so that one bad
// event cannot take the program down with its in-flight work.
func (r *runner) call(e Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked on event %s: %v\n%s", e.ID, p, debug.Stack())
		}
	}()
	return r.h(r.ctx, e)
}

// finish ends the run: it stops the handlers (their context ends), saves
// the checkpoint and sends the last acks, then returns err, the driver's
// reason to stop. What the handlers did not finish is left to come back
// (see acker). It is called once, by the driver, after its last offer.
func (r *runner) finish(err error) error {
	r.cancel()
	r.wg.Wait()
	grace, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), shutdownGrace)
	defer cancel()
	unfinished := 0
	for _, q := range r.queues {
		unfinished += len(q)
	}
	if unfinished > 0 {
		r.cfg.Logger.Info("run ending with events not handled; they come back to the next run", "count", unfinished)
	}
	if cerr := r.commit.close(grace); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// runWith is the frame of every driver's Run: it loads the checkpoint,
// starts a runner over it, lets feed offer events until feed returns (ctx
// ending, or a failure no retry fixes), then finishes the run. resume is
// the checkpoint's last completed ID, where a cursor driver starts reading
// ("" when nothing was completed yet).
func runWith(ctx context.Context, cfg Config, h Handler, src acker, feed func(ctx context.Context, r *runner, resume string) error) error {
	if h == nil {
		return errors.New("clients: Run needs a Handler")
	}
	p, err := cfg.Checkpoint.Load(ctx)
	if err != nil {
		return err
	}
	r := newRunner(ctx, cfg, h, src, p)
	return r.finish(feed(ctx, r, p.Last))
}

// noAcks is the acker of a delivery path without server acks (SSE, the
// MCP Events extension): the checkpoint is all the progress there is.
type noAcks struct{}

func (noAcks) ack(context.Context, []string) error                      { return nil }
func (noAcks) nack(context.Context, Event, time.Duration) (bool, error) { return false, nil }
