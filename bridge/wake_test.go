package bridge

import (
	"slices"
	"sync"
	"testing"
)

type recordingPublisher struct {
	mu  sync.Mutex
	got []string
}

func (p *recordingPublisher) Publish(principal string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, principal)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestWakeupsRelay: Notify wakes local waiters and publishes; NotifyLocal
// (a wake-up from another replica) does not publish again; NotifyAll wakes
// every principal's waiters.
func TestWakeupsRelay(t *testing.T) {
	pub := &recordingPublisher{}
	w := NewSharedWakeups(pub)

	a, b := w.Wait("alice"), w.Wait("bob")
	w.Notify("alice")
	if !closed(a) || closed(b) {
		t.Fatalf("Notify(alice): alice woken %v, bob woken %v; want only alice", closed(a), closed(b))
	}
	a = w.Wait("alice")
	w.NotifyLocal("bob")
	if !closed(b) || closed(a) {
		t.Fatalf("NotifyLocal(bob): bob woken %v, alice woken %v; want only bob", closed(b), closed(a))
	}
	if !slices.Equal(pub.got, []string{"alice"}) {
		t.Fatalf("published %v, want [alice]: NotifyLocal must not publish", pub.got)
	}
	b = w.Wait("bob")
	w.NotifyAll()
	if !closed(a) || !closed(b) {
		t.Fatal("NotifyAll left a waiter asleep")
	}
	if c := w.Wait("alice"); closed(c) {
		t.Fatal("a Wait after NotifyAll is already woken")
	}
}
