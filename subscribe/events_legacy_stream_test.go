package subscribe_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEventsLegacyStreamNeedsALiveSession: a ≤ 2025-11-25 events/stream
// runs on the session that asked for it. An unknown session ID, another
// principal's session, or a session that has ended answers 404, as the SDK
// answers for the requests it routes, so the client re-initializes instead
// of holding a stream no session owns.
func TestEventsLegacyStreamNeedsALiveSession(t *testing.T) {
	env := newEventsEnv(t, nil)
	env.register("alice", "orders")
	mine := env.legacy(alice)

	open := func(sessionID string) *http.Response {
		t.Helper()
		req := mine.request(context.Background(), "events/stream", map[string]any{"name": "orders"})
		req.Header.Set("Mcp-Session-Id", sessionID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := open(mine.id)
	next, stop := pullFrames(resp)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("own session: %d %s, want an event stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if m := nextMessage(t, next); m.Method != "notifications/events/active" {
		t.Fatalf("own session: first message %s", m.Method)
	}
	id := env.publish("alice", "orders", "t", "", "")
	if m := nextMessage(t, next); m.Method != "notifications/events/event" || obj(t, m.Params)["cursor"] != id.String() {
		t.Fatalf("own session: %s %s, want the event", m.Method, m.Params)
	}
	stop()

	theirs := env.legacy(bob)
	for name, sessionID := range map[string]string{
		"an unknown session":          "not-a-session",
		"another principal's session": theirs.id,
	} {
		resp := open(sessionID)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", name, resp.StatusCode)
		}
	}

	end, _ := http.NewRequest(http.MethodDelete, env.srv.URL+"/mcp", nil)
	mine.header(end)
	if r, err := http.DefaultClient.Do(end); err != nil {
		t.Fatal(err)
	} else {
		r.Body.Close()
	}
	if err := waitFor(5*time.Second, func() bool {
		resp := open(mine.id)
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	}); err != nil {
		t.Errorf("an ended session: %v", err)
	}
}
