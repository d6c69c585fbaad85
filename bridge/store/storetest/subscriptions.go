package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

func subscriptionTests() []testCase {
	return []testCase{
		{"PutListDelete", testSubscriptionPutListDelete},
		{"Survive", testSubscriptionSurvive},
		{"PutKeepsLaterCursor", testSubscriptionPutKeepsCursor},
		{"Claim", testSubscriptionClaim},
		{"ClaimRelease", testSubscriptionClaimRelease},
		{"SaveCursor", testSubscriptionSaveCursor},
		{"ClaimGone", testSubscriptionClaimGone},
	}
}

func testSubscriptionPutListDelete(t *testing.T, e *env) {
	a := store.Subscription{ID: "s1", Principal: alice, Data: json.RawMessage(`{"url":"https://a.example/hook"}`), ExpiresAt: e.clock.Now().Add(time.Hour).UTC()}
	b := store.Subscription{ID: "s1", Principal: bob, Data: json.RawMessage(`{"url":"https://b.example/hook"}`)}
	for _, s := range []store.Subscription{a, b} {
		if err := e.s.PutSubscription(e.ctx, s); err != nil {
			t.Fatalf("PutSubscription %+v: %v", s, err)
		}
	}
	a.Cursor = store.ID{MS: 5, Seq: 1} // delivery progressed: replace, not add
	if err := e.s.PutSubscription(e.ctx, a); err != nil {
		t.Fatal(err)
	}
	got := e.subscriptions()
	if len(got) != 2 {
		t.Fatalf("Subscriptions = %+v, want alice's and bob's s1", got)
	}
	i := slices.IndexFunc(got, func(s store.Subscription) bool { return s.Principal == alice })
	if i < 0 || got[i].Cursor != a.Cursor || string(got[i].Data) != string(a.Data) || !got[i].ExpiresAt.Equal(a.ExpiresAt) {
		t.Fatalf("alice's subscription = %+v, want %+v", got, a)
	}
	if err := e.s.DeleteSubscription(e.ctx, alice, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.DeleteSubscription(e.ctx, alice, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if got := e.subscriptions(); len(got) != 1 || got[0].Principal != bob {
		t.Fatalf("after deleting alice's: %+v, want only bob's", got)
	}
}

func testSubscriptionSurvive(t *testing.T, e *env) {
	e.needReopen()
	s := store.Subscription{ID: "keep", Principal: alice, Data: json.RawMessage(`{"n":1}`), Cursor: store.ID{MS: 9}}
	if err := e.s.PutSubscription(e.ctx, s); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if got := e.subscriptions(); len(got) != 1 || got[0].ID != "keep" || got[0].Cursor != s.Cursor {
		t.Fatalf("after reopen: %+v", got)
	}
}

// testSubscriptionPutKeepsCursor: a refresh written with an older cursor
// (by a replica that does not deliver the subscription) does not move the
// stored cursor back, nor drop the claim.
func testSubscriptionPutKeepsCursor(t *testing.T, e *env) {
	s := store.Subscription{ID: "s", Principal: alice, Data: json.RawMessage(`{"v":1}`), Cursor: store.ID{MS: 10}, ExpiresAt: e.clock.Now().Add(time.Hour).UTC()}
	e.putSub(s)
	e.claim(alice, "s", "A", time.Minute, true)
	if err := e.s.SaveSubscriptionCursor(e.ctx, alice, "s", "A", store.ID{MS: 20, Seq: 3}); err != nil {
		t.Fatal(err)
	}
	s.Data, s.ExpiresAt = json.RawMessage(`{"v":2}`), s.ExpiresAt.Add(time.Hour)
	e.putSub(s) // still cursor 10
	got := e.subscriptions()
	if len(got) != 1 || got[0].Cursor != (store.ID{MS: 20, Seq: 3}) || string(got[0].Data) != `{"v":2}` || !got[0].ExpiresAt.Equal(s.ExpiresAt) {
		t.Fatalf("after refresh with an older cursor: %+v, want cursor 20-3, data v2, new expiry", got)
	}
	if got[0].Owner != "A" {
		t.Fatalf("refresh dropped the claim: owner %q", got[0].Owner)
	}
	s.Cursor = store.ID{MS: 30}
	e.putSub(s)
	if got := e.subscriptions(); got[0].Cursor != s.Cursor {
		t.Fatalf("Put with a later cursor: %v, want %v", got[0].Cursor, s.Cursor)
	}
}

// testSubscriptionClaim: one owner at a time; the holder renews; another
// takes over only once the claim ran out.
func testSubscriptionClaim(t *testing.T, e *env) {
	s := store.Subscription{ID: "s", Principal: alice, Data: json.RawMessage(`{"v":1}`), Cursor: store.ID{MS: 7}}
	e.putSub(s)
	if got := e.subscriptions(); got[0].Owner != "" {
		t.Fatalf("new subscription owned by %q", got[0].Owner)
	}
	got := e.claim(alice, "s", "A", 10*time.Second, true)
	if got.Cursor != s.Cursor || string(got.Data) != `{"v":1}` || got.Owner != "A" || !got.ClaimedUntil.Equal(e.clock.Now().Add(10*time.Second)) {
		t.Fatalf("claim by A returned %+v", got)
	}
	if got := e.claim(alice, "s", "B", 10*time.Second, false); got.Owner != "A" {
		t.Fatalf("B's failed claim reports owner %q, want A", got.Owner)
	}
	e.clock.Advance(8 * time.Second)
	e.claim(alice, "s", "A", 10*time.Second, true) // renewed: until now+10s
	e.clock.Advance(8 * time.Second)
	e.claim(alice, "s", "B", 10*time.Second, false)
	if l := e.subscriptions(); l[0].Owner != "A" || !l[0].ClaimedUntil.Equal(e.clock.Now().Add(2*time.Second)) {
		t.Fatalf("listed claim %q until %v, want A until %v", l[0].Owner, l[0].ClaimedUntil, e.clock.Now().Add(2*time.Second))
	}
	e.clock.Advance(2 * time.Second) // A's claim ran out
	if got := e.claim(alice, "s", "B", 10*time.Second, true); got.Owner != "B" {
		t.Fatalf("takeover: owner %q", got.Owner)
	}
	e.claim(alice, "s", "A", 10*time.Second, false)
	if err := e.s.SaveSubscriptionCursor(e.ctx, alice, "s", "A", store.ID{MS: 99}); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("save by the previous owner: %v, want ErrNotOwner", err)
	}
	// Claims are per subscription and principal.
	e.putSub(store.Subscription{ID: "s", Principal: bob, Data: json.RawMessage(`{}`)})
	e.claim(bob, "s", "A", 10*time.Second, true)
}

// testSubscriptionClaimRelease: a released claim is free at once; only
// its holder can release it.
func testSubscriptionClaimRelease(t *testing.T, e *env) {
	e.putSub(store.Subscription{ID: "s", Principal: alice, Data: json.RawMessage(`{}`)})
	e.claim(alice, "s", "A", time.Minute, true)
	if got := e.claim(alice, "s", "B", 0, false); got.Owner != "A" {
		t.Fatalf("release by a non-holder changed the owner to %q", got.Owner)
	}
	if got := e.claim(alice, "s", "A", 0, false); got.Owner != "" {
		t.Fatalf("after release: owner %q", got.Owner)
	}
	if err := e.s.SaveSubscriptionCursor(e.ctx, alice, "s", "A", store.ID{MS: 5}); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("save after release: %v, want ErrNotOwner", err)
	}
	e.claim(alice, "s", "B", time.Minute, true)
}

// testSubscriptionSaveCursor: the holder's save moves the cursor forward
// only, and changes nothing else.
func testSubscriptionSaveCursor(t *testing.T, e *env) {
	s := store.Subscription{ID: "s", Principal: alice, Data: json.RawMessage(`{"v":1}`), Cursor: store.ID{MS: 7}, ExpiresAt: e.clock.Now().Add(time.Hour).UTC()}
	e.putSub(s)
	if err := e.s.SaveSubscriptionCursor(e.ctx, alice, "s", "A", store.ID{MS: 8}); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("save without a claim: %v, want ErrNotOwner", err)
	}
	e.claim(alice, "s", "A", time.Second, true)
	e.clock.Advance(time.Minute) // expired, but nobody took it over
	for _, c := range []store.ID{{MS: 9, Seq: 2}, {MS: 9, Seq: 1}} {
		if err := e.s.SaveSubscriptionCursor(e.ctx, alice, "s", "A", c); err != nil {
			t.Fatalf("save %v: %v", c, err)
		}
	}
	got := e.subscriptions()
	if got[0].Cursor != (store.ID{MS: 9, Seq: 2}) || string(got[0].Data) != `{"v":1}` || !got[0].ExpiresAt.Equal(s.ExpiresAt) {
		t.Fatalf("after saves: %+v, want cursor 9-2 and the rest unchanged", got[0])
	}
	if err := e.s.SaveSubscriptionCursor(e.ctx, bob, "s", "A", store.ID{MS: 10}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("save of another principal's: %v, want ErrNotFound", err)
	}
}

// testSubscriptionClaimGone: a deleted subscription cannot be claimed or
// saved into, so a save never brings it back; a new one with the same ID
// starts unclaimed, with its own cursor.
func testSubscriptionClaimGone(t *testing.T, e *env) {
	if _, _, err := e.s.ClaimSubscription(e.ctx, alice, "none", "A", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("claim of an unknown subscription: %v, want ErrNotFound", err)
	}
	e.putSub(store.Subscription{ID: "s", Principal: alice, Data: json.RawMessage(`{}`), Cursor: store.ID{MS: 50}})
	e.claim(alice, "s", "A", time.Minute, true)
	if err := e.s.DeleteSubscription(e.ctx, alice, "s"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SaveSubscriptionCursor(e.ctx, alice, "s", "A", store.ID{MS: 60}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("save after delete: %v, want ErrNotFound", err)
	}
	if got := e.subscriptions(); len(got) != 0 {
		t.Fatalf("save resurrected %+v", got)
	}
	e.putSub(store.Subscription{ID: "s", Principal: alice, Data: json.RawMessage(`{}`), Cursor: store.ID{MS: 1}})
	if got := e.subscriptions(); len(got) != 1 || got[0].Owner != "" || got[0].Cursor != (store.ID{MS: 1}) {
		t.Fatalf("recreated: %+v, want unclaimed at cursor 1-0", got)
	}
	e.claim(alice, "s", "B", time.Minute, true)
}

func (e *env) putSub(s store.Subscription) {
	e.t.Helper()
	if err := e.s.PutSubscription(e.ctx, s); err != nil {
		e.t.Fatalf("PutSubscription %+v: %v", s, err)
	}
}

// claim claims and checks whether owner got it.
func (e *env) claim(principal, id, owner string, ttl time.Duration, want bool) store.Subscription {
	e.t.Helper()
	s, ok, err := e.s.ClaimSubscription(e.ctx, principal, id, owner, ttl)
	if err != nil {
		e.t.Fatalf("ClaimSubscription(%s %s by %s): %v", principal, id, owner, err)
	}
	if ok != want {
		e.t.Fatalf("ClaimSubscription(%s %s by %s, %v) = %v (owner %q until %v), want %v", principal, id, owner, ttl, ok, s.Owner, s.ClaimedUntil, want)
	}
	return s
}

func (e *env) subscriptions() []store.Subscription {
	e.t.Helper()
	subs, err := e.s.Subscriptions(e.ctx)
	if err != nil {
		e.t.Fatalf("Subscriptions: %v", err)
	}
	return subs
}
