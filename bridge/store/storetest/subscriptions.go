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

func (e *env) subscriptions() []store.Subscription {
	e.t.Helper()
	subs, err := e.s.Subscriptions(e.ctx)
	if err != nil {
		e.t.Fatalf("Subscriptions: %v", err)
	}
	return subs
}
