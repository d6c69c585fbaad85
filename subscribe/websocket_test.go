package subscribe_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hookgate/hookgate/subscribe"
)

// dialWS opens the WebSocket feed as principal with the given query.
func dialWS(t *testing.T, e *feedEnv, principal, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/ws?" + query
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{principalHeader: {principal}}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// readMessage reads one message as a JSON object, with a deadline.
func readMessage(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	var m map[string]any
	if typ != websocket.MessageText || json.Unmarshal(b, &m) != nil {
		t.Fatalf("message %s of type %v, want a JSON object in a text message", b, typ)
	}
	return m
}

// readEventIDs reads n event messages and returns their IDs.
func readEventIDs(t *testing.T, c *websocket.Conn, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for range n {
		m := readMessage(t, c)
		id, _ := m["id"].(string)
		if id == "" {
			t.Fatalf("message %v is not an event", m)
		}
		ids = append(ids, id)
	}
	return ids
}

func sendJSON(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("send %s: %v", msg, err)
	}
}

func pending(t *testing.T, e *feedEnv, principal string) int {
	t.Helper()
	n, err := e.store.Pending(context.Background(), principal, "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWebSocketDeliversInOrder(t *testing.T) {
	e := newFeedEnv(t, nil)
	reg := e.register(t, "alice", "orders")
	e.appendEvents(t, reg, 3, "before") // before the connection: not sent
	e.clock.advance(5)
	c := dialWS(t, e, "alice", "")
	e.clock.advance(1)
	want := e.appendEvents(t, reg, 50, "")
	id := e.postWebhook(t, reg, `{"id":"evt_1","type":"order.paid"}`)
	want = append(want, id)

	expectIDs(t, readEventIDs(t, c, 50), want[:50])
	m := readMessage(t, c)
	if m["id"] != id || m["type"] != "order.paid" || m["providerEventId"] != "evt_1" || m["label"] != "orders" || m["verified"] != true {
		t.Fatalf("webhook arrived as %v", m)
	}
}

func TestWebSocketResumesAfter(t *testing.T) {
	e := newFeedEnv(t, nil)
	reg := e.register(t, "alice", "orders")
	all := e.appendEvents(t, reg, 10, "")
	c := dialWS(t, e, "alice", "after="+all[4])
	all = append(all, e.appendEvents(t, reg, 5, "")...)
	expectIDs(t, readEventIDs(t, c, 10), all[5:])

	c = dialWS(t, e, "alice", "after=0-0&label=orders")
	expectIDs(t, readEventIDs(t, c, 15), all)
}

func TestWebSocketAck(t *testing.T) {
	e := newFeedEnv(t, nil)
	reg := e.register(t, "alice", "orders")
	ids := e.appendEvents(t, reg, 3, "")
	c := dialWS(t, e, "alice", "after=0-0")
	expectIDs(t, readEventIDs(t, c, 3), ids)

	sendJSON(t, c, `{"ack":"`+ids[0]+`"}`)
	if m := readMessage(t, c); m["acked"] != ids[0] || m["count"] != 1.0 {
		t.Fatalf("ack reply %v, want acked %s count 1", m, ids[0])
	}
	if n := pending(t, e, "alice"); n != 2 {
		t.Fatalf("pending after one ack = %d, want 2", n)
	}
	sendJSON(t, c, `{"ack":["`+ids[1]+`","`+ids[2]+`"]}`)
	if m := readMessage(t, c); m["count"] != 2.0 {
		t.Fatalf("ack reply %v, want count 2", m)
	}
	if n := pending(t, e, "alice"); n != 0 {
		t.Fatalf("pending after acking all = %d, want 0", n)
	}
	// The feed goes on after acks.
	next := e.appendEvents(t, reg, 1, "")
	expectIDs(t, readEventIDs(t, c, 1), next)
}

func TestWebSocketAckErrors(t *testing.T) {
	e := newFeedEnv(t, nil)
	reg := e.register(t, "alice", "orders")
	ids := e.appendEvents(t, reg, 1, "")
	c := dialWS(t, e, "alice", "after="+ids[0])
	for _, tc := range []struct{ send, mention string }{
		{`{"ack":"1-999"}`, "1-999"},
		{`{"ack":["` + ids[0] + `","1-998"]}`, "1-998"},
		{`{"ack":"tomorrow"}`, "tomorrow"},
		{`{"ack":[]}`, "ack"},
		{`not json`, `{"ack":`},
	} {
		sendJSON(t, c, tc.send)
		m := readMessage(t, c)
		msg, _ := m["error"].(string)
		if !strings.Contains(msg, tc.mention) || m["acked"] != nil {
			t.Fatalf("sent %s, got %v; want an error mentioning %s", tc.send, m, tc.mention)
		}
	}
	// The failed list acked none of its IDs.
	if n := pending(t, e, "alice"); n != 1 {
		t.Fatalf("pending = %d, want 1: a failed ack must ack nothing", n)
	}
}

func TestWebSocketPrincipalIsolation(t *testing.T) {
	e := newFeedEnv(t, nil)
	alice := e.register(t, "alice", "orders")
	bob := e.register(t, "bob", "orders")
	c := dialWS(t, e, "bob", "after=0-0")
	aliceIDs := e.appendEvents(t, alice, 20, "")
	bobIDs := e.appendEvents(t, bob, 1, "")
	// Alice's events are older; had one leaked it would come first.
	expectIDs(t, readEventIDs(t, c, 1), bobIDs)

	sendJSON(t, c, `{"ack":"`+aliceIDs[0]+`"}`)
	if m := readMessage(t, c); m["error"] == nil {
		t.Fatalf("bob acked alice's event: %v", m)
	}
	if n := pending(t, e, "alice"); n != 20 {
		t.Fatalf("alice's pending = %d, want 20", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/v1/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial without a principal: %v, %v; want 401", err, resp)
	}
}

func TestWebSocketClosesGoingAwayOnDone(t *testing.T) {
	e := newFeedEnv(t, nil)
	reg := e.register(t, "alice", "orders")
	c := dialWS(t, e, "alice", "")
	e.clock.advance(1)
	ids := e.appendEvents(t, reg, 1, "")
	expectIDs(t, readEventIDs(t, c, 1), ids)
	e.stop()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || !strings.Contains(ce.Reason, "after="+ids[0]) {
		t.Fatalf("read after shutdown: %v; want close 1001 naming after=%s", err, ids[0])
	}
}

// TestWebSocketPingCutsSilentPeer has two idle clients: one reads (and so
// answers pings), the other never reads. Pings must cut the second and keep
// the first.
func TestWebSocketPingCutsSilentPeer(t *testing.T) {
	e := newFeedEnv(t, func(o *subscribe.FeedOptions) {
		o.Heartbeat = 50 * time.Millisecond
		o.WriteTimeout = 200 * time.Millisecond
	})
	reg := e.register(t, "alice", "orders")
	live := dialWS(t, e, "alice", "")
	reading := make(chan map[string]any, 1)
	go func() {
		_, b, err := live.Read(context.Background())
		var m map[string]any
		if err == nil {
			_ = json.Unmarshal(b, &m)
		}
		reading <- m
	}()

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/ws"
	silent, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{principalHeader: {"alice"}, nameHeader: {"silent"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	e.handlers.waitEnded(t, "silent", wait)

	// The live client has been idle as long, answering pings all along.
	e.clock.advance(1)
	ids := e.appendEvents(t, reg, 1, "")
	select {
	case m := <-reading:
		if m["id"] != ids[0] {
			t.Fatalf("live client got %v, want event %s", m, ids[0])
		}
	case <-time.After(wait):
		t.Fatal("live client got nothing")
	}
}
