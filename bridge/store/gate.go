package store

import (
	"context"
	"fmt"
	"sync"
)

// ErrClosed is what a backend's methods return after Close.
var ErrClosed = fmt.Errorf("%w: store is closed", ErrUnavailable)

// Gate lets a backend close safely while calls are in flight: every method
// enters the gate first and leaves it when done, and Close shuts the gate
// and waits for the calls inside, so the backend never tears down a file or
// a connection pool under a running call. The zero Gate is open.
type Gate struct {
	mu       sync.RWMutex // guards closed
	closed   bool
	inflight sync.WaitGroup
}

// Enter admits one call, or returns ctx's error (a cancelled call changes
// nothing) or ErrClosed. A call admitted must Leave.
func (g *Gate) Enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return ErrClosed
	}
	g.inflight.Add(1)
	return nil
}

// Leave ends a call that Enter admitted.
func (g *Gate) Leave() { g.inflight.Done() }

// Close shuts the gate and waits for the calls inside. It reports false if
// the gate was already shut, so that closing a backend twice is harmless.
func (g *Gate) Close() bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.closed = true
	g.mu.Unlock()
	g.inflight.Wait()
	return true
}
