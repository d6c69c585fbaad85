package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

func requeueTests() []testCase {
	return []testCase{
		{"Acked", testRequeueAcked},
		{"DeadLetter", testRequeueDeadLetter},
		{"PendingKeepsLease", testRequeuePending},
		{"Twice", testRequeueTwice},
		{"UnknownIDRequeuesNothing", testRequeueUnknown},
		{"OtherPrincipal", testRequeueOtherPrincipal},
		{"DeletedRegistration", testRequeueDeleted},
		{"LabelQueue", testRequeueLabel},
		{"Empty", testRequeueEmpty},
		{"Cancelled", testRequeueCancelled},
	}
}

func (e *env) requeue(principal string, ids ...store.ID) int {
	e.t.Helper()
	n, err := e.s.Requeue(e.ctx, principal, ids)
	if err != nil {
		e.t.Fatalf("Requeue(%s, %v): %v", principal, ids, err)
	}
	return n
}

// testRequeueAcked: acked events are leased again, oldest first, as if
// new, and the log itself is unchanged.
func testRequeueAcked(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 3)
	e.wantLease(alice, store.LeaseQuery{}, list, 0)
	e.ack(alice, list[0], list[2])
	if n := e.requeue(alice, list[2], list[0]); n != 2 {
		t.Errorf("Requeue of two acked events = %d, want 2", n)
	}
	e.wantPending(alice, "", 3)
	got := e.wantLease(alice, store.LeaseQuery{}, []store.ID{list[0], list[2]}, 0)
	wantDeliveries(t, "lease after requeue", got, 1)
	wantIDs(t, "Read after requeue", e.readAll(alice, ""), list)
	pending, err := e.s.ReadPending(e.ctx, alice, store.Query{})
	if err != nil {
		t.Fatalf("ReadPending: %v", err)
	}
	wantIDs(t, "ReadPending after requeue", pending, list)
}

// testRequeueDeadLetter: a dead letter leaves the list and gets the full
// attempt limit again.
func testRequeueDeadLetter(t *testing.T, e *env) {
	r := e.register(alice, "hooks", withMaxAttempts(2))
	list := e.appendN(r, 1)
	for range 2 {
		e.wantLease(alice, store.LeaseQuery{}, list, 0)
		e.nack(alice, list[0], 0)
	}
	wantIDs(t, "DeadLetters before requeue", e.deadLetters(alice, store.Query{}), list)
	if n := e.requeue(alice, list[0]); n != 1 {
		t.Errorf("Requeue of a dead letter = %d, want 1", n)
	}
	wantIDs(t, "DeadLetters after requeue", e.deadLetters(alice, store.Query{}), nil)
	e.wantPending(alice, "hooks", 1)
	got := e.wantLease(alice, store.LeaseQuery{}, list, 0)
	wantDeliveries(t, "first lease after requeue", got, 1)
	if e.nack(alice, list[0], 0) {
		t.Errorf("Nack after one lease dead-lettered a requeued event; want its attempts restarted")
	}
	e.wantLease(alice, store.LeaseQuery{}, list, 0)
	if !e.nack(alice, list[0], 0) {
		t.Errorf("Nack after MaxAttempts leases did not dead-letter the requeued event")
	}
}

// testRequeuePending: an event still pending keeps its lease and is not
// counted.
func testRequeuePending(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	e.wantLease(alice, store.LeaseQuery{Limit: 1, For: time.Hour}, list[:1], 1)
	if n := e.requeue(alice, list...); n != 0 {
		t.Errorf("Requeue of pending events = %d, want 0", n)
	}
	e.wantPending(alice, "", 2)
	e.wantLease(alice, store.LeaseQuery{}, list[1:], 0)
}

func testRequeueTwice(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 1)
	e.ack(alice, list[0])
	if n := e.requeue(alice, list[0], list[0]); n != 1 {
		t.Errorf("Requeue naming one event twice = %d, want 1", n)
	}
	if n := e.requeue(alice, list[0]); n != 0 {
		t.Errorf("second Requeue = %d, want 0", n)
	}
	e.wantPending(alice, "", 1)
}

func testRequeueUnknown(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	e.ack(alice, list...)
	unknown := store.ID{MS: 1, Seq: 7}
	n, err := e.s.Requeue(e.ctx, alice, []store.ID{list[0], unknown, list[1]})
	wantErrIs(t, "Requeue with an unknown ID", err, store.ErrNotFound)
	if err != nil && !strings.Contains(err.Error(), unknown.String()) {
		t.Errorf("Requeue error %q does not name the unknown ID %s", err, unknown)
	}
	if n != 0 {
		t.Errorf("failed Requeue = %d, want 0", n)
	}
	e.wantPending(alice, "", 0)
}

func testRequeueOtherPrincipal(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	e.register(bob, "hooks")
	list := e.appendN(r, 1)
	e.ack(alice, list[0])
	_, err := e.s.Requeue(e.ctx, bob, list)
	wantErrIs(t, "Requeue of another principal's event", err, store.ErrNotFound)
	e.wantPending(alice, "", 0)
	e.wantPending(bob, "", 0)
}

// testRequeueDeleted: a deleted registration's queue is gone, and requeue
// does not bring it back.
func testRequeueDeleted(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	e.ack(alice, list[0])
	if err := e.s.DeleteRegistration(e.ctx, alice, "hooks"); err != nil {
		t.Fatalf("DeleteRegistration: %v", err)
	}
	if n := e.requeue(alice, list...); n != 0 {
		t.Errorf("Requeue into a deleted registration = %d, want 0", n)
	}
	e.wantPending(alice, "", 0)
	e.wantLease(alice, store.LeaseQuery{}, nil, 0)
}

func testRequeueLabel(t *testing.T, e *env) {
	ra := e.register(alice, "alpha")
	rb := e.register(alice, "beta")
	a := e.append(e.event(ra, "")).ID
	b := e.append(e.event(rb, "")).ID
	e.ack(alice, a, b)
	e.requeue(alice, b)
	e.wantPending(alice, "alpha", 0)
	e.wantPending(alice, "beta", 1)
	e.wantLease(alice, store.LeaseQuery{Label: "alpha"}, nil, 0)
	e.wantLease(alice, store.LeaseQuery{Label: "beta"}, []store.ID{b}, 0)
}

func testRequeueEmpty(t *testing.T, e *env) {
	if n := e.requeue(alice); n != 0 {
		t.Errorf("Requeue of nothing = %d, want 0", n)
	}
}

func testRequeueCancelled(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 1)
	e.ack(alice, list[0])
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.s.Requeue(ctx, alice, list); err == nil {
		t.Errorf("Requeue with a cancelled context succeeded")
	}
	e.wantPending(alice, "", 0)
}
