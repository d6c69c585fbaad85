package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"
)

// TestWalkthrough is the README's walk-through as a test: register, POST
// signed Stripe, GitHub and generic webhooks, drain them with the tools,
// ack with both spellings, watch an unacked event come back after its lease,
// and see a duplicate stored once.
func TestWalkthrough(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--lease", "2s")
	if g.token == "" {
		t.Fatal("first start printed no development token")
	}
	for _, version := range []string{"2025-11-25", "2025-06-18", "2025-03-26", ""} {
		cs := connect(t, g.url, g.token, version)
		// Every era sees the same tools.
		mustTool(t, cs, "list_webhooks", nil)
	}
	cs := connect(t, g.url, g.token, "2025-11-25")

	stripeSecret := "whsec_test_walkthrough"
	stripeReg := mustTool(t, cs, "register_webhook", map[string]any{"label": "stripe-payment", "provider": "stripe", "secret": stripeSecret}).Structured
	githubReg := mustTool(t, cs, "register_webhook", map[string]any{"label": "gh", "provider": "github", "secret": "gh-secret"}).Structured
	genericReg := mustTool(t, cs, "register_webhook", map[string]any{"label": "plain"}).Structured
	for _, reg := range []map[string]any{stripeReg, githubReg, genericReg} {
		for _, field := range []string{"id", "label", "url", "secret", "provider", "resourceUri"} {
			if s, _ := reg[field].(string); s == "" {
				t.Fatalf("register_webhook result %v lacks %q", reg, field)
			}
		}
	}
	if genericReg["provider"] != "generic" || stripeReg["resourceUri"] != "hookgate://webhooks/stripe-payment" {
		t.Fatalf("unexpected registration fields: %v / %v", genericReg, stripeReg)
	}
	again := mustTool(t, cs, "register_webhook", map[string]any{"label": "stripe-payment"}).Structured
	if again["url"] != stripeReg["url"] || again["secret"] != stripeSecret {
		t.Fatalf("re-register changed url or secret: %v, first %v", again, stripeReg)
	}

	// Stripe, signed by stripe-go itself.
	stripeBody := []byte(`{"id":"evt_walk_1","type":"payment_intent.payment_failed","data":{"object":{"amount":2000}}}`)
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: stripeBody, Secret: stripeSecret, Timestamp: time.Now()})
	status, stripeResp := post(t, stripeReg["url"].(string), http.Header{"Stripe-Signature": {signed.Header}, "Content-Type": {"application/json"}}, stripeBody)
	if status != http.StatusOK || stripeResp["duplicate"] != false {
		t.Fatalf("stripe POST: %d %v", status, stripeResp)
	}
	// GitHub.
	ghBody := []byte(`{"action":"opened","issue":{"number":7}}`)
	mac := hmac.New(sha256.New, []byte("gh-secret"))
	mac.Write(ghBody)
	status, _ = post(t, githubReg["url"].(string), http.Header{
		"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))},
		"X-Github-Event":      {"issues"},
		"X-Github-Delivery":   {"d-walk-1"},
		"Content-Type":        {"application/json"},
	}, ghBody)
	if status != http.StatusOK {
		t.Fatalf("github POST: %d", status)
	}
	// Generic, then the same delivery again: stored once.
	genericSecret := genericReg["secret"].(string)
	genericBody := []byte(`{"id":"order-1","type":"order.created","total":12}`)
	genericHeader := http.Header{"X-Webhook-Signature": {signGeneric(genericSecret, genericBody)}}
	status, first := post(t, genericReg["url"].(string), genericHeader, genericBody)
	if status != http.StatusOK {
		t.Fatalf("generic POST: %d", status)
	}
	status, dup := post(t, genericReg["url"].(string), genericHeader, genericBody)
	if status != http.StatusOK || dup["duplicate"] != true || dup["id"] != first["id"] {
		t.Fatalf("duplicate POST: %d %v, first %v", status, dup, first)
	}
	// A bad signature is refused and stores nothing.
	status, _ = post(t, genericReg["url"].(string), http.Header{"X-Webhook-Signature": {signGeneric("wrong", genericBody)}}, []byte(`{"id":"order-2"}`))
	if status != http.StatusUnauthorized {
		t.Fatalf("bad signature: got %d, want 401", status)
	}

	batch := decodeBatch(t, mustTool(t, cs, "check_pending_events", nil).Text)
	if len(batch.Events) != 3 || batch.Remaining != 0 {
		t.Fatalf("check_pending_events: %d events, remaining %d; want 3, 0: %+v", len(batch.Events), batch.Remaining, batch)
	}
	want := []struct{ label, source, typ, pid string }{
		{"stripe-payment", "stripe", "payment_intent.payment_failed", "evt_walk_1"},
		{"gh", "github", "issues.opened", "d-walk-1"},
		{"plain", "generic", "order.created", "order-1"},
	}
	for i, w := range want {
		e := batch.Events[i]
		if e.Label != w.label || e.Source != w.source || e.Type != w.typ || e.ProviderEventID != w.pid || !e.Verified || e.DeliveryCount != 1 {
			t.Errorf("event %d = %+v, want label %s source %s type %s providerEventId %s, verified, deliveryCount 1", i, e, w.label, w.source, w.typ, w.pid)
		}
	}
	if batch.Events[0].ID != stripeResp["id"] {
		t.Errorf("first event id %s, ingress answered %v", batch.Events[0].ID, stripeResp["id"])
	}
	if !json.Valid(batch.Events[0].Payload) || string(batch.Events[0].Payload) != string(stripeBody) {
		t.Errorf("payload %s, want the body as sent %s", batch.Events[0].Payload, stripeBody)
	}

	// Ack the first with eventId, the second with event_id; leave the third.
	ack := mustTool(t, cs, "ack_event", map[string]any{"eventId": batch.Events[0].ID}).Structured
	if ack["acknowledged"] != true || ack["count"] != float64(1) {
		t.Fatalf("ack_event eventId: %v", ack)
	}
	mustTool(t, cs, "ack_event", map[string]any{"event_id": batch.Events[1].ID})
	mustTool(t, cs, "ack_event", map[string]any{"event_id": batch.Events[1].ID}) // twice is fine
	if r := callTool(t, cs, "ack_event", map[string]any{"event_id": "1-0"}); !r.IsError || !strings.Contains(r.Text, "1-0") {
		t.Fatalf("ack of unknown id: isError %v text %q; want a tool error naming it", r.IsError, r.Text)
	}

	// Nothing is pending to hand out now: the third is leased, so it is
	// not counted in remaining either (a call now could not return it).
	if b := decodeBatch(t, mustTool(t, cs, "check_pending_events", nil).Text); len(b.Events) != 0 || b.Remaining != 0 {
		t.Fatalf("after acks: %+v, want no events and remaining 0 (the third is leased)", b)
	}
	// After its lease runs out, the unacked event comes back with deliveryCount 2.
	var back eventBatch
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r := mustTool(t, cs, "poll_events", map[string]any{"wait_seconds": 2})
		var events []testEvent
		if err := json.Unmarshal([]byte(r.Text), &events); err != nil {
			t.Fatalf("poll_events text is not a JSON array: %q", r.Text)
		}
		if len(events) > 0 {
			back = eventBatch{Events: events}
			break
		}
	}
	if len(back.Events) != 1 || back.Events[0].ID != batch.Events[2].ID || back.Events[0].DeliveryCount != 2 {
		t.Fatalf("after lease expiry got %+v, want event %s with deliveryCount 2", back.Events, batch.Events[2].ID)
	}
	mustTool(t, cs, "ack_event", map[string]any{"event_ids": []string{back.Events[0].ID}})
	if b := decodeBatch(t, mustTool(t, cs, "check_pending_events", nil).Text); len(b.Events) != 0 || b.Remaining != 0 {
		t.Fatalf("at the end: %+v, want nothing pending", b)
	}

	list := mustTool(t, cs, "list_webhooks", nil).Structured
	hooks, _ := list["webhooks"].([]any)
	var labels []string
	for _, h := range hooks {
		labels = append(labels, h.(map[string]any)["label"].(string))
	}
	if !slices.Equal(labels, []string{"gh", "plain", "stripe-payment"}) {
		t.Fatalf("list_webhooks labels %v", labels)
	}
}
