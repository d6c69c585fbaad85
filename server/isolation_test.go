package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestPrincipalIsolation proves another principal gets nothing of alice's:
// not her registrations, not her events, and cannot ack, nack or delete them.
// Both register the same label and get different endpoints.
func TestPrincipalIsolation(t *testing.T) {
	dir := t.TempDir()
	aliceToken := createToken(t, dir, "alice")
	bobToken := createToken(t, dir, "bob")
	g := startGateway(t, dir)
	alice := connect(t, g.url, aliceToken, "2025-11-25")
	bob := connect(t, g.url, bobToken, "")

	aliceReg := mustTool(t, alice, "register_webhook", map[string]any{"label": "orders"}).Structured
	bobReg := mustTool(t, bob, "register_webhook", map[string]any{"label": "orders"}).Structured
	if aliceReg["url"] == bobReg["url"] || aliceReg["secret"] == bobReg["secret"] {
		t.Fatalf("two principals share an endpoint or secret: %v %v", aliceReg, bobReg)
	}
	body := []byte(`{"id":"a-1","type":"order.created"}`)
	status, resp := post(t, aliceReg["url"].(string), http.Header{"X-Webhook-Signature": {signGeneric(aliceReg["secret"].(string), body)}}, body)
	if status != http.StatusOK {
		t.Fatalf("POST to alice: %d", status)
	}
	aliceEventID := resp["id"].(string)
	// Bob's secret does not open alice's endpoint.
	status, _ = post(t, aliceReg["url"].(string), http.Header{"X-Webhook-Signature": {signGeneric(bobReg["secret"].(string), body)}}, body)
	if status != http.StatusUnauthorized {
		t.Fatalf("alice's endpoint with bob's secret: %d, want 401", status)
	}

	if b := decodeBatch(t, mustTool(t, bob, "check_pending_events", nil).Text); len(b.Events) != 0 || b.Remaining != 0 {
		t.Fatalf("bob sees %+v", b)
	}
	if r := mustTool(t, bob, "poll_events", map[string]any{"label": "orders"}); r.Text != "[]" {
		t.Fatalf("bob polls %s", r.Text)
	}
	if r := callTool(t, bob, "ack_event", map[string]any{"event_id": aliceEventID}); !r.IsError || !strings.Contains(r.Text, aliceEventID) {
		t.Fatalf("bob acking alice's event: %+v, want a tool error naming it", r)
	}
	if r := callTool(t, bob, "nack_event", map[string]any{"event_id": aliceEventID}); !r.IsError {
		t.Fatalf("bob nacking alice's event succeeded: %+v", r)
	}
	mustTool(t, bob, "delete_webhook", map[string]any{"label": "orders"}) // his own
	if r := callTool(t, bob, "delete_webhook", map[string]any{"label": "orders"}); !r.IsError {
		t.Fatalf("deleting a label bob no longer has succeeded: %+v", r)
	}
	if hooks := mustTool(t, bob, "list_webhooks", nil).Structured["webhooks"].([]any); len(hooks) != 0 {
		t.Fatalf("bob lists %v", hooks)
	}

	// Alice still has her event, leased once, and her endpoint works.
	b := decodeBatch(t, mustTool(t, alice, "check_pending_events", nil).Text)
	if len(b.Events) != 1 || b.Events[0].ID != aliceEventID || b.Events[0].DeliveryCount != 1 {
		t.Fatalf("alice's events after bob's attempts: %+v", b)
	}
	// Bob's deleted endpoint answers 410; an unknown one 404; a bad token 401.
	status, _ = post(t, bobReg["url"].(string), nil, body)
	if status != http.StatusGone {
		t.Fatalf("deleted endpoint: %d, want 410", status)
	}
	status, _ = post(t, g.url+"/hooks/wh_nosuch", nil, body)
	if status != http.StatusNotFound {
		t.Fatalf("unknown endpoint: %d, want 404", status)
	}
	req, _ := http.NewRequest(http.MethodPost, g.url+"/mcp", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer hg_not_a_token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/mcp with a bad token: %d, want 401", res.StatusCode)
	}
}
