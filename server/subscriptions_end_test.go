package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestSubscriptionsEndWithTheirSession: the SDK forgets a legacy session's
// resource subscriptions without telling hookgate, and a 2026-07-28 listen
// ends when its stream closes. Both must release what they hold, or the
// notifier keeps running and the subscriber gauge only grows. The gauge is
// the observable record of hookgate's own bookkeeping.
func TestSubscriptionsEndWithTheirSession(t *testing.T) {
	g := startGateway(t, t.TempDir())
	mustTool(t, connect(t, g.url, g.token, ""), "register_webhook", map[string]any{"label": "subs"})
	legacySeries := `hookgate_subscribers{era="2025-11-25",path="mcp"}`
	modernSeries := `hookgate_subscribers{era="2026-07-28",path="mcp"}`

	s := newRawSession(t, g.url, g.token, "2025-11-25")
	for _, uri := range []string{"hookgate://webhooks/subs", "hookgate://events"} {
		if _, rerr := s.call("resources/subscribe", map[string]any{"uri": uri}); rerr != nil {
			t.Fatalf("subscribe %s: %+v", uri, rerr)
		}
	}
	waitForSample(t, g.url, legacySeries, 2, 10*time.Second)
	end, _ := http.NewRequest(http.MethodDelete, g.url+"/mcp", nil)
	s.header(end)
	resp, err := http.DefaultClient.Do(end)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitForSample(t, g.url, legacySeries, 0, 10*time.Second)

	listen, _ := openListen(t, g.url, g.token, "hookgate://webhooks/subs")
	waitForSample(t, g.url, modernSeries, 1, 10*time.Second)
	listen.Body.Close() // a closed stream is the client's cancellation
	waitForSample(t, g.url, modernSeries, 0, 10*time.Second)
}

// TestWebSocketFeedIsCounted: the WebSocket feed shows in the subscriber
// gauge while it is open and in the push counter for each event it sends,
// as the SSE feed and MCP subscriptions do.
func TestWebSocketFeedIsCounted(t *testing.T) {
	g := startGateway(t, t.TempDir())
	reg := mustTool(t, connect(t, g.url, g.token, ""), "register_webhook", map[string]any{"label": "ws"}).Structured
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.url, "http")+"/v1/ws?label=ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + g.token}}})
	if err != nil {
		t.Fatalf("dial /v1/ws: %v", err)
	}
	defer c.CloseNow()
	series := `hookgate_subscribers{era="http",path="websocket"}`
	waitForSample(t, g.url, series, 1, 10*time.Second)
	id := postGeneric(t, g.url, reg, `{"id":"ws-1"}`)
	if _, msg, err := c.Read(ctx); err != nil || !strings.Contains(string(msg), id) {
		t.Fatalf("read the pushed event: %v %s", err, msg)
	}
	waitForSample(t, g.url, `hookgate_push_notifications_total{path="websocket"}`, 1, 10*time.Second)
	_ = c.Close(websocket.StatusNormalClosure, "")
	waitForSample(t, g.url, series, 0, 10*time.Second)
}
