package bolt

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// maxGroup bounds how many operations share one transaction, so that one
// commit (and the memory it holds) stays bounded under a flood.
const maxGroup = 512

// An op is one caller's mutation, run by the committer inside a shared
// write transaction. fn must leave its results in variables it captured and
// must set them afresh on every run: if another op in the group fails, the
// transaction is rolled back and fn runs again in the next one.
type op struct {
	ctx  context.Context
	fn   func(*bbolt.Tx) error
	done chan error // buffered, so the committer never waits for a caller
}

// committer runs every mutation of the store on one goroutine, folding the
// operations that queue up while a commit is in flight into the next
// transaction. This is group commit without DB.Batch's timer: an operation
// arriving at an idle store is committed at once, and under load one fsync
// serves many callers.
type committer struct {
	db   *bbolt.DB
	log  *slog.Logger
	ops  chan *op
	done chan struct{}

	mu      sync.Mutex
	lastErr error // the last commit's failure, nil once one succeeds
}

func startCommitter(db *bbolt.DB, log *slog.Logger) *committer {
	c := &committer{
		db:   db,
		log:  log,
		ops:  make(chan *op, maxGroup),
		done: make(chan struct{}),
	}
	go c.run()
	return c
}

// do queues fn and waits until its transaction is committed. If ctx ends
// while it waits, do returns ctx's error, and fn may still be committed
// later: the caller cannot know.
func (c *committer) do(ctx context.Context, fn func(*bbolt.Tx) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case c.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("outcome unknown: %w", ctx.Err())
	}
}

// stop commits what is queued and ends the goroutine. No do may start
// after stop is called.
func (c *committer) stop() {
	close(c.ops)
	<-c.done
}

func (c *committer) lastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *committer) run() {
	defer close(c.done)
	group := make([]*op, 0, maxGroup)
	for first := range c.ops {
		group = append(group[:0], first)
	fill:
		for len(group) < maxGroup {
			select {
			case o, ok := <-c.ops:
				if !ok {
					break fill
				}
				group = append(group, o)
			default:
				break fill
			}
		}
		c.commit(group)
		clear(group) // drop references to finished ops and their payloads
	}
}

// commit runs group in one transaction. An op that fails is answered with
// its error and the others are run again without it, so one bad op never
// fails its neighbours; a failed commit fails them all.
func (c *committer) commit(group []*op) {
	group = slices.DeleteFunc(group, func(o *op) bool {
		if err := o.ctx.Err(); err != nil {
			o.done <- err
			return true
		}
		return false
	})
	for len(group) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bbolt.Tx) error {
			for i, o := range group {
				if err := o.fn(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			group[failed].done <- err
			group = slices.Delete(group, failed, failed+1)
			continue
		}
		if err != nil {
			c.log.Error("store commit failed", "ops", len(group), "err", err)
			err = fmt.Errorf("%w: commit: %w", store.ErrUnavailable, err)
		}
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		for _, o := range group {
			o.done <- err
		}
		return
	}
}
