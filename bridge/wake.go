package bridge

import "sync"

// Wakeups tells waiters that a principal's log has grown. A wake-up carries
// no event: a waiter that misses one loses only latency, because it reads the
// log from its own cursor or lease state afterwards.
type Wakeups struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
}

// NewWakeups returns an empty set of waiters.
func NewWakeups() *Wakeups {
	return &Wakeups{waiting: make(map[string]chan struct{})}
}

// Wait returns a channel that is closed at the next Notify for principal.
// Take the channel before reading the log, so an append between the read and
// the wait is not missed.
func (w *Wakeups) Wait(principal string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.waiting[principal]
	if !ok {
		ch = make(chan struct{})
		w.waiting[principal] = ch
	}
	return ch
}

// Notify wakes every current waiter of principal.
func (w *Wakeups) Notify(principal string) {
	w.mu.Lock()
	ch, ok := w.waiting[principal]
	delete(w.waiting, principal)
	w.mu.Unlock()
	if ok {
		close(ch)
	}
}
