package compat

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// after collects what store.After yields. It fails the test if the
// iterator yields data and then an error, or anything after an error:
// the interface forbids partial results.
func after(t *testing.T, store mcp.EventStore, session, stream string, index int) ([]string, error) {
	t.Helper()
	var got []string
	var err error
	for d, e := range store.After(context.Background(), session, stream, index) {
		if err != nil {
			t.Fatalf("After(%q, %q, %d) yielded after its error %v", session, stream, index, err)
		}
		if e != nil {
			if len(got) > 0 {
				t.Fatalf("After(%q, %q, %d) yielded %q, then error %v", session, stream, index, got, e)
			}
			err = e
			continue
		}
		got = append(got, string(d))
	}
	return got, err
}

// mustAfter is after for a replay that must succeed.
func mustAfter(t *testing.T, store mcp.EventStore, session, stream string, index int) []string {
	t.Helper()
	got, err := after(t, store, session, stream, index)
	if err != nil {
		t.Fatalf("After(%q, %q, %d): %v", session, stream, index, err)
	}
	return got
}

// mustPurged checks that After reports index's successor as dropped.
func mustPurged(t *testing.T, store mcp.EventStore, session, stream string, index int) {
	t.Helper()
	got, err := after(t, store, session, stream, index)
	if !errors.Is(err, mcp.ErrEventsPurged) {
		t.Fatalf("After(%q, %q, %d) = %q, %v; want an error wrapping mcp.ErrEventsPurged", session, stream, index, got, err)
	}
}

func appendAll(t *testing.T, store mcp.EventStore, session, stream string, data ...string) {
	t.Helper()
	for _, d := range data {
		if err := store.Append(context.Background(), session, stream, []byte(d)); err != nil {
			t.Fatalf("Append(%q, %q, %q): %v", session, stream, d, err)
		}
	}
}

// event returns a payload of exactly n bytes that names its session and
// sequence number, so a test can tell events apart by content.
func event(session string, i, n int) string {
	s := fmt.Sprintf("%s-%d:", session, i)
	if len(s) > n {
		panic("event too small for its label")
	}
	return s + strings.Repeat(".", n-len(s))
}

// events returns event(session, i, n) for i in [from, to).
func events(session string, from, to, n int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, event(session, i, n))
	}
	return out
}

// TestReplayStoreMatchesMemoryEventStore drives the SDK's MemoryEventStore
// and a ReplayStore through the same calls, with bounds too large to drop
// anything, and checks After agrees for every index, including -1, indexes
// past the end, a stream opened but never appended to, and the priming
// events (nil data) the SDK appends. The SDK's handler turns these
// indexes into SSE event IDs, so any disagreement would break resumption.
func TestReplayStoreMatchesMemoryEventStore(t *testing.T) {
	ctx := context.Background()
	ours := NewReplayStore(ReplayOptions{PerSession: 1 << 20, Total: 1 << 20})
	sdk := mcp.NewMemoryEventStore(nil)
	stores := []mcp.EventStore{ours, sdk}
	for _, st := range stores {
		for _, stream := range []string{"", "1", "2"} {
			if err := st.Open(ctx, "s", stream); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Append(ctx, "s", "1", nil); err != nil { // priming event
			t.Fatal(err)
		}
		appendAll(t, st, "s", "1", "a", "b", "c")
		appendAll(t, st, "s", "", "x", "y")
		appendAll(t, st, "s", "1", "d")
		appendAll(t, st, "unopened", "9", "u") // Append opens
	}
	for _, c := range []struct{ session, stream string }{
		{"s", ""}, {"s", "1"}, {"s", "2"}, {"unopened", "9"},
	} {
		for index := -1; index <= 7; index++ {
			want, wantErr := after(t, sdk, c.session, c.stream, index)
			got, gotErr := after(t, ours, c.session, c.stream, index)
			if (gotErr == nil) != (wantErr == nil) || !slices.Equal(got, want) {
				t.Errorf("After(%q, %q, %d) = %q, %v; MemoryEventStore gives %q, %v",
					c.session, c.stream, index, got, gotErr, want, wantErr)
			}
		}
	}
	// Unknown sessions and streams are errors, but not purges.
	for _, c := range []struct{ session, stream string }{{"nope", ""}, {"s", "nope"}} {
		_, sdkErr := after(t, sdk, c.session, c.stream, -1)
		_, err := after(t, ours, c.session, c.stream, -1)
		if err == nil || sdkErr == nil {
			t.Errorf("After(%q, %q, -1): ReplayStore error %v, MemoryEventStore error %v; want both non-nil", c.session, c.stream, err, sdkErr)
		}
		if errors.Is(err, mcp.ErrEventsPurged) {
			t.Errorf("After(%q, %q, -1) = %v; an unknown stream is not a purge", c.session, c.stream, err)
		}
	}
	// The priming event is replayed as empty data, keeping later indexes.
	if got := mustAfter(t, ours, "s", "1", -1); !slices.Equal(got, []string{"", "a", "b", "c", "d"}) {
		t.Errorf("After(s, 1, -1) = %q", got)
	}
}

// TestReplayStoreReplayFromIndex checks that After(k) yields exactly the
// events appended after index k, in order, for every k, on a stream whose
// appends are interleaved with another stream's, both before and after
// old events were dropped (dropping must not renumber).
func TestReplayStoreReplayFromIndex(t *testing.T) {
	store := NewReplayStore(ReplayOptions{PerSession: 100, Total: 1000})
	var want []string
	for i := range 10 {
		e := event("a", i, 10)
		want = append(want, e)
		appendAll(t, store, "s", "a", e)
		appendAll(t, store, "s", "b", event("b", i, 1+i%3+len(fmt.Sprintf("b-%d:", i))))
	}
	check := func(firstHeld int) {
		t.Helper()
		for k := -1; k < firstHeld-1; k++ {
			mustPurged(t, store, "s", "a", k)
		}
		for k := firstHeld - 1; k <= len(want)+2; k++ {
			got := mustAfter(t, store, "s", "a", k)
			wantAfter := want[min(k+1, len(want)):]
			if !slices.Equal(got, wantAfter) {
				t.Fatalf("After(s, a, %d) = %q; want %q", k, got, wantAfter)
			}
		}
	}
	// 10 events of 10 bytes, and "b"'s are small: both streams together
	// are over 100 bytes, so the session's oldest have gone, which were
	// on "a". Find the first held index by the error boundary.
	first := 0
	for {
		if _, err := after(t, store, "s", "a", first-1); err == nil {
			break
		}
		first++
	}
	if first == 0 {
		t.Fatalf("nothing dropped from stream a; the test needs some dropped (session holds %d bytes)", store.SessionBytes("s"))
	}
	check(first)

	// Stopping the iterator early stops it.
	n := 0
	for range store.After(context.Background(), "s", "a", first-1) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("After yielded %d times after its consumer stopped", n)
	}
}

// TestReplayStorePerSessionCapDropsOnlyOwnOldest fills one session past
// its own cap while another session stays small: the full session loses
// its oldest events, across its streams and in append order, and the
// small session loses nothing, even though the store is far below Total.
func TestReplayStorePerSessionCapDropsOnlyOwnOldest(t *testing.T) {
	store := NewReplayStore(ReplayOptions{PerSession: 100, Total: 10_000})
	appendAll(t, store, "light", "", events("light", 0, 3, 10)...)
	// "full" appends 5 events on stream "old", then 10 on "new": 150 bytes
	// against a cap of 100, so its 5 oldest (all of "old") must go.
	appendAll(t, store, "full", "old", events("old", 0, 5, 10)...)
	appendAll(t, store, "light", "", events("light", 3, 4, 10)...)
	appendAll(t, store, "full", "new", events("new", 0, 10, 10)...)

	if got := store.SessionBytes("full"); got != 100 {
		t.Errorf("full session holds %d bytes; want its cap, 100", got)
	}
	mustPurged(t, store, "full", "old", -1)
	mustPurged(t, store, "full", "old", 3)
	if got := mustAfter(t, store, "full", "old", 4); len(got) != 0 {
		t.Errorf("After(full, old, 4) = %q; want nothing (all of old dropped, none after)", got)
	}
	if got, want := mustAfter(t, store, "full", "new", -1), events("new", 0, 10, 10); !slices.Equal(got, want) {
		t.Errorf("full session's newer stream = %q; want all of it, %q", got, want)
	}
	if got, want := mustAfter(t, store, "light", "", -1), events("light", 0, 4, 10); !slices.Equal(got, want) {
		t.Errorf("light session = %q; want untouched %q", got, want)
	}

	// One more event on "new" drops that stream's own oldest, index 0.
	appendAll(t, store, "full", "new", event("new", 10, 10))
	mustPurged(t, store, "full", "new", -1)
	if got, want := mustAfter(t, store, "full", "new", 0), events("new", 1, 11, 10); !slices.Equal(got, want) {
		t.Errorf("After(full, new, 0) = %q; want %q", got, want)
	}
	if got := store.Bytes(); got != 140 {
		t.Errorf("store holds %d bytes; want 100 + 40", got)
	}
}

// TestReplayStoreHeavySessionPaysUnderTotal fills the store past Total
// with several light sessions and one heavy (stalled) session: the
// heavy session's history is cut, and every light session keeps all of
// its own. It also covers a new session arriving into a full store, and
// the case where the session appending is itself the heaviest.
func TestReplayStoreHeavySessionPaysUnderTotal(t *testing.T) {
	store := NewReplayStore(ReplayOptions{PerSession: 600, Total: 1000})
	lights := []string{"l1", "l2", "l3"}
	for _, l := range lights {
		appendAll(t, store, l, "", events(l, 0, 2, 100)...) // 200 bytes each
	}
	// The heavy session never reconnects and keeps being sent to: 100
	// events of 10 bytes. Within its cap of 600 it would keep 60, but
	// only 1000-600 = 400 bytes are left for it.
	for i := range 100 {
		appendAll(t, store, "heavy", "", event("heavy", i, 10))
		// Interleave the light sessions' traffic: they are the ones
		// appending while the store is full, and still must not pay.
		if i%25 == 24 {
			for _, l := range lights {
				appendAll(t, store, l, "", event(l, 2+i/25, 10))
			}
		}
	}
	for _, l := range lights {
		want := append(events(l, 0, 2, 100), events(l, 2, 6, 10)...)
		if got := mustAfter(t, store, l, "", -1); !slices.Equal(got, want) {
			t.Errorf("light session %s = %q; want all of its history", l, got)
		}
	}
	if got := store.Bytes(); got != 1000 {
		t.Errorf("store holds %d bytes; want Total, 1000", got)
	}
	// 3 x 240 light bytes leave 280 for heavy: its last 28 events.
	if got := store.SessionBytes("heavy"); got != 280 {
		t.Errorf("heavy session holds %d bytes; want 280", got)
	}
	mustPurged(t, store, "heavy", "", 70)
	if got, want := mustAfter(t, store, "heavy", "", 71), events("heavy", 72, 100, 10); !slices.Equal(got, want) {
		t.Errorf("heavy session tail = %q; want %q", got, want)
	}

	// A new session arriving into the full store takes its room from the
	// heavy session, not the light ones.
	// (30 bytes, so heavy stays the heaviest throughout; were it to fall
	// below the light sessions' 240, they would be the heaviest and pay.)
	appendAll(t, store, "new", "", event("new", 0, 30))
	if got := store.SessionBytes("heavy"); got != 250 {
		t.Errorf("after a new session's 30 bytes, heavy holds %d; want 250", got)
	}
	for _, l := range lights {
		if got := store.SessionBytes(l); got != 240 {
			t.Errorf("light session %s holds %d bytes after a new session; want 240", l, got)
		}
	}
}

// TestReplayStoreAppenderHeaviest covers the store going over Total on an
// append that makes the appending session the heaviest while it holds
// only that event: the event is within PerSession, so it stays, and the
// next heaviest session pays, not the lightest.
func TestReplayStoreAppenderHeaviest(t *testing.T) {
	store := NewReplayStore(ReplayOptions{PerSession: 60, Total: 100})
	appendAll(t, store, "a", "", events("a", 0, 4, 10)...) // 40
	appendAll(t, store, "b", "", events("b", 0, 2, 10)...) // 20
	appendAll(t, store, "big", "", event("big", 0, 55))    // 115 > 100
	if got, want := mustAfter(t, store, "big", "", -1), []string{event("big", 0, 55)}; !slices.Equal(got, want) {
		t.Errorf("big session = %q; want the event it just appended", got)
	}
	// 15 over: a (the heaviest other) loses two 10-byte events.
	mustPurged(t, store, "a", "", 0)
	if got, want := mustAfter(t, store, "a", "", 1), events("a", 2, 4, 10); !slices.Equal(got, want) {
		t.Errorf("a = %q; want its newest two, %q", got, want)
	}
	if got, want := mustAfter(t, store, "b", "", -1), events("b", 0, 2, 10); !slices.Equal(got, want) {
		t.Errorf("b = %q; want untouched %q", got, want)
	}
	if got := store.Bytes(); got != 95 {
		t.Errorf("store holds %d bytes; want 95", got)
	}
}

// TestReplayStoreAfterPurgedIndex checks the error After gives when the
// event after the index has been dropped: it wraps the SDK's
// ErrEventsPurged, comes with no data (no partial replay), and an index
// whose successor is still held replays normally.
func TestReplayStoreAfterPurgedIndex(t *testing.T) {
	store := NewReplayStore(ReplayOptions{PerSession: 30, Total: 30})
	appendAll(t, store, "s", "", events("s", 0, 6, 10)...) // keeps 3, 4, 5
	for k := -1; k <= 1; k++ {
		mustPurged(t, store, "s", "", k)
	}
	if got, want := mustAfter(t, store, "s", "", 2), events("s", 3, 6, 10); !slices.Equal(got, want) {
		t.Errorf("After(s, '', 2) = %q; want %q", got, want)
	}
	// Indexes are not reused: the next event is 6, and 5 is still held.
	appendAll(t, store, "s", "", event("s", 6, 10))
	mustPurged(t, store, "s", "", 2)
	if got, want := mustAfter(t, store, "s", "", 4), events("s", 5, 7, 10); !slices.Equal(got, want) {
		t.Errorf("After(s, '', 4) = %q; want %q", got, want)
	}
}

// TestReplayStoreOversizeEventKept checks that an event larger than
// PerSession is still kept, alone, so the stream it was sent on can be
// resumed at least to it, and that it does not push other sessions out.
func TestReplayStoreOversizeEventKept(t *testing.T) {
	store := NewReplayStore(ReplayOptions{PerSession: 50, Total: 100})
	appendAll(t, store, "other", "", events("other", 0, 5, 10)...)
	appendAll(t, store, "s", "", events("s", 0, 3, 10)...)
	appendAll(t, store, "s", "", event("s", 3, 200))
	if got, want := mustAfter(t, store, "s", "", 2), []string{event("s", 3, 200)}; !slices.Equal(got, want) {
		t.Errorf("After(s, '', 2) = %q; want the oversize event", got)
	}
	mustPurged(t, store, "s", "", 1)
	if got, want := mustAfter(t, store, "other", "", -1), events("other", 0, 5, 10); !slices.Equal(got, want) {
		t.Errorf("other session = %q; want untouched", got)
	}
	// The next append anywhere brings the store back within Total, taking
	// from the oversize session first.
	appendAll(t, store, "other", "", event("other", 5, 10))
	if got := store.Bytes(); got > 100 {
		t.Errorf("store holds %d bytes after the next append; want at most 100", got)
	}
	if got, want := mustAfter(t, store, "other", "", 0), events("other", 1, 6, 10); !slices.Equal(got, want) {
		t.Errorf("other session = %q; want its own cap applied only, %q", got, want)
	}
}

// TestReplayStoreSessionClosedFreesMemory checks that closing a session
// frees its bytes, forgets its streams (After fails, but not as a purge,
// as in MemoryEventStore), and gives its room back to other sessions.
func TestReplayStoreSessionClosedFreesMemory(t *testing.T) {
	ctx := context.Background()
	store := NewReplayStore(ReplayOptions{PerSession: 100, Total: 150})
	appendAll(t, store, "gone", "1", events("gone", 0, 5, 10)...)
	appendAll(t, store, "gone", "2", events("gone", 5, 10, 10)...)
	appendAll(t, store, "kept", "", events("kept", 0, 5, 10)...)
	if got := store.Bytes(); got != 150 {
		t.Fatalf("store holds %d bytes; want 150 before closing", got)
	}
	if err := store.SessionClosed(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if got := store.Bytes(); got != 50 {
		t.Errorf("store holds %d bytes after SessionClosed; want kept's 50", got)
	}
	if got := store.SessionBytes("gone"); got != 0 {
		t.Errorf("closed session holds %d bytes", got)
	}
	for _, stream := range []string{"1", "2"} {
		got, err := after(t, store, "gone", stream, -1)
		if err == nil || errors.Is(err, mcp.ErrEventsPurged) {
			t.Errorf("After on closed session stream %q = %q, %v; want an unknown-session error", stream, got, err)
		}
	}
	// Without the closed session's 100 bytes, kept can grow to its own
	// cap without anything of it being dropped by the total.
	appendAll(t, store, "kept", "", events("kept", 5, 10, 10)...)
	if got, want := mustAfter(t, store, "kept", "", -1), events("kept", 0, 10, 10); !slices.Equal(got, want) {
		t.Errorf("kept session = %q; want all 10 events", got)
	}
	// Closing twice, or closing an unknown session, is harmless.
	if err := store.SessionClosed(ctx, "gone"); err != nil {
		t.Error(err)
	}
	if err := store.SessionClosed(ctx, "never"); err != nil {
		t.Error(err)
	}
	// Closing the last session leaves the store empty and usable.
	if err := store.SessionClosed(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	if got := store.Bytes(); got != 0 {
		t.Errorf("empty store holds %d bytes", got)
	}
	appendAll(t, store, "again", "", "x")
	if got := mustAfter(t, store, "again", "", -1); !slices.Equal(got, []string{"x"}) {
		t.Errorf("After on a fresh session = %q", got)
	}
}

// TestReplayStoreRandomOps runs random Appends and SessionClosed calls
// against the store and, after each, checks what any correct policy must
// keep true: every stream holds a contiguous, unrenumbered suffix of what
// was appended to it (After at that suffix's start succeeds with exactly
// it, one earlier is a purge); sessions and the store stay within their
// caps once past the event just appended; and the byte counts add up.
func TestReplayStoreRandomOps(t *testing.T) {
	const per, total = 200, 500
	store := NewReplayStore(ReplayOptions{PerSession: per, Total: total})
	rng := rand.New(rand.NewPCG(1, 2))
	sent := map[string]map[string][]string{} // session -> stream -> appended
	firsts := map[string]int{}               // session+"/"+stream -> first held index seen
	for op := range 5000 {
		session := fmt.Sprintf("s%d", rng.IntN(6))
		if rng.IntN(50) == 0 {
			if err := store.SessionClosed(context.Background(), session); err != nil {
				t.Fatal(err)
			}
			for st := range sent[session] {
				delete(firsts, session+"/"+st)
			}
			delete(sent, session)
			continue
		}
		stream := fmt.Sprintf("%d", rng.IntN(3))
		if sent[session] == nil {
			sent[session] = map[string][]string{}
		}
		n := len(sent[session][stream])
		d := event(session+"/"+stream, n, 12+rng.IntN(40))
		if rng.IntN(10) == 0 {
			d = "" // like the SDK's priming events
		}
		appendAll(t, store, session, stream, d)
		sent[session][stream] = append(sent[session][stream], d)

		sum := 0
		for s, streams := range sent {
			held := 0
			for st, all := range streams {
				// Held events only ever leave from the front, so the
				// first held index never goes back.
				first := firsts[s+"/"+st]
				if first > 0 {
					mustPurged(t, store, s, st, first-2)
				}
				for first < len(all) {
					if _, err := after(t, store, s, st, first-1); err == nil {
						break
					}
					first++
				}
				firsts[s+"/"+st] = first
				got := mustAfter(t, store, s, st, first-1)
				if !slices.Equal(got, all[first:]) {
					t.Fatalf("op %d: After(%q, %q, %d) = %q; want %q", op, s, st, first-1, got, all[first:])
				}
				for _, e := range got {
					held += len(e)
				}
			}
			if got := store.SessionBytes(s); got != held {
				t.Fatalf("op %d: SessionBytes(%q) = %d; its events add up to %d", op, s, got, held)
			}
			if held > per { // no event here is larger than per
				t.Fatalf("op %d: session %q holds %d bytes; cap %d", op, s, held, per)
			}
			sum += held
		}
		if got := store.Bytes(); got != sum {
			t.Fatalf("op %d: Bytes() = %d; sessions add up to %d", op, got, sum)
		}
		if sum > total {
			t.Fatalf("op %d: store holds %d bytes; Total %d", op, sum, total)
		}
		if got := mustAfter(t, store, session, stream, n-1); !slices.Equal(got, []string{d}) {
			t.Fatalf("op %d: the event just appended is not held: %q", op, got)
		}
	}
}

// TestReplayStoreConcurrent hammers one store from many goroutines, each
// its own session, appending and replaying, for the race detector; then
// checks each session still holds an in-order suffix of what it sent,
// ending at its newest event or empty, and the byte counts add up.
func TestReplayStoreConcurrent(t *testing.T) {
	const workers, perWorker = 8, 300
	store := NewReplayStore(ReplayOptions{PerSession: 1000, Total: 4000})
	var wg sync.WaitGroup
	for w := range workers {
		session := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for i := range perWorker {
				_ = store.Append(context.Background(), session, "", []byte(event(session, i, 20+w*5)))
				for range store.After(context.Background(), session, "", i-3) {
				}
				_ = store.SessionBytes(session)
			}
		})
	}
	// Another goroutine opens and closes short-lived sessions meanwhile.
	wg.Go(func() {
		for i := range perWorker {
			id := fmt.Sprintf("short%d", i)
			_ = store.Open(context.Background(), id, "")
			_ = store.Append(context.Background(), id, "", []byte(event(id, 0, 50)))
			_ = store.SessionClosed(context.Background(), id)
		}
	})
	wg.Wait()
	sum := 0
	for w := range workers {
		session := fmt.Sprintf("w%d", w)
		first := 0
		for first < perWorker {
			if _, err := after(t, store, session, "", first-1); err == nil {
				break
			}
			first++
		}
		if got, want := mustAfter(t, store, session, "", first-1), events(session, first, perWorker, 20+w*5); !slices.Equal(got, want) {
			t.Errorf("session %s holds %q; want %q", session, got, want)
		}
		sum += store.SessionBytes(session)
	}
	if got := store.Bytes(); got != sum || got > 4000 {
		t.Errorf("Bytes() = %d; sessions add up to %d, Total 4000", got, sum)
	}
}
