package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

func appendTests() []testCase {
	return []testCase{
		{"IDsFromClock", testIDsFromClock},
		{"SameMillisecond", testSameMillisecond},
		{"ClockBackwards", testClockBackwards},
		{"Concurrent", testConcurrentAppend},
		{"StoresEvent", testStoresEvent},
	}
}

func testIDsFromClock(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	ms := e.nowMS()
	for seq, ne := range []store.NewEvent{e.event(r, ""), e.event(r, "")} {
		if got, want := e.append(ne).ID, (store.ID{MS: ms, Seq: uint64(seq)}); got != want {
			t.Errorf("append %d: ID %s, want %s", seq, got, want)
		}
	}
	e.clock.Advance(5 * time.Millisecond)
	if got, want := e.append(e.event(r, "")).ID, (store.ID{MS: ms + 5}); got != want {
		t.Errorf("append in a new millisecond: ID %s, want %s", got, want)
	}
}

func testSameMillisecond(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	ms := e.nowMS()
	list := e.appendN(r, 200)
	wantStrictlyIncreasing(t, "IDs in one millisecond", list)
	for _, id := range list {
		if id.MS != ms {
			t.Fatalf("ID %s, want millisecond %d of the clock", id, ms)
		}
	}
	wantIDs(t, "Read", e.readAll(alice, ""), list)
}

// testClockBackwards steps the clock back an hour, as NTP may: IDs must
// keep increasing or a reader's cursor would skip the new events.
func testClockBackwards(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	list := e.appendN(r, 2)
	e.clock.Advance(-time.Hour)
	list = append(list, e.appendN(r, 3)...)
	e.clock.Advance(2 * time.Hour)
	last := e.append(e.event(r, "")).ID
	list = append(list, last)
	wantStrictlyIncreasing(t, "IDs across a clock step back", list)
	if last.MS != e.nowMS() {
		t.Errorf("ID after the clock caught up: %s, want millisecond %d", last, e.nowMS())
	}
	wantIDs(t, "Read", e.readAll(alice, ""), list)
}

// testConcurrentAppend appends from many goroutines while the clock moves.
func testConcurrentAppend(t *testing.T, e *env) {
	const workers, each = 50, 20
	r := e.register(alice, "hooks")
	events := make([][]store.NewEvent, workers)
	for w := range events {
		for range each {
			events[w] = append(events[w], e.event(r, ""))
		}
	}
	got := make([][]store.ID, workers)
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i, ne := range events[w] {
				if i%5 == 4 {
					e.clock.Advance(time.Millisecond)
				}
				res, err := e.s.Append(e.ctx, ne)
				if err != nil {
					errs <- err
					return
				}
				got[w] = append(got[w], res.ID)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: %v", err)
	}

	seen := map[store.ID]bool{}
	for w, list := range got {
		// One goroutine's appends are sequential, so their IDs increase.
		wantStrictlyIncreasing(t, "one goroutine's IDs", list)
		for _, id := range list {
			if seen[id] {
				t.Fatalf("worker %d: ID %s handed out twice", w, id)
			}
			seen[id] = true
		}
	}
	all := e.readAll(alice, "")
	if len(all) != workers*each {
		t.Fatalf("Read returned %d events, want %d", len(all), workers*each)
	}
	wantStrictlyIncreasing(t, "Read", ids(all))
	for _, ev := range all {
		if !seen[ev.ID] {
			t.Errorf("Read returned %s, which no Append returned", ev.ID)
		}
	}
	e.wantPending(alice, "", workers*each)
}

func testStoresEvent(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	ne := e.event(r, "evt_1")
	ne.Verified = false
	ne.Payload = []byte(`{"id":"evt_1","nested":{"list":[1,2.5,"x",null,true]},"unicode":"héllo"}`)
	ne.ReceivedAt = time.Date(2026, 11, 25, 6, 40, 0, 123456000, time.UTC)
	id := e.append(ne).ID
	wantEvent(t, e.get(alice, id), id, ne, 0)
	all := e.readAll(alice, "")
	if len(all) != 1 {
		t.Fatalf("Read returned %d events, want 1", len(all))
	}
	wantEvent(t, all[0], id, ne, 0)
}

func dedupTests() []testCase {
	return []testCase{
		{"DuplicateReturnsFirstID", testDuplicate},
		{"PerRegistration", testDedupPerRegistration},
		{"EmptyProviderIDNeverDedups", testEmptyProviderID},
		{"AfterAck", testDedupAfterAck},
		{"Concurrent", testConcurrentDuplicates},
	}
}

func testDuplicate(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	first := e.event(r, "evt_1")
	res := e.append(first)
	if res.Duplicate {
		t.Fatalf("first Append: Duplicate set")
	}
	e.clock.Advance(time.Second)
	again := e.append(e.event(r, "evt_1"))
	if !again.Duplicate || again.ID != res.ID {
		t.Fatalf("second Append = %+v, want Duplicate with ID %s", again, res.ID)
	}
	all := e.readAll(alice, "")
	if len(all) != 1 {
		t.Fatalf("Read returned %d events, want 1", len(all))
	}
	wantEvent(t, all[0], res.ID, first, 0)
	e.wantPending(alice, "", 1)
}

func testDedupPerRegistration(t *testing.T, e *env) {
	r1 := e.register(alice, "one")
	r2 := e.register(alice, "two")
	a := e.append(e.event(r1, "evt_1"))
	b := e.append(e.event(r2, "evt_1"))
	if b.Duplicate || b.ID == a.ID {
		t.Errorf("same provider ID on another registration: %+v, want a new event", b)
	}
	if n := len(e.readAll(alice, "")); n != 2 {
		t.Errorf("Read returned %d events, want 2", n)
	}
}

func testEmptyProviderID(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	a := e.append(e.event(r, ""))
	b := e.append(e.event(r, ""))
	if a.Duplicate || b.Duplicate || a.ID == b.ID {
		t.Errorf("empty provider IDs: %+v then %+v, want two new events", a, b)
	}
}

// testDedupAfterAck: deduplication lasts as long as the event is retained,
// not only while it is pending.
func testDedupAfterAck(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	res := e.append(e.event(r, "evt_1"))
	e.ack(alice, res.ID)
	if again := e.append(e.event(r, "evt_1")); !again.Duplicate || again.ID != res.ID {
		t.Errorf("Append after ack = %+v, want Duplicate with ID %s", again, res.ID)
	}
	e.wantPending(alice, "", 0)
}

func testConcurrentDuplicates(t *testing.T, e *env) {
	const n = 50
	r := e.register(alice, "hooks")
	results := make([]store.AppendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		ne := e.event(r, "evt_same")
		wg.Go(func() { results[i], errs[i] = e.s.Append(e.ctx, ne) })
	}
	wg.Wait()
	fresh := 0
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("Append %d: %v", i, errs[i])
		}
		if !res.Duplicate {
			fresh++
		}
		if res.ID != results[0].ID {
			t.Errorf("Append %d: ID %s, want %s like the others", i, res.ID, results[0].ID)
		}
	}
	if fresh != 1 {
		t.Errorf("%d appends stored the event, want exactly 1", fresh)
	}
	if all := e.readAll(alice, ""); len(all) != 1 {
		t.Errorf("Read returned %d events, want 1", len(all))
	}
	e.wantPending(alice, "", 1)
}
