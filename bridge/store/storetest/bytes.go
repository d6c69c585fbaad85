package storetest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// bytesTests pin down MaxBytes: a batch is the longest prefix of the walk
// whose EventSizes fit the bound, never less than one event, and every
// backend measures with store.EventSize so that the same bound cuts the
// same batch whichever store serves it.
func bytesTests() []testCase {
	return []testCase{
		{"ReadPrefix", testBytesReadPrefix},
		{"ReadExactBound", testBytesReadExact},
		{"ReadManySmall", testBytesReadManySmall},
		{"ReadPending", testBytesReadPending},
		{"FirstAlwaysReturned", testBytesFirstAlways},
		{"Lease", testBytesLease},
		{"LeaseDeadLetters", testBytesLeaseDeadLetters},
		{"ZeroIsUnbounded", testBytesZero},
		{"DeadLetters", testBytesDeadLetters},
	}
}

// sizedEvent returns a new event for r whose payload, a JSON string, is
// exactly size bytes long.
func (e *env) sizedEvent(r store.Registration, size int) store.NewEvent {
	ne := e.event(r, "")
	ne.Payload = json.RawMessage(`"` + strings.Repeat("x", size-2) + `"`)
	return ne
}

// appendSized appends n events of r with size-byte payloads and returns
// their IDs.
func (e *env) appendSized(r store.Registration, n, size int) []store.ID {
	e.t.Helper()
	list := make([]store.ID, n)
	for i := range list {
		list[i] = e.append(e.sizedEvent(r, size)).ID
	}
	return list
}

func (e *env) readPending(principal string, q store.Query) []store.Event {
	e.t.Helper()
	events, err := e.s.ReadPending(e.ctx, principal, q)
	if err != nil {
		e.t.Fatalf("ReadPending(%s, %+v): %v", principal, q, err)
	}
	return events
}

// pageAll pages with read from q until a page comes back empty, checking
// that no page is longer than want, and returns every event read.
func pageAll(t *testing.T, what string, read func(store.Query) []store.Event, q store.Query, want int) []store.Event {
	t.Helper()
	var all []store.Event
	for range 100 {
		page := read(q)
		if len(page) == 0 {
			return all
		}
		if len(page) > want {
			t.Errorf("%s after %s: %d events, want at most %d", what, q.After, len(page), want)
		}
		all = append(all, page...)
		q.After = page[len(page)-1].ID
	}
	t.Fatalf("%s: still reading after 100 pages", what)
	return nil
}

// testBytesReadPrefix: ten events of about 100 KB under a 350 KB bound come
// three at a time, the oldest first, and paging after the last one read
// misses none, with or without a label filter.
func testBytesReadPrefix(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendSized(r, 10, 100_000)
	for _, label := range []string{"", "hooks"} {
		q := store.Query{Label: label, MaxBytes: 350_000}
		wantIDs(t, "Read with MaxBytes 350000, label "+label, e.read(alice, q), list[:3])
		read := func(q store.Query) []store.Event { return e.read(alice, q) }
		wantIDs(t, "Read paged by MaxBytes, label "+label, pageAll(t, "Read", read, q, 3), list)
		q.Limit = 2
		wantIDs(t, "Read with MaxBytes and a lower Limit, label "+label, e.read(alice, q), list[:2])
	}
}

// testBytesReadExact: the bound is inclusive and measured with
// store.EventSize, exactly.
func testBytesReadExact(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendSized(r, 5, 10_000)
	size := store.EventSize(e.get(alice, list[0]))
	for _, label := range []string{"", "hooks"} {
		wantIDs(t, "Read with MaxBytes of three events, label "+label,
			e.read(alice, store.Query{Label: label, MaxBytes: 3 * size}), list[:3])
		wantIDs(t, "Read with MaxBytes one byte short of three events, label "+label,
			e.read(alice, store.Query{Label: label, MaxBytes: 3*size - 1}), list[:2])
		wantIDs(t, "Read after the first with MaxBytes of two events, label "+label,
			e.read(alice, store.Query{Label: label, After: list[0], MaxBytes: 2 * size}), list[1:3])
	}
}

// testBytesReadManySmall: a bound that ends the batch after many events,
// more than a backend might fetch in one step, still cuts it exactly, and
// Limit still applies under it.
func testBytesReadManySmall(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendSized(r, 80, 1_000)
	size := store.EventSize(e.get(alice, list[0]))
	q := store.Query{Limit: 100, MaxBytes: 50 * size}
	wantIDs(t, "Read of 50 events' worth", e.read(alice, q), list[:50])
	wantIDs(t, "Read of 50 events' worth after the 50th",
		e.read(alice, store.Query{After: list[49], Limit: 100, MaxBytes: 50 * size}), list[50:])
	wantIDs(t, "Read with Limit 40 under 50 events' worth",
		e.read(alice, store.Query{Limit: 40, MaxBytes: 50 * size}), list[:40])
	wantIDs(t, "Read by label of 50 events' worth",
		e.read(alice, store.Query{Label: "hooks", Limit: 100, MaxBytes: 50 * size}), list[:50])
}

func testBytesReadPending(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendSized(r, 10, 100_000)
	e.ack(alice, list[0])
	for _, label := range []string{"", "hooks"} {
		q := store.Query{Label: label, MaxBytes: 350_000}
		wantIDs(t, "ReadPending with MaxBytes 350000, label "+label, e.readPending(alice, q), list[1:4])
		read := func(q store.Query) []store.Event { return e.readPending(alice, q) }
		wantIDs(t, "ReadPending paged by MaxBytes, label "+label, pageAll(t, "ReadPending", read, q, 3), list[1:])
	}
}

// testBytesFirstAlways: an event bigger than the whole bound travels alone
// rather than never.
func testBytesFirstAlways(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	big := e.append(e.sizedEvent(r, 1<<20)).ID
	small := e.appendSized(r, 2, 100)
	q := store.Query{MaxBytes: 64 << 10}
	got := e.read(alice, q)
	wantIDs(t, "Read of a 1 MiB event under 64 KiB", got, []store.ID{big})
	if len(got) == 1 && len(got[0].Payload) != 1<<20 {
		t.Errorf("Read of a 1 MiB event: payload of %d bytes, want %d", len(got[0].Payload), 1<<20)
	}
	wantIDs(t, "Read by label of a 1 MiB event under 64 KiB",
		e.read(alice, store.Query{Label: "hooks", MaxBytes: 64 << 10}), []store.ID{big})
	wantIDs(t, "ReadPending of a 1 MiB event under 64 KiB", e.readPending(alice, q), []store.ID{big})
	wantIDs(t, "Read after the big event", e.read(alice, store.Query{After: big, MaxBytes: 64 << 10}), small)
	e.wantLease(alice, store.LeaseQuery{MaxBytes: 64 << 10}, []store.ID{big}, 2)
	e.wantLease(alice, store.LeaseQuery{MaxBytes: 64 << 10}, small, 0)
}

// testBytesLease: the events a bound leaves out are not leased, not
// counted as deliveries, counted in Remaining, and next in line.
func testBytesLease(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendSized(r, 10, 100_000)
	q := store.LeaseQuery{Limit: 10, MaxBytes: 350_000}
	got := e.wantLease(alice, q, list[:3], 7)
	wantDeliveries(t, "bounded lease", got, 1)
	all := e.readAll(alice, "")
	wantIDs(t, "Read", all, list)
	if len(all) == len(list) {
		wantDeliveries(t, "Read of the leased events", all[:3], 1)
		wantDeliveries(t, "Read of the events left out", all[3:], 0)
	}
	e.wantPending(alice, "", 10)
	got = e.wantLease(alice, q, list[3:6], 4)
	wantDeliveries(t, "second bounded lease", got, 1)
	got = e.wantLease(alice, store.LeaseQuery{Label: "hooks", Limit: 10, MaxBytes: 350_000}, list[6:9], 1)
	wantDeliveries(t, "bounded lease by label", got, 1)
	e.wantLease(alice, store.LeaseQuery{Limit: 2, MaxBytes: 350_000}, list[9:], 0)
	e.wantLease(alice, q, nil, 0)
}

// testBytesLeaseDeadLetters: events met before the bound ends the batch
// are dead-lettered as without a bound; the walk stops at the event that
// ends it, so one behind it waits for a later lease.
func testBytesLeaseDeadLetters(t *testing.T, e *env) {
	ra := e.register(alice, "alpha", withMaxAttempts(1))
	rb := e.register(alice, "beta")
	d1 := e.append(e.sizedEvent(ra, 100)).ID
	b := e.appendSized(rb, 3, 100_000)
	d2 := e.append(e.sizedEvent(ra, 100)).ID
	e.wantLease(alice, store.LeaseQuery{Label: "alpha", For: time.Minute}, []store.ID{d1, d2}, 0)
	e.clock.Advance(time.Minute + time.Second)

	q := store.LeaseQuery{MaxBytes: 150_000}
	res := e.lease(alice, q)
	wantIDs(t, "bounded Lease behind a dead letter", res.Events, b[:1])
	wantDropped(t, "bounded Lease's DeadLettered", res.DeadLettered, []store.Dropped{{Principal: alice, Label: "alpha", Events: 1}})
	// b[1] and b[2]; not d2, whose one attempt is used up: the next
	// lease dead-letters it instead of handing it out.
	if res.Remaining != 2 {
		t.Errorf("bounded Lease's Remaining = %d, want 2", res.Remaining)
	}
	wantIDs(t, "DeadLetters after the bounded lease", e.deadLetters(alice, store.Query{}), []store.ID{d1})

	res = e.lease(alice, store.LeaseQuery{})
	wantIDs(t, "unbounded Lease", res.Events, b[1:])
	wantDropped(t, "unbounded Lease's DeadLettered", res.DeadLettered, []store.Dropped{{Principal: alice, Label: "alpha", Events: 1}})
	wantIDs(t, "DeadLetters", e.deadLetters(alice, store.Query{}), []store.ID{d1, d2})
	e.wantPending(alice, "", 3)
}

func testBytesZero(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendSized(r, 10, 100_000)
	for _, maxBytes := range []int{0, -1} {
		wantIDs(t, "Read with MaxBytes <= 0", e.read(alice, store.Query{MaxBytes: maxBytes}), list)
		wantIDs(t, "Read by label with MaxBytes <= 0", e.read(alice, store.Query{Label: "hooks", MaxBytes: maxBytes}), list)
		wantIDs(t, "ReadPending with MaxBytes <= 0", e.readPending(alice, store.Query{MaxBytes: maxBytes}), list)
	}
	e.wantLease(alice, store.LeaseQuery{Limit: 10, MaxBytes: 0, For: time.Minute}, list, 0)
	e.clock.Advance(time.Minute + time.Second)
	got := e.wantLease(alice, store.LeaseQuery{Limit: 10, MaxBytes: -1}, list, 0)
	wantDeliveries(t, "second unbounded lease", got, 2)
}

func testBytesDeadLetters(t *testing.T, e *env) {
	ra := e.register(alice, "alpha", withMaxAttempts(1))
	rb := e.register(alice, "beta", withMaxAttempts(1))
	var alpha, all []store.ID
	for range 3 {
		a := e.append(e.sizedEvent(ra, 100_000)).ID
		b := e.append(e.sizedEvent(rb, 100_000)).ID
		alpha = append(alpha, a)
		all = append(all, a, b)
	}
	e.wantLease(alice, store.LeaseQuery{Limit: 6}, all, 0)
	for _, id := range all {
		e.nack(alice, id, 0)
	}
	q := store.Query{MaxBytes: 250_000}
	wantIDs(t, "DeadLetters with MaxBytes 250000", e.deadLetters(alice, q), all[:2])
	read := func(q store.Query) []store.Event { return e.deadLetters(alice, q) }
	wantIDs(t, "DeadLetters paged by MaxBytes", pageAll(t, "DeadLetters", read, q, 2), all)
	q.Label = "alpha"
	wantIDs(t, "DeadLetters alpha with MaxBytes 250000", e.deadLetters(alice, q), alpha[:2])
	wantIDs(t, "DeadLetters alpha paged by MaxBytes", pageAll(t, "DeadLetters alpha", read, q, 2), alpha)
}
