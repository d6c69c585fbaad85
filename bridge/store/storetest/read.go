package storetest

import (
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

func readTests() []testCase {
	return []testCase{
		{"AfterIsExclusive", testReadAfter},
		{"ZeroReadsFromOldest", testReadZero},
		{"Limit", testReadLimit},
		{"LabelFilter", testReadLabel},
		{"AckedAndDeadStillReadable", testReadAckedAndDead},
		{"CurrentDeliveryCount", testReadDeliveryCount},
		{"GetUnknown", testGetUnknown},
		{"Pending", testReadPending},
	}
}

func testReadAfter(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 5)
	wantIDs(t, "Read after the second", e.read(alice, store.Query{After: list[1]}), list[2:])
	wantIDs(t, "Read after the last", e.read(alice, store.Query{After: list[4]}), nil)
	// A cursor between two IDs (a bare timestamp, say) is valid too.
	wantIDs(t, "Read after a millisecond before the first",
		e.read(alice, store.Query{After: store.ID{MS: list[0].MS - 1}}), list)
}

func testReadZero(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 3)
	got := e.read(alice, store.Query{After: store.Zero})
	wantIDs(t, "Read from Zero", got, list)
	if got == nil {
		t.Errorf("Read from Zero returned nil, want a slice")
	}
	if empty := e.read(bob, store.Query{}); len(empty) != 0 {
		t.Errorf("Read of a principal with no events = %v, want none", ids(empty))
	}
}

func testReadLimit(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, store.DefaultReadLimit+20)
	wantIDs(t, "Read with Limit 2", e.read(alice, store.Query{Limit: 2}), list[:2])
	wantIDs(t, "Read with Limit 2 after the first", e.read(alice, store.Query{After: list[0], Limit: 2}), list[1:3])
	wantIDs(t, "Read with no Limit", e.read(alice, store.Query{}), list[:store.DefaultReadLimit])
}

func testReadLabel(t *testing.T, e *env) {
	ra := e.register(alice, "alpha")
	rb := e.register(alice, "beta")
	var alpha, beta, all []store.ID
	for i := range 6 {
		if i%3 == 1 {
			beta = append(beta, e.append(e.event(rb, "")).ID)
			all = append(all, beta[len(beta)-1])
		} else {
			alpha = append(alpha, e.append(e.event(ra, "")).ID)
			all = append(all, alpha[len(alpha)-1])
		}
		e.clock.Advance(time.Millisecond)
	}
	wantIDs(t, "Read alpha", e.readAll(alice, "alpha"), alpha)
	wantIDs(t, "Read beta", e.readAll(alice, "beta"), beta)
	wantIDs(t, "Read every label", e.readAll(alice, ""), all)
	wantIDs(t, "Read alpha after its first, Limit 2",
		e.read(alice, store.Query{Label: "alpha", After: alpha[0], Limit: 2}), alpha[1:3])
	wantIDs(t, "Read alpha after a beta ID",
		e.read(alice, store.Query{Label: "alpha", After: beta[0]}), alpha[1:])
	wantIDs(t, "Read an unknown label", e.read(alice, store.Query{Label: "gamma"}), nil)
	// A label that is a prefix of another selects only its own events.
	rp := e.register(alice, "alph")
	p := e.append(e.event(rp, "")).ID
	wantIDs(t, "Read alpha beside alph", e.readAll(alice, "alpha"), alpha)
	wantIDs(t, "Read alph", e.readAll(alice, "alph"), []store.ID{p})
}

func testReadAckedAndDead(t *testing.T, e *env) {
	r := e.register(alice, "hooks", withMaxAttempts(1))
	list := e.appendN(r, 3)
	e.wantLease(alice, store.LeaseQuery{Limit: 2}, list[:2], 1)
	e.ack(alice, list[0])
	if !e.nack(alice, list[1], 0) {
		t.Fatalf("Nack after the only allowed attempt did not dead-letter")
	}
	got := e.readAll(alice, "")
	wantIDs(t, "Read", got, list)
	for i, want := range []int{1, 1, 0} {
		if got[i].DeliveryCount != want {
			t.Errorf("event %s DeliveryCount = %d, want %d", got[i].ID, got[i].DeliveryCount, want)
		}
	}
	for _, id := range list[:2] {
		e.get(alice, id)
	}
}

func testReadDeliveryCount(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 1)
	for lease := 1; lease <= 3; lease++ {
		e.wantLease(alice, store.LeaseQuery{For: time.Minute}, list, 0)
		wantDeliveries(t, "Read", e.readAll(alice, ""), lease)
		wantDeliveries(t, "Read by label", e.readAll(alice, "hooks"), lease)
		if got := e.get(alice, list[0]).DeliveryCount; got != lease {
			t.Errorf("Get DeliveryCount = %d, want %d", got, lease)
		}
		e.clock.Advance(time.Minute + time.Millisecond)
	}
}

func testGetUnknown(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 1)
	_, err := e.s.Get(e.ctx, alice, list[0].Next())
	wantErrIs(t, "Get of an unknown ID", err, store.ErrNotFound)
}

// testReadPending: ReadPending is Read of exactly the events Pending counts,
// leased or not.
func testReadPending(t *testing.T, e *env) {
	ra := e.register(alice, "alpha", withMaxAttempts(1))
	rb := e.register(alice, "beta")
	rc := e.register(alice, "gone")
	a := e.appendN(ra, 4) // acked, dead, leased, waiting
	b := e.appendN(rb, 2)
	e.appendN(rc, 1)
	e.wantLease(alice, store.LeaseQuery{Label: "alpha", Limit: 3}, a[:3], 1)
	e.ack(alice, a[0])
	e.nack(alice, a[1], 0)
	if err := e.s.DeleteRegistration(e.ctx, alice, "gone"); err != nil {
		t.Fatalf("DeleteRegistration: %v", err)
	}

	readPending := func(q store.Query) []store.Event {
		t.Helper()
		events, err := e.s.ReadPending(e.ctx, alice, q)
		if err != nil {
			t.Fatalf("ReadPending(%+v): %v", q, err)
		}
		return events
	}
	all := []store.ID{a[2], a[3], b[0], b[1]}
	got := readPending(store.Query{})
	wantIDs(t, "ReadPending", got, all)
	if len(got) == 4 && got[0].DeliveryCount != 1 {
		t.Errorf("ReadPending: leased event DeliveryCount = %d, want 1", got[0].DeliveryCount)
	}
	e.wantPending(alice, "", len(all))
	wantIDs(t, "ReadPending alpha", readPending(store.Query{Label: "alpha"}), a[2:])
	wantIDs(t, "ReadPending after the leased one, Limit 2",
		readPending(store.Query{After: a[2], Limit: 2}), []store.ID{a[3], b[0]})
	wantIDs(t, "ReadPending of the deleted registration's label", readPending(store.Query{Label: "gone"}), nil)
	events, err := e.s.ReadPending(e.ctx, bob, store.Query{})
	if err != nil || len(events) != 0 {
		t.Errorf("bob's ReadPending = %v, %v; want none", ids(events), err)
	}
}

func isolationTests() []testCase {
	return []testCase{
		{"Principals", testPrincipalsIsolated},
	}
}

// testPrincipalsIsolated gives two principals the same label and checks
// that no call of one sees or changes the other's events. Bob's events come
// a second later so that no ID of his can equal one of Alice's, even in a
// backend that numbers each principal's events separately.
func testPrincipalsIsolated(t *testing.T, e *env) {
	ra := e.register(alice, "shared")
	aliceIDs := e.appendN(ra, 3)
	e.clock.Advance(time.Second)
	rb := e.register(bob, "shared")
	bobIDs := e.appendN(rb, 2)

	wantIDs(t, "bob's Read", e.readAll(bob, ""), bobIDs)
	wantIDs(t, "bob's Read of the shared label", e.readAll(bob, "shared"), bobIDs)
	wantIDs(t, "alice's Read", e.readAll(alice, "shared"), aliceIDs)
	e.wantPending(bob, "", 2)
	e.wantPending(bob, "shared", 2)
	e.wantPending(alice, "shared", 3)

	for _, id := range aliceIDs {
		_, err := e.s.Get(e.ctx, bob, id)
		wantErrIs(t, "bob's Get of alice's event", err, store.ErrNotFound)
		_, err = e.s.Ack(e.ctx, bob, []store.ID{id})
		wantErrIs(t, "bob's Ack of alice's event", err, store.ErrNotFound)
		_, err = e.s.Nack(e.ctx, bob, id, 0, "")
		wantErrIs(t, "bob's Nack of alice's event", err, store.ErrNotFound)
	}
	e.wantPending(alice, "", 3)

	e.wantLease(bob, store.LeaseQuery{}, bobIDs, 0)
	e.wantLease(alice, store.LeaseQuery{Label: "shared"}, aliceIDs, 0)
	if got := e.deadLetters(bob, store.Query{}); len(got) != 0 {
		t.Errorf("bob's DeadLetters = %v, want none", ids(got))
	}

	regs, err := e.s.Registrations(e.ctx, bob)
	if err != nil {
		t.Fatalf("Registrations: %v", err)
	}
	if len(regs) != 1 || regs[0].ID != rb.ID {
		t.Errorf("bob's Registrations = %+v, want only %s", regs, rb.ID)
	}

	const carol = "carol"
	wantIDs(t, "carol's Read", e.readAll(carol, ""), nil)
	e.wantPending(carol, "", 0)
	e.wantLease(carol, store.LeaseQuery{}, nil, 0)
}
