package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestIdleSessionsAreReapedButListenersAreNot: with --session-idle 1s, a
// legacy session that only holds its GET stream open outlives the limit and
// still receives notifications, while a session that went silent is closed
// (its next request gets 404, as a vanished session should).
func TestIdleSessionsAreReapedButListenersAreNot(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--session-idle", "1s")
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "q"}).Structured
	uri := reg["resourceUri"].(string)

	listener := newRawSession(t, g.url, g.token, "2025-11-25")
	if _, rerr := listener.call("resources/subscribe", map[string]any{"uri": uri}); rerr != nil {
		t.Fatalf("subscribe: %+v", rerr)
	}
	stream := listener.openGET(context.Background(), "")
	defer stream.Body.Close()
	silent := newRawSession(t, g.url, g.token, "2025-11-25")

	// Poll until the silent session is gone: the reaper runs every 500 ms.
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, g.url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":99,"method":"ping"}`))
		silent.header(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("silent session still answers %d after 20s with --session-idle 1s", resp.StatusCode)
		}
		// Pinging is activity: back off past the idle limit before the next probe.
		time.Sleep(2 * time.Second)
	}

	// The listener, idle for as long, still gets pushes on its stream.
	body := []byte(`{"id":"after-idle"}`)
	if status, _ := post(t, reg["url"].(string), http.Header{"X-Webhook-Signature": {signGeneric(reg["secret"].(string), body)}}, body); status != 200 {
		t.Fatalf("POST: %d", status)
	}
	withDeadline(t, 20*time.Second, "a notification on the long-idle GET stream", func() {
		for ev := range sseEvents(stream.Body) {
			if u, id := updatedEventID(ev.data); u == uri && id != "" {
				return
			}
		}
		t.Error("the listener's stream ended: it was reaped")
	})
}
