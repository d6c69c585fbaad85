package subscribe

import (
	"encoding/json"
	"testing"

	"github.com/hookgate/hookgate/bridge/store"
)

func TestParseArgumentsCanonical(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{`{"type":"x"}`, `{ "type" : "x" }`},
		{`{}`, ``},
		{`{}`, `null`},
		{`{"type":["a","b"]}`, "{\n\"type\": [\"a\", \"b\"]}"},
	} {
		_, ca, errA := parseArguments(json.RawMessage(c.a))
		_, cb, errB := parseArguments(json.RawMessage(c.b))
		if errA != nil || errB != nil || ca != cb {
			t.Errorf("%s and %s: %q (%v) vs %q (%v); want one canonical form", c.a, c.b, ca, errA, cb, errB)
		}
	}
	for _, bad := range []string{`[]`, `"x"`, `{"type":5}`, `{"type":""}`, `{"type":[]}`, `{"type":[1]}`, `{"kind":"x"}`, `{`} {
		if _, _, err := parseArguments(json.RawMessage(bad)); err == nil {
			t.Errorf("parseArguments(%s) accepted", bad)
		}
	}
}

func TestCanonicalJSONSortsAndKeepsNumbers(t *testing.T) {
	a, _ := decodeObject(json.RawMessage(`{"b":1,"a":{"y":2.0,"x":"<&>"}}`))
	b, _ := decodeObject(json.RawMessage(`{"a":{"x":"<&>","y":2.0},"b":1}`))
	ca, _ := canonicalJSON(a)
	cb, _ := canonicalJSON(b)
	if ca != cb || ca != `{"a":{"x":"<&>","y":2.0},"b":1}` {
		t.Errorf("canonical forms %s and %s", ca, cb)
	}
}

func TestFilterMatch(t *testing.T) {
	f, _, err := parseArguments(json.RawMessage(`{"type":["payment_intent.*","charge.failed"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]bool{
		"payment_intent.payment_failed": true, "payment_intent.succeeded": true, "charge.failed": true,
		"charge.failed.extra": false, "charge.succeeded": false, "": false,
	} {
		if got := f.match(store.Event{Type: typ}); got != want {
			t.Errorf("match(%q) = %v, want %v", typ, got, want)
		}
	}
	if all, _, _ := parseArguments(nil); !all.match(store.Event{Type: "anything"}) {
		t.Error("no arguments must match every event")
	}
}

func TestSubscriptionIDIsDerivedFromTheWholeKey(t *testing.T) {
	base := subscriptionID("alice", "https://a.example/h", "orders", `{}`)
	if base != subscriptionID("alice", "https://a.example/h", "orders", `{}`) {
		t.Fatal("not deterministic")
	}
	seen := map[string]bool{base: true}
	for _, id := range []string{
		subscriptionID("bob", "https://a.example/h", "orders", `{}`),
		subscriptionID("alice", "https://a.example/h2", "orders", `{}`),
		subscriptionID("alice", "https://a.example/h", "refunds", `{}`),
		subscriptionID("alice", "https://a.example/h", "orders", `{"type":"x"}`),
		// Parts cannot run into each other.
		subscriptionID("alice", "https://a.example/horders", "", `{}`),
	} {
		if seen[id] {
			t.Errorf("id %s repeats", id)
		}
		seen[id] = true
	}
}

func TestOccurrenceID(t *testing.T) {
	id := store.ID{MS: 5, Seq: 1}
	for provider, want := range map[string]string{
		"evt_1Q": "evt_1Q", "": "5-1", "has space": "5-1", "line\nbreak": "5-1",
	} {
		if got := occurrenceID(store.Event{ID: id, ProviderEventID: provider}); got != want {
			t.Errorf("occurrenceID(%q) = %q, want %q", provider, got, want)
		}
	}
}
