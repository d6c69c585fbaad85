package storetest

import (
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

func durabilityTests() []testCase {
	return []testCase{
		{"Reopen", testReopen},
		{"ReopenEmpty", testReopenEmpty},
	}
}

// testReopen builds state of every kind, reopens the store and checks that
// all of it is still there and still behaves.
func testReopen(t *testing.T, e *env) {
	e.needReopen()
	alpha := e.register(alice, "alpha", withMaxAttempts(1))
	beta := e.register(alice, "beta")
	gone := e.register(alice, "gone")
	tok := store.Token{Hash: "abcd", Principal: alice, Name: "ci", CreatedAt: e.clock.Now()}
	if err := e.s.PutToken(e.ctx, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}

	acked := e.append(e.event(alpha, "evt_acked")).ID
	dead := e.append(e.event(alpha, "evt_dead")).ID
	leased := e.append(e.event(beta, "evt_leased")).ID
	waiting := e.append(e.event(alpha, "")).ID
	e.appendN(gone, 1)
	e.wantLease(alice, store.LeaseQuery{Label: "alpha", Limit: 2}, []store.ID{acked, dead}, 1)
	e.ack(alice, acked)
	e.nack(alice, dead, 0)
	e.wantLease(alice, store.LeaseQuery{Label: "beta", For: 10 * time.Minute}, []store.ID{leased}, 0)
	if err := e.s.DeleteRegistration(e.ctx, alice, "gone"); err != nil {
		t.Fatalf("DeleteRegistration: %v", err)
	}
	before := e.readAll(alice, "")
	regsBefore, err := e.s.Registrations(e.ctx, alice)
	if err != nil {
		t.Fatalf("Registrations: %v", err)
	}

	e.reopen()

	after := e.readAll(alice, "")
	wantIDs(t, "Read after reopen", after, ids(before))
	for i := range min(len(before), len(after)) {
		b, a := before[i], after[i]
		if a.DeliveryCount != b.DeliveryCount || a.Label != b.Label || !jsonEqual(a.Payload, b.Payload) ||
			!a.ReceivedAt.Equal(b.ReceivedAt) || a.ProviderEventID != b.ProviderEventID {
			t.Errorf("event after reopen = %+v, want %+v", a, b)
		}
	}
	e.wantPending(alice, "alpha", 1)
	e.wantPending(alice, "beta", 1)
	e.wantPending(alice, "gone", 0)
	wantIDs(t, "DeadLetters after reopen", e.deadLetters(alice, store.Query{}), []store.ID{dead})

	if res := e.append(e.event(alpha, "evt_acked")); !res.Duplicate || res.ID != acked {
		t.Errorf("Append of a stored provider ID after reopen = %+v, want Duplicate of %s", res, acked)
	}
	e.clock.Advance(-time.Hour)
	next := e.append(e.event(beta, "")).ID
	if next.Compare(before[len(before)-1].ID) <= 0 {
		t.Errorf("ID after reopen %s is not after %s", next, before[len(before)-1].ID)
	}
	e.clock.Advance(time.Hour)

	// The beta lease survives: beta's first event comes back only when it
	// runs out.
	e.wantLease(alice, store.LeaseQuery{Label: "beta", For: time.Hour}, []store.ID{next}, 0)
	e.clock.Advance(10*time.Minute + time.Second)
	got := e.wantLease(alice, store.LeaseQuery{Label: "beta"}, []store.ID{leased}, 0)
	wantDeliveries(t, "lease after reopen", got, 2)
	e.wantLease(alice, store.LeaseQuery{Label: "alpha"}, []store.ID{waiting}, 0)

	regsAfter, err := e.s.Registrations(e.ctx, alice)
	if err != nil {
		t.Fatalf("Registrations after reopen: %v", err)
	}
	if len(regsAfter) != len(regsBefore) {
		t.Fatalf("Registrations after reopen = %+v, want %+v", regsAfter, regsBefore)
	}
	for i := range regsBefore {
		wantRegistration(t, "registration after reopen", regsAfter[i], regsBefore[i])
	}
	if r, err := e.s.Registration(e.ctx, gone.ID); err != nil || !r.Deleted {
		t.Errorf("deleted registration after reopen = %+v, %v; want Deleted", r, err)
	}
	if got, err := e.s.TokenByHash(e.ctx, tok.Hash); err != nil || got.Principal != alice {
		t.Errorf("TokenByHash after reopen = %+v, %v", got, err)
	}
}

// testReopenEmpty: a store reopened before its first event starts IDs from
// the clock as usual.
func testReopenEmpty(t *testing.T, e *env) {
	e.needReopen()
	e.reopen()
	r := e.register(alice, "hooks")
	if id := e.append(e.event(r, "")).ID; id != (store.ID{MS: e.nowMS()}) {
		t.Errorf("first ID after reopen = %s, want %d-0", id, e.nowMS())
	}
}
