package storetest

import (
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

func compactTests() []testCase {
	return []testCase{
		{"RemovesExpired", testCompactExpired},
		{"PerRegistrationTTL", testCompactPerRegistration},
	}
}

func (e *env) compact(want int) {
	e.t.Helper()
	n, err := e.s.Compact(e.ctx)
	if err != nil {
		e.t.Fatalf("Compact: %v", err)
	}
	if n != want {
		e.t.Errorf("Compact = %d, want %d", n, want)
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
	e.compact(2)

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
	e.compact(2)
	wantIDs(t, "Read after the short TTL", e.readAll(alice, ""), l)

	e.clock.Advance(store.DefaultTTL - 2*time.Hour - time.Minute)
	e.compact(0)
	e.clock.Advance(2 * time.Minute)
	e.compact(2)
	wantIDs(t, "Read after the default TTL", e.readAll(alice, ""), nil)
	e.wantPending(alice, "", 0)
}
