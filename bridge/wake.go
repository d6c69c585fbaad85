package bridge

import "sync"

// Wakeups tells waiters that a principal's log has grown. A wake-up carries
// no event: a waiter that misses one loses only latency, because it reads the
// log from its own cursor or lease state afterwards.
//
// With a Publisher, Notify also tells the other replicas that share the
// store, whose relays call NotifyLocal (and NotifyAll when they may have
// missed some), so a subscriber on one replica wakes for an append taken in
// by another.
type Wakeups struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
	relay   Publisher
}

// A Publisher carries wake-ups to the other replicas sharing the store. It
// must not block: Notify is called on the ingress path after the append
// has committed, and a wake-up it fails to carry costs latency only.
type Publisher interface {
	Publish(principal string)
}

// NewWakeups returns an empty set of waiters that wakes only this process.
func NewWakeups() *Wakeups {
	return &Wakeups{waiting: make(map[string]chan struct{})}
}

// NewSharedWakeups returns an empty set of waiters whose Notify also goes to
// relay, for replicas that share a store.
func NewSharedWakeups(relay Publisher) *Wakeups {
	w := NewWakeups()
	w.relay = relay
	return w
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

// Notify wakes every current waiter of principal, here and, through the
// Publisher if there is one, on the other replicas.
func (w *Wakeups) Notify(principal string) {
	w.NotifyLocal(principal)
	if w.relay != nil {
		w.relay.Publish(principal)
	}
}

// NotifyLocal wakes every current waiter of principal in this process only:
// it is how a wake-up from another replica is delivered.
func (w *Wakeups) NotifyLocal(principal string) {
	w.mu.Lock()
	ch, ok := w.waiting[principal]
	delete(w.waiting, principal)
	w.mu.Unlock()
	if ok {
		close(ch)
	}
}

// NotifyAll wakes every current waiter of every principal in this process,
// so each re-reads the log. A relay calls it when it may have missed
// wake-ups: on (re)connecting, and now and then as a safety net.
func (w *Wakeups) NotifyAll() {
	w.mu.Lock()
	waiting := w.waiting
	w.waiting = make(map[string]chan struct{})
	w.mu.Unlock()
	for _, ch := range waiting {
		close(ch)
	}
}
