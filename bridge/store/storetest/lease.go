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
	}
}

// testLeaseOrder also pins down Remaining: pending events, leased or not,
// outside the batch.
func testLeaseOrder(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 5)
	got := e.wantLease(alice, store.LeaseQuery{Limit: 2}, list[:2], 3)
	wantDeliveries(t, "first lease", got, 1)
	e.wantLease(alice, store.LeaseQuery{Limit: 2}, list[2:4], 3)
	e.wantLease(alice, store.LeaseQuery{Limit: 10}, list[4:], 4)
	e.wantLease(alice, store.LeaseQuery{Limit: 10}, nil, 5)
	e.wantPending(alice, "", 5)
	later := e.appendN(r, 1)
	e.wantLease(alice, store.LeaseQuery{}, later, 5)
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
	e.wantLease(alice, q, nil, 2)
	e.clock.Advance(2 * time.Second)
	got := e.wantLease(alice, q, list, 0)
	wantDeliveries(t, "lease after expiry", got, 2)
}

func testLeaseDefaultLength(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 1)
	e.wantLease(alice, store.LeaseQuery{}, list, 0)
	e.clock.Advance(store.DefaultLease - time.Second)
	e.wantLease(alice, store.LeaseQuery{}, nil, 1)
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
	e.wantLease(alice, store.LeaseQuery{Label: "alpha"}, []store.ID{a2}, 1)
	e.wantLease(alice, store.LeaseQuery{Label: "gamma"}, nil, 0)
	e.wantLease(alice, store.LeaseQuery{}, []store.ID{b1, b2}, 2)
	e.wantPending(alice, "alpha", 2)
	e.wantPending(alice, "beta", 2)
	e.wantPending(alice, "", 4)
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
	e.wantLease(alice, store.LeaseQuery{}, nil, 1)
	e.clock.Advance(29 * time.Second)
	e.wantLease(alice, store.LeaseQuery{}, nil, 1)
	e.clock.Advance(2 * time.Second)
	got := e.wantLease(alice, store.LeaseQuery{}, list, 0)
	wantDeliveries(t, "lease after nack", got, 2)
}

func testNackNoDelay(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	e.wantLease(alice, store.LeaseQuery{For: time.Hour}, list, 0)
	e.nack(alice, list[1], 0)
	e.wantLease(alice, store.LeaseQuery{}, list[1:], 1)
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
