package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// Principals used by the suite.
const (
	alice = "alice"
	bob   = "bob"
)

// startTime is the suite's initial clock reading; its milliseconds are not
// zero so that an ID taken from the wrong clock shows.
func startTime() time.Time { return time.Date(2026, 11, 25, 6, 40, 0, 123_000_000, time.UTC) }

// env is one subtest's store with helpers that fail the test on error.
type env struct {
	t     *testing.T
	h     Harness
	ctx   context.Context
	clock *Clock
	s     store.Store
	nreg  int // registrations made, for unique IDs
	nev   int // events made, for distinct payloads
}

func newEnv(t *testing.T, h Harness) *env {
	e := &env{t: t, h: h, ctx: t.Context(), clock: NewClock(startTime())}
	e.s = h.Open(t, e.clock)
	t.Cleanup(func() {
		if err := e.s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// needReopen skips the test if the harness cannot reopen a store.
func (e *env) needReopen() {
	e.t.Helper()
	if e.h.Reopen == nil {
		e.t.Skip("harness has no Reopen")
	}
}

// reopen closes the store and opens its data again.
func (e *env) reopen() {
	e.t.Helper()
	e.s = e.h.Reopen(e.t, e.s, e.clock)
}

// nowMS is the clock in Unix milliseconds, as IDs carry it.
func (e *env) nowMS() uint64 { return uint64(e.clock.Now().UnixMilli()) }

// register stores a new live registration; opts adjust it first.
func (e *env) register(principal, label string, opts ...func(*store.Registration)) store.Registration {
	e.t.Helper()
	e.nreg++
	r := store.Registration{
		ID:        fmt.Sprintf("reg-%d-%s-%s", e.nreg, principal, label),
		Principal: principal,
		Label:     label,
		Provider:  "generic",
		Secrets:   []string{"whsec_first"},
		CreatedAt: e.clock.Now(),
	}
	for _, opt := range opts {
		opt(&r)
	}
	if err := e.s.PutRegistration(e.ctx, r); err != nil {
		e.t.Fatalf("PutRegistration(%s %q): %v", principal, label, err)
	}
	return r
}

func withMaxAttempts(n int) func(*store.Registration) {
	return func(r *store.Registration) { r.MaxAttempts = n }
}

func withTTL(d time.Duration) func(*store.Registration) {
	return func(r *store.Registration) { r.TTL = d }
}

// event returns a new event for r with a payload unique in the test.
func (e *env) event(r store.Registration, providerEventID string) store.NewEvent {
	e.nev++
	return store.NewEvent{
		Principal:       r.Principal,
		RegistrationID:  r.ID,
		Label:           r.Label,
		Source:          "generic",
		Type:            "test.event",
		ProviderEventID: providerEventID,
		ReceivedAt:      e.clock.Now(),
		Verified:        true,
		Payload:         json.RawMessage(fmt.Sprintf(`{"n":%d,"label":%q}`, e.nev, r.Label)),
	}
}

func (e *env) append(ne store.NewEvent) store.AppendResult {
	e.t.Helper()
	res, err := e.s.Append(e.ctx, ne)
	if err != nil {
		e.t.Fatalf("Append: %v", err)
	}
	return res
}

// appendN appends n events without provider IDs and returns their IDs.
func (e *env) appendN(r store.Registration, n int) []store.ID {
	e.t.Helper()
	ids := make([]store.ID, n)
	for i := range ids {
		ids[i] = e.append(e.event(r, "")).ID
	}
	return ids
}

func (e *env) read(principal string, q store.Query) []store.Event {
	e.t.Helper()
	events, err := e.s.Read(e.ctx, principal, q)
	if err != nil {
		e.t.Fatalf("Read(%s, %+v): %v", principal, q, err)
	}
	return events
}

// readAll pages through every retained event of principal with label.
func (e *env) readAll(principal, label string) []store.Event {
	e.t.Helper()
	var all []store.Event
	q := store.Query{Label: label, Limit: 100}
	for {
		page := e.read(principal, q)
		if len(page) == 0 {
			return all
		}
		if page[0].ID.Compare(q.After) <= 0 {
			e.t.Fatalf("Read(%s, %+v) returned %s, not after the cursor", principal, q, page[0].ID)
		}
		all = append(all, page...)
		q.After = page[len(page)-1].ID
	}
}

func (e *env) get(principal string, id store.ID) store.Event {
	e.t.Helper()
	ev, err := e.s.Get(e.ctx, principal, id)
	if err != nil {
		e.t.Fatalf("Get(%s, %s): %v", principal, id, err)
	}
	return ev
}

func (e *env) lease(principal string, q store.LeaseQuery) store.LeaseResult {
	e.t.Helper()
	res, err := e.s.Lease(e.ctx, principal, q)
	if err != nil {
		e.t.Fatalf("Lease(%s, %+v): %v", principal, q, err)
	}
	return res
}

func (e *env) ack(principal string, ids ...store.ID) int {
	e.t.Helper()
	n, err := e.s.Ack(e.ctx, principal, ids)
	if err != nil {
		e.t.Fatalf("Ack(%s, %v): %v", principal, ids, err)
	}
	return n
}

func (e *env) nack(principal string, id store.ID, delay time.Duration) bool {
	e.t.Helper()
	dead, err := e.s.Nack(e.ctx, principal, id, delay, "test nack")
	if err != nil {
		e.t.Fatalf("Nack(%s, %s): %v", principal, id, err)
	}
	return dead
}

func (e *env) pending(principal, label string) int {
	e.t.Helper()
	n, err := e.s.Pending(e.ctx, principal, label)
	if err != nil {
		e.t.Fatalf("Pending(%s, %q): %v", principal, label, err)
	}
	return n
}

func (e *env) deadLetters(principal string, q store.Query) []store.Event {
	e.t.Helper()
	events, err := e.s.DeadLetters(e.ctx, principal, q)
	if err != nil {
		e.t.Fatalf("DeadLetters(%s, %+v): %v", principal, q, err)
	}
	return events
}

// wantPending fails unless Pending reports want.
func (e *env) wantPending(principal, label string, want int) {
	e.t.Helper()
	if got := e.pending(principal, label); got != want {
		e.t.Errorf("Pending(%s, %q) = %d, want %d", principal, label, got, want)
	}
}

// wantLease leases with q and fails unless it hands out exactly want, in
// order, with want Remaining.
func (e *env) wantLease(principal string, q store.LeaseQuery, want []store.ID, remaining int) []store.Event {
	e.t.Helper()
	res := e.lease(principal, q)
	wantIDs(e.t, fmt.Sprintf("Lease(%s, %+v)", principal, q), res.Events, want)
	if res.Remaining != remaining {
		e.t.Errorf("Lease(%s, %+v).Remaining = %d, want %d", principal, q, res.Remaining, remaining)
	}
	return res.Events
}

func ids(events []store.Event) []store.ID {
	out := make([]store.ID, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

// wantIDs fails unless events has exactly the IDs want, in order.
func wantIDs(t *testing.T, what string, events []store.Event, want []store.ID) {
	t.Helper()
	if got := ids(events); !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// wantDeliveries fails unless every event has DeliveryCount n.
func wantDeliveries(t *testing.T, what string, events []store.Event, n int) {
	t.Helper()
	for _, ev := range events {
		if ev.DeliveryCount != n {
			t.Errorf("%s: event %s DeliveryCount = %d, want %d", what, ev.ID, ev.DeliveryCount, n)
		}
	}
}

// wantStrictlyIncreasing fails unless each ID is after the one before.
func wantStrictlyIncreasing(t *testing.T, what string, list []store.ID) {
	t.Helper()
	for i := 1; i < len(list); i++ {
		if list[i].Compare(list[i-1]) <= 0 {
			t.Fatalf("%s: ID %s at %d is not after %s", what, list[i], i, list[i-1])
		}
	}
}

// wantErrIs fails unless err wraps target.
func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

// wantEvent fails unless got is the stored form of ne with id and
// deliveries.
func wantEvent(t *testing.T, got store.Event, id store.ID, ne store.NewEvent, deliveries int) {
	t.Helper()
	if got.ID != id || got.Label != ne.Label || got.Source != ne.Source || got.Type != ne.Type ||
		got.ProviderEventID != ne.ProviderEventID || got.Verified != ne.Verified ||
		!got.ReceivedAt.Equal(ne.ReceivedAt) || got.DeliveryCount != deliveries {
		t.Errorf("event = %+v, want id %s deliveryCount %d and fields of %+v", got, id, deliveries, ne)
	}
	if !jsonEqual(got.Payload, ne.Payload) {
		t.Errorf("event %s payload = %s, want %s", id, got.Payload, ne.Payload)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// wantRegistration fails unless got equals want, comparing times as
// instants.
func wantRegistration(t *testing.T, what string, got, want store.Registration) {
	t.Helper()
	g, w := got, want
	if !g.CreatedAt.Equal(w.CreatedAt) || !g.DeletedAt.Equal(w.DeletedAt) {
		t.Errorf("%s: times = %v / %v, want %v / %v", what, g.CreatedAt, g.DeletedAt, w.CreatedAt, w.DeletedAt)
	}
	g.CreatedAt, w.CreatedAt, g.DeletedAt, w.DeletedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(g.Secrets) == 0 && len(w.Secrets) == 0 {
		g.Secrets, w.Secrets = nil, nil
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}
