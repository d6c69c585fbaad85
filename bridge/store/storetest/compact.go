package storetest

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

func compactTests() []testCase {
	return []testCase{
		{"RemovesExpired", testCompactExpired},
		{"PerRegistrationTTL", testCompactPerRegistration},
		{"CountsUnacked", testCompactCountsUnacked},
	}
}

// compact runs Compact and fails unless it deleted want events, of which
// those in unacked (in any order) were pending.
func (e *env) compact(want int, unacked ...store.Dropped) {
	e.t.Helper()
	res, err := e.s.Compact(e.ctx)
	if err != nil {
		e.t.Fatalf("Compact: %v", err)
	}
	if res.Deleted != want {
		e.t.Errorf("Compact deleted %d, want %d", res.Deleted, want)
	}
	wantDropped(e.t, "Compact's Unacked", res.Unacked, unacked)
}

// wantDropped fails unless got has the counts of want, in any order, with
// no entry for nothing.
func wantDropped(t *testing.T, what string, got, want []store.Dropped) {
	t.Helper()
	order := func(a, b store.Dropped) int {
		return cmp.Or(cmp.Compare(a.Principal, b.Principal), cmp.Compare(a.Label, b.Label))
	}
	g, w := slices.SortedFunc(slices.Values(got), order), slices.SortedFunc(slices.Values(want), order)
	if !slices.Equal(g, w) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// testCompactExpired expires a leased event and a dead letter with their
// dedup records, and keeps a younger event.
func testCompactExpired(t *testing.T, e *env) {
	r := e.register(alice, "hooks", withTTL(time.Hour), withMaxAttempts(1))
	leased := e.append(e.event(r, "evt_leased")).ID
	dead := e.append(e.event(r, "evt_dead")).ID
	e.wantLease(alice, store.LeaseQuery{For: 2 * time.Hour}, []store.ID{leased, dead}, 0)
	e.nack(alice, dead, 0)
	e.clock.Advance(40 * time.Minute)
	young := e.append(e.event(r, "evt_young")).ID

	e.clock.Advance(19 * time.Minute) // the first two are 59 minutes old
	e.compact(0)
	e.clock.Advance(2 * time.Minute)
	// The leased event was still pending: a drop. The dead letter was
	// already counted as one when it died.
	e.compact(2, store.Dropped{Principal: alice, Label: "hooks", Events: 1})

	for _, id := range []store.ID{leased, dead} {
		_, err := e.s.Get(e.ctx, alice, id)
		wantErrIs(t, "Get of a compacted event", err, store.ErrNotFound)
	}
	wantIDs(t, "Read after compaction", e.readAll(alice, ""), []store.ID{young})
	wantIDs(t, "Read by label after compaction", e.readAll(alice, "hooks"), []store.ID{young})
	wantIDs(t, "DeadLetters after compaction", e.deadLetters(alice, store.Query{}), nil)
	e.wantPending(alice, "", 1)

	res := e.append(e.event(r, "evt_leased"))
	if res.Duplicate || res.ID.Compare(young) <= 0 {
		t.Errorf("Append of a compacted provider ID = %+v, want a new event after %s", res, young)
	}
	if dup := e.append(e.event(r, "evt_young")); !dup.Duplicate || dup.ID != young {
		t.Errorf("Append of a retained provider ID = %+v, want Duplicate of %s", dup, young)
	}
	e.wantLease(alice, store.LeaseQuery{}, []store.ID{young, res.ID}, 0)
	e.compact(0)
}

func testCompactPerRegistration(t *testing.T, e *env) {
	short := e.register(alice, "short", withTTL(time.Hour))
	long := e.register(alice, "long") // store.DefaultTTL
	e.appendN(short, 2)
	l := e.appendN(long, 2)

	e.clock.Advance(2 * time.Hour)
	e.compact(2, store.Dropped{Principal: alice, Label: "short", Events: 2})
	wantIDs(t, "Read after the short TTL", e.readAll(alice, ""), l)

	e.clock.Advance(store.DefaultTTL - 2*time.Hour - time.Minute)
	e.compact(0)
	e.clock.Advance(2 * time.Minute)
	e.compact(2, store.Dropped{Principal: alice, Label: "long", Events: 2})
	wantIDs(t, "Read after the default TTL", e.readAll(alice, ""), nil)
	e.wantPending(alice, "", 0)
}

// testCompactCountsUnacked: of the events retention deletes, Unacked
// counts by principal and label those still pending, leased or not; acked
// events, dead letters and the events of a deleted registration are not
// counted, since they were not dropped by retention.
func testCompactCountsUnacked(t *testing.T, e *env) {
	a := e.register(alice, "alpha", withTTL(time.Hour), withMaxAttempts(1))
	b := e.register(alice, "beta", withTTL(time.Hour))
	gone := e.register(alice, "gone", withTTL(time.Hour))
	bobs := e.register(bob, "alpha", withTTL(time.Hour))
	alpha := e.appendN(a, 4)
	e.appendN(b, 1)
	e.appendN(gone, 2)
	e.appendN(bobs, 3)
	e.wantLease(alice, store.LeaseQuery{Label: "alpha", Limit: 3, For: time.Minute}, alpha[:3], 1)
	e.ack(alice, alpha[0])
	e.nack(alice, alpha[1], 0) // its one attempt used: dead
	// alpha[2] stays leased, alpha[3] was never leased: both pending.
	if err := e.s.DeleteRegistration(e.ctx, alice, "gone"); err != nil {
		t.Fatalf("DeleteRegistration: %v", err)
	}

	e.clock.Advance(time.Hour + time.Minute)
	e.compact(10,
		store.Dropped{Principal: alice, Label: "alpha", Events: 2},
		store.Dropped{Principal: alice, Label: "beta", Events: 1},
		store.Dropped{Principal: bob, Label: "alpha", Events: 3})
	e.compact(0)
}
