package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

func leaseTests() []testCase {
	return []testCase{
		{"OldestFirstWithLimit", testLeaseOrder},
		{"DefaultLimit", testLeaseDefaultLimit},
		{"HiddenUntilExpiry", testLeaseExpiry},
		{"DefaultLength", testLeaseDefaultLength},
		{"LabelFilter", testLeaseLabel},
		{"RemainingAvailableOnly", testLeaseRemaining},
		{"RemainingAfterNack", testLeaseRemainingNack},
		{"RemainingWithoutSpent", testLeaseRemainingSpent},
	}
}

// testLeaseOrder also pins down Remaining: the events a next lease would
// hand out, so not the ones leased by earlier calls.
func testLeaseOrder(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 5)
	got := e.wantLease(alice, store.LeaseQuery{Limit: 2}, list[:2], 3)
	wantDeliveries(t, "first lease", got, 1)
	e.wantLease(alice, store.LeaseQuery{Limit: 2}, list[2:4], 1)
	e.wantLease(alice, store.LeaseQuery{Limit: 10}, list[4:], 0)
	e.wantLease(alice, store.LeaseQuery{Limit: 10}, nil, 0)
	e.wantPending(alice, "", 5)
	later := e.appendN(r, 1)
	e.wantLease(alice, store.LeaseQuery{}, later, 0)
}

func testLeaseDefaultLimit(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, store.DefaultLeaseLimit+2)
	e.wantLease(alice, store.LeaseQuery{}, list[:store.DefaultLeaseLimit], 2)
}

func testLeaseExpiry(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	q := store.LeaseQuery{For: time.Minute}
	e.wantLease(alice, q, list, 0)
	e.clock.Advance(time.Minute - time.Second)
	e.wantLease(alice, q, nil, 0)
	e.clock.Advance(2 * time.Second)
	got := e.wantLease(alice, q, list, 0)
	wantDeliveries(t, "lease after expiry", got, 2)
}

func testLeaseDefaultLength(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 1)
	e.wantLease(alice, store.LeaseQuery{}, list, 0)
	e.clock.Advance(store.DefaultLease - time.Second)
	e.wantLease(alice, store.LeaseQuery{}, nil, 0)
	e.clock.Advance(2 * time.Second)
	e.wantLease(alice, store.LeaseQuery{}, list, 0)
}

func testLeaseLabel(t *testing.T, e *env) {
	ra := e.register(alice, "alpha")
	rb := e.register(alice, "beta")
	a1 := e.append(e.event(ra, "")).ID
	b1 := e.append(e.event(rb, "")).ID
	a2 := e.append(e.event(ra, "")).ID
	b2 := e.append(e.event(rb, "")).ID
	e.wantLease(alice, store.LeaseQuery{Label: "alpha", Limit: 1}, []store.ID{a1}, 1)
	e.wantLease(alice, store.LeaseQuery{Label: "alpha"}, []store.ID{a2}, 0)
	e.wantLease(alice, store.LeaseQuery{Label: "gamma"}, nil, 0)
	e.wantLease(alice, store.LeaseQuery{}, []store.ID{b1, b2}, 0)
	e.wantPending(alice, "alpha", 2)
	e.wantPending(alice, "beta", 2)
	e.wantPending(alice, "", 4)
}

// testLeaseRemaining: Remaining is what a lease made right now would hand
// out, so a caller that leases again while it is above 0 stops once it has
// everything available, instead of spinning until the leases run out.
func testLeaseRemaining(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 5)
	e.wantLease(alice, store.LeaseQuery{Limit: 3, For: time.Minute}, list[:3], 2)
	e.wantLease(alice, store.LeaseQuery{Limit: 3, For: 2 * time.Minute}, list[3:], 0)
	// Every event is leased and none acked: nothing to hand out, nothing
	// counted, though all five are pending.
	e.wantLease(alice, store.LeaseQuery{Limit: 3}, nil, 0)
	e.wantPending(alice, "", 5)

	// The first three leases run out: they count again, the other two
	// (leased for longer) still do not.
	e.clock.Advance(time.Minute + time.Second)
	e.wantLease(alice, store.LeaseQuery{Limit: 1, For: time.Hour}, list[:1], 2)
	e.clock.Advance(time.Minute)
	e.wantLease(alice, store.LeaseQuery{Limit: 1, For: time.Hour}, list[1:2], 3)
	e.wantLease(alice, store.LeaseQuery{For: time.Hour}, []store.ID{list[2], list[3], list[4]}, 0)
	e.wantLease(alice, store.LeaseQuery{}, nil, 0)
}

// testLeaseRemainingNack: an event nacked with a delay is not counted
// until the delay has passed; one nacked without a delay counts at once.
func testLeaseRemainingNack(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 4)
	q := store.LeaseQuery{Limit: 1, For: time.Hour}
	e.wantLease(alice, store.LeaseQuery{Limit: 3, For: time.Hour}, list[:3], 1)
	e.nack(alice, list[2], 30*time.Second)
	e.nack(alice, list[0], 0)
	// list[3] only: list[1] is leased, list[2] waits out its delay.
	e.wantLease(alice, q, list[:1], 1)
	e.nack(alice, list[0], 0)
	e.clock.Advance(29 * time.Second)
	e.wantLease(alice, q, list[:1], 1)
	e.nack(alice, list[0], 0)
	e.clock.Advance(2 * time.Second)
	e.wantLease(alice, q, list[:1], 2)
	e.wantLease(alice, store.LeaseQuery{}, list[2:], 0)
	e.wantPending(alice, "", 4)
}

// testLeaseRemainingSpent: an event whose last allowed lease ran out is not
// counted, since the next lease dead-letters it instead of handing it out.
func testLeaseRemainingSpent(t *testing.T, e *env) {
	ra := e.register(alice, "alpha", withMaxAttempts(1))
	rb := e.register(alice, "beta")
	a1 := e.append(e.event(ra, "")).ID
	b := e.appendN(rb, 2)
	a2 := e.append(e.event(ra, "")).ID
	e.wantLease(alice, store.LeaseQuery{Label: "alpha", For: time.Minute}, []store.ID{a1, a2}, 0)
	e.clock.Advance(time.Minute + time.Second)

	res := e.lease(alice, store.LeaseQuery{Limit: 1})
	wantIDs(t, "Lease behind a dead letter", res.Events, b[:1])
	wantDropped(t, "Lease's DeadLettered", res.DeadLettered, []store.Dropped{{Principal: alice, Label: "alpha", Events: 1}})
	if res.Remaining != 1 {
		t.Errorf("Remaining = %d, want 1: b[1], not the spent a2", res.Remaining)
	}
	e.wantLease(alice, store.LeaseQuery{Label: "alpha"}, nil, 0)
	wantIDs(t, "DeadLetters", e.deadLetters(alice, store.Query{}), []store.ID{a1, a2})
	e.wantLease(alice, store.LeaseQuery{}, b[1:], 0)

	// Within one registration, a spent event older than a fresh one is
	// still met (and dead-lettered) first.
	rc := e.register(alice, "gamma", withMaxAttempts(2))
	c := e.appendN(rc, 2)
	q := store.LeaseQuery{Label: "gamma", Limit: 1, For: time.Minute}
	e.wantLease(alice, q, c[:1], 1)
	e.clock.Advance(time.Minute + time.Second)
	e.wantLease(alice, q, c[:1], 1)
	e.clock.Advance(time.Minute + time.Second)
	res = e.lease(alice, q)
	wantIDs(t, "Lease behind a spent event", res.Events, c[1:])
	wantDropped(t, "DeadLettered of the spent event", res.DeadLettered, []store.Dropped{{Principal: alice, Label: "gamma", Events: 1}})
	if res.Remaining != 0 {
		t.Errorf("Remaining = %d, want 0", res.Remaining)
	}
}

func ackTests() []testCase {
	return []testCase{
		{"ByID", testAckByID},
		{"Multiple", testAckMultiple},
		{"Twice", testAckTwice},
		{"UnknownIDAcksNothing", testAckUnknown},
		{"NeverLeasedAgain", testAckNeverLeasedAgain},
		{"DeadLetter", testAckDeadLetter},
	}
}

func testAckByID(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 3)
	if n := e.ack(alice, list[1]); n != 1 {
		t.Errorf("Ack = %d, want 1", n)
	}
	e.wantPending(alice, "", 2)
	e.wantPending(alice, "hooks", 2)
	e.wantLease(alice, store.LeaseQuery{}, []store.ID{list[0], list[2]}, 0)
}

func testAckMultiple(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 4)
	e.wantLease(alice, store.LeaseQuery{Limit: 2}, list[:2], 2)
	if n := e.ack(alice, list[0], list[1], list[3]); n != 3 {
		t.Errorf("Ack of three = %d, want 3", n)
	}
	e.wantPending(alice, "", 1)
	e.clock.Advance(store.DefaultLease + time.Second)
	e.wantLease(alice, store.LeaseQuery{}, list[2:3], 0)
}

// testAckTwice: the count is of events that this call took out of the
// queue, so a repeated ack counts nothing and is not an error.
func testAckTwice(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	e.ack(alice, list[0])
	if n := e.ack(alice, list[0]); n != 0 {
		t.Errorf("second Ack = %d, want 0", n)
	}
	if n := e.ack(alice, list[1], list[1]); n != 1 {
		t.Errorf("Ack naming one event twice = %d, want 1", n)
	}
	e.wantPending(alice, "", 0)
}

func testAckUnknown(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	unknown := store.ID{MS: 1, Seq: 7}
	n, err := e.s.Ack(e.ctx, alice, []store.ID{list[0], unknown, list[1]})
	wantErrIs(t, "Ack with an unknown ID", err, store.ErrNotFound)
	if err != nil && !strings.Contains(err.Error(), unknown.String()) {
		t.Errorf("Ack error %q does not name the unknown ID %s", err, unknown)
	}
	if n != 0 {
		t.Errorf("failed Ack = %d, want 0", n)
	}
	e.wantPending(alice, "", 2)
	e.wantLease(alice, store.LeaseQuery{}, list, 0)
}

func testAckNeverLeasedAgain(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	e.wantLease(alice, store.LeaseQuery{For: time.Minute}, list, 0)
	e.ack(alice, list...)
	e.clock.Advance(time.Hour)
	e.wantLease(alice, store.LeaseQuery{}, nil, 0)
	e.wantPending(alice, "", 0)
}

func testAckDeadLetter(t *testing.T, e *env) {
	r := e.register(alice, "hooks", withMaxAttempts(1))
	list := e.appendN(r, 1)
	e.wantLease(alice, store.LeaseQuery{}, list, 0)
	e.nack(alice, list[0], 0)
	if n := e.ack(alice, list[0]); n != 0 {
		t.Errorf("Ack of a dead letter = %d, want 0", n)
	}
	wantIDs(t, "DeadLetters after ack", e.deadLetters(alice, store.Query{}), list)
}

func nackTests() []testCase {
	return []testCase{
		{"Delay", testNackDelay},
		{"NoDelay", testNackNoDelay},
		{"DeadLetterAfterMaxAttempts", testNackDeadLetter},
		{"DeadLetterOnLeaseExpiry", testExpiryDeadLetter},
		{"DefaultMaxAttempts", testDefaultMaxAttempts},
		{"AckedLeftAlone", testNackAcked},
		{"Unknown", testNackUnknown},
		{"DeadLettersQuery", testDeadLettersQuery},
	}
}

func testNackDelay(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 1)
	e.wantLease(alice, store.LeaseQuery{For: time.Hour}, list, 0)
	if e.nack(alice, list[0], 30*time.Second) {
		t.Fatalf("Nack dead-lettered an event with attempts left")
	}
	e.wantPending(alice, "", 1)
	e.wantLease(alice, store.LeaseQuery{}, nil, 0)
	e.clock.Advance(29 * time.Second)
	e.wantLease(alice, store.LeaseQuery{}, nil, 0)
	e.clock.Advance(2 * time.Second)
	got := e.wantLease(alice, store.LeaseQuery{}, list, 0)
	wantDeliveries(t, "lease after nack", got, 2)
}

func testNackNoDelay(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	e.wantLease(alice, store.LeaseQuery{For: time.Hour}, list, 0)
	e.nack(alice, list[1], 0)
	e.wantLease(alice, store.LeaseQuery{}, list[1:], 0)
}

func testNackDeadLetter(t *testing.T, e *env) {
	r := e.register(alice, "hooks", withMaxAttempts(3))
	list := e.appendN(r, 1)
	for attempt := 1; attempt <= 3; attempt++ {
		got := e.wantLease(alice, store.LeaseQuery{}, list, 0)
		wantDeliveries(t, "lease", got, attempt)
		if dead := e.nack(alice, list[0], 0); dead != (attempt == 3) {
			t.Fatalf("Nack after attempt %d: dead = %v, want %v", attempt, dead, attempt == 3)
		}
	}
	dead := e.deadLetters(alice, store.Query{})
	wantIDs(t, "DeadLetters", dead, list)
	wantDeliveries(t, "DeadLetters", dead, 3)
	e.wantPending(alice, "", 0)
	e.clock.Advance(time.Hour)
	e.wantLease(alice, store.LeaseQuery{}, nil, 0)
	wantIDs(t, "Read", e.readAll(alice, ""), list)
}

// testExpiryDeadLetter: an agent that leases and never acks or nacks must
// not keep an event alive forever.
func testExpiryDeadLetter(t *testing.T, e *env) {
	r := e.register(alice, "hooks", withMaxAttempts(2))
	first := e.appendN(r, 1)
	q := store.LeaseQuery{For: time.Minute}
	for range 2 {
		res := e.lease(alice, q)
		wantIDs(t, "Lease", res.Events, first)
		wantDropped(t, "Lease's DeadLettered with attempts left", res.DeadLettered, nil)
		e.clock.Advance(time.Minute + time.Second)
	}
	second := e.appendN(r, 1)
	res := e.lease(alice, q)
	wantIDs(t, "Lease behind a dead letter", res.Events, second)
	wantDeliveries(t, "lease behind a dead letter", res.Events, 1)
	// The lease that finds the event's last lease run out reports it.
	wantDropped(t, "Lease's DeadLettered", res.DeadLettered, []store.Dropped{{Principal: alice, Label: "hooks", Events: 1}})
	wantIDs(t, "DeadLetters", e.deadLetters(alice, store.Query{}), first)
	e.wantPending(alice, "", 1)
	e.clock.Advance(time.Minute + time.Second)
	wantDropped(t, "DeadLettered of a later lease", e.lease(alice, q).DeadLettered, nil)
}

func testDefaultMaxAttempts(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 1)
	q := store.LeaseQuery{For: time.Minute}
	for attempt := 1; attempt <= store.DefaultMaxAttempts; attempt++ {
		res := e.lease(alice, q)
		if len(res.Events) != 1 || res.Events[0].DeliveryCount != attempt {
			t.Fatalf("lease %d = %+v, want the event with DeliveryCount %d", attempt, res.Events, attempt)
		}
		e.clock.Advance(time.Minute + time.Second)
	}
	e.wantLease(alice, q, nil, 0)
	wantIDs(t, "DeadLetters", e.deadLetters(alice, store.Query{}), list)
}

func testNackAcked(t *testing.T, e *env) {
	r := e.register(alice, "hooks", withMaxAttempts(1))
	list := e.appendN(r, 1)
	e.wantLease(alice, store.LeaseQuery{}, list, 0)
	e.ack(alice, list[0])
	if e.nack(alice, list[0], 0) {
		t.Errorf("Nack of an acked event dead-lettered it")
	}
	e.clock.Advance(time.Hour)
	e.wantLease(alice, store.LeaseQuery{}, nil, 0)
	e.wantPending(alice, "", 0)
	if dead := e.deadLetters(alice, store.Query{}); len(dead) != 0 {
		t.Errorf("DeadLetters = %v, want none", ids(dead))
	}
}

func testNackUnknown(t *testing.T, e *env) {
	e.register(alice, "hooks")
	_, err := e.s.Nack(e.ctx, alice, store.ID{MS: 1, Seq: 1}, 0, "")
	wantErrIs(t, "Nack of an unknown ID", err, store.ErrNotFound)
}

func testDeadLettersQuery(t *testing.T, e *env) {
	ra := e.register(alice, "alpha", withMaxAttempts(1))
	rb := e.register(alice, "beta", withMaxAttempts(1))
	var alpha, beta []store.ID
	for range 3 {
		alpha = append(alpha, e.append(e.event(ra, "")).ID)
		beta = append(beta, e.append(e.event(rb, "")).ID)
	}
	e.wantLease(alice, store.LeaseQuery{Limit: 6}, []store.ID{alpha[0], beta[0], alpha[1], beta[1], alpha[2], beta[2]}, 0)
	for i := range 3 {
		e.nack(alice, alpha[i], 0)
		e.nack(alice, beta[i], 0)
	}
	wantIDs(t, "DeadLetters alpha", e.deadLetters(alice, store.Query{Label: "alpha"}), alpha)
	wantIDs(t, "DeadLetters beta after its first, Limit 1",
		e.deadLetters(alice, store.Query{Label: "beta", After: beta[0], Limit: 1}), beta[1:2])
	wantIDs(t, "DeadLetters, Limit 2", e.deadLetters(alice, store.Query{Limit: 2}), []store.ID{alpha[0], beta[0]})
}
