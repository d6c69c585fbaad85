package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// listenRequest builds a raw 2026-07-28 subscriptions/listen for uri.
func listenRequest(base, token string, id any, uri string) *http.Request {
	body, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
		"params": map[string]any{
			"_meta": map[string]any{
				"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
				"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "raw", "version": "1"},
				"io.modelcontextprotocol/clientCapabilities": map[string]any{},
			},
			"notifications": map[string]any{"resourceSubscriptions": []string{uri}},
		},
	})
	req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "subscriptions/listen")
	return req
}

// openListen starts a raw 2026-07-28 subscriptions/listen and returns the
// stream once the acknowledgement has arrived.
func openListen(t *testing.T, base, token, uri string) (*http.Response, func() (sseEvent, bool)) {
	t.Helper()
	req := listenRequest(base, token, "listen-1", uri)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Errorf("listen stream lacks X-Accel-Buffering: no")
	}
	next, stop := iterPull(sseEvents(bufio.NewReader(resp.Body)))
	t.Cleanup(stop)
	first, ok := next()
	if !ok || !strings.Contains(first.data, "notifications/subscriptions/acknowledged") || !strings.Contains(first.data, `"listen-1"`) {
		t.Fatalf("first listen message %+v, want the acknowledgement with the subscriptionId", first)
	}
	if first.id != "" {
		t.Errorf("2026 listen message carries an SSE id %q", first.id)
	}
	return resp, next
}

// TestListenEndsWithCompleteOnShutdown: on SIGTERM an open 2026 listen gets
// its final result (resultType "complete", subscriptionId in _meta) before
// the stream closes, so the client can tell a planned end from a cut.
func TestListenEndsWithCompleteOnShutdown(t *testing.T) {
	g := startGateway(t, t.TempDir())
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	_, next := openListen(t, g.url, g.token, reg["resourceUri"].(string))

	body := []byte(`{"id":"one"}`)
	if status, _ := post(t, reg["url"].(string), http.Header{"X-Webhook-Signature": {signGeneric(reg["secret"].(string), body)}}, body); status != 200 {
		t.Fatalf("POST: %d", status)
	}
	ev, ok := next()
	if !ok || !strings.Contains(ev.data, "notifications/resources/updated") || !strings.Contains(ev.data, `"io.modelcontextprotocol/subscriptionId":"listen-1"`) || ev.id != "" {
		t.Fatalf("listen notification %+v, want resources/updated with the subscriptionId and no SSE id", ev)
	}
	stopped := make(chan struct{})
	go func() { g.stop(); close(stopped) }()
	var final string
	withDeadline(t, 30*time.Second, "the listen's final result", func() {
		for {
			ev, ok := next()
			if !ok {
				return
			}
			if strings.Contains(ev.data, `"result"`) {
				final = ev.data
				return
			}
		}
	})
	if !strings.Contains(final, `"resultType":"complete"`) || !strings.Contains(final, `"io.modelcontextprotocol/subscriptionId":"listen-1"`) {
		t.Fatalf("final listen message %q, want resultType complete with the subscriptionId", final)
	}
	<-stopped
}

// TestPushIsPrincipalScoped: bob, subscribed to hookgate://events, never sees
// alice's events on either era, may not subscribe to her label, and reads of
// resources show only his own.
func TestPushIsPrincipalScoped(t *testing.T) {
	dir := t.TempDir()
	aliceToken, bobToken := createToken(t, dir, "alice"), createToken(t, dir, "bob")
	g := startGateway(t, dir)
	alice, bob := connect(t, g.url, aliceToken, ""), connect(t, g.url, bobToken, "2025-11-25")
	aliceReg := mustTool(t, alice, "register_webhook", map[string]any{"label": "private"}).Structured
	bobReg := mustTool(t, bob, "register_webhook", map[string]any{"label": "mine"}).Structured

	aliceSees := subscriber(t, g.url, aliceToken, "2025-11-25", "hookgate://events")
	bobLegacy := subscriber(t, g.url, bobToken, "2025-11-25", "hookgate://events")
	bobModern := subscriber(t, g.url, bobToken, "", "hookgate://events")

	// bob cannot subscribe to alice's label in either era.
	if err := bob.Subscribe(context.Background(), &mcp.SubscribeParams{URI: "hookgate://webhooks/private"}); err == nil {
		t.Fatal("bob subscribed to alice's label")
	}
	_, next := openListenMaybeRefused(t, g.url, bobToken, "hookgate://webhooks/private")
	if next != nil {
		t.Fatal("bob's 2026 listen on alice's label was acknowledged")
	}

	aliceIDs := postMany(t, aliceReg["url"].(string), aliceReg["secret"].(string), 0, 20, 4, 0)
	aliceSees.waitFor(t, len(aliceIDs), 30*time.Second)
	bobIDs := postMany(t, bobReg["url"].(string), bobReg["secret"].(string), 100, 1, 1, 0)
	for name, c := range map[string]*notifyLog{"bob 2025": bobLegacy, "bob 2026": bobModern} {
		assertInOrder(t, name, c.waitFor(t, 1, 30*time.Second), bobIDs)
	}

	// Reads: bob's hookgate://events holds only his event; alice's label is not found for him.
	res, err := bob.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "hookgate://events"})
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Events []testEvent `json:"events"`
		Cursor string      `json:"cursor"`
	}
	if err := json.Unmarshal([]byte(res.Contents[0].Text), &page); err != nil || len(page.Events) != 1 || page.Events[0].ID != bobIDs[0] || page.Cursor != bobIDs[0] {
		t.Fatalf("bob reads hookgate://events: %s", res.Contents[0].Text)
	}
	if _, err := bob.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "hookgate://webhooks/private"}); err == nil {
		t.Fatal("bob read alice's label")
	}
	if _, err := bob.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "hookgate://webhooks/private/events/" + aliceIDs[0]}); err == nil {
		t.Fatal("bob read alice's event")
	}
	list, err := bob.ListResources(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, r := range list.Resources {
		uris = append(uris, r.URI)
	}
	if strings.Join(uris, " ") != "hookgate://events hookgate://webhooks/mine" {
		t.Fatalf("bob lists resources %v", uris)
	}
}

// openListenMaybeRefused opens a listen and reports whether it was
// acknowledged (next non-nil) or refused.
func openListenMaybeRefused(t *testing.T, base, token, uri string) (string, func() (sseEvent, bool)) {
	t.Helper()
	req := listenRequest(base, token, 7, uri)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer resp.Body.Close()
	for ev := range sseEvents(resp.Body) {
		if strings.Contains(ev.data, "acknowledged") {
			return ev.data, func() (sseEvent, bool) { return sseEvent{}, false }
		}
		if strings.Contains(ev.data, `"error"`) {
			return ev.data, nil
		}
	}
	return "", nil
}

// TestResourceReadsFollowACursor: hookgate://webhooks/{label} returns the
// pending events with a cursor; ?after= the cursor returns only newer ones;
// an acked event is no longer listed; one event reads by its URI.
func TestResourceReadsFollowACursor(t *testing.T) {
	g := startGateway(t, t.TempDir())
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "q"}).Structured
	ids := postMany(t, reg["url"].(string), reg["secret"].(string), 0, 3, 1, 0)
	read := func(uri string) (events []testEvent, cursor string) {
		t.Helper()
		res, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: uri})
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		var page struct {
			Events []testEvent `json:"events"`
			Cursor string      `json:"cursor"`
		}
		if err := json.Unmarshal([]byte(res.Contents[0].Text), &page); err != nil {
			t.Fatalf("read %s: %s", uri, res.Contents[0].Text)
		}
		return page.Events, page.Cursor
	}
	events, cursor := read("hookgate://webhooks/q?limit=2")
	if len(events) != 2 || events[0].ID != ids[0] || cursor != ids[1] {
		t.Fatalf("first page: %+v cursor %s", events, cursor)
	}
	events, cursor = read("hookgate://webhooks/q?after=" + cursor)
	if len(events) != 1 || events[0].ID != ids[2] || cursor != ids[2] {
		t.Fatalf("second page: %+v cursor %s", events, cursor)
	}
	if events, _ = read("hookgate://webhooks/q?after=" + cursor); len(events) != 0 {
		t.Fatalf("past the end: %+v", events)
	}
	mustTool(t, cs, "ack_event", map[string]any{"event_id": ids[0]})
	if events, _ = read("hookgate://webhooks/q"); len(events) != 2 || events[0].ID != ids[1] {
		t.Fatalf("after ack: %+v", events)
	}
	res, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "hookgate://webhooks/q/events/" + ids[0]})
	if err != nil || !strings.Contains(res.Contents[0].Text, ids[0]) {
		t.Fatalf("read one event: %v %v", err, res)
	}
	for _, bad := range []string{"hookgate://webhooks/q?after=not-an-id", "hookgate://webhooks/nope", "hookgate://elsewhere"} {
		if _, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: bad}); err == nil {
			t.Errorf("read %s succeeded", bad)
		}
	}
}
