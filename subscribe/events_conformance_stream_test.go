package subscribe_test

// Conformance, continued (see events_conformance_test.go): events/stream
// (51-52) and list_changed (53), with the stream-reading helpers.

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/subscribe"
)

func TestEventsConformanceStream(t *testing.T) {
	env := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.Profile = subscribe.ProfileSEP })
	env.register("alice", "orders")
	for _, id := range []any{"stream-7", 7} {
		t.Run("51 active, event, heartbeat with id "+strconv.Quote(strings.Trim(jsonOf(id), `"`)), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp, err := http.DefaultClient.Do(env.modernRequest(ctx, alice, id, "events/stream", map[string]any{"name": "orders", "cursor": nil}))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			next, stop := pullFrames(resp)
			defer stop()
			active := nextMessage(t, next)
			if active.Method != "notifications/events/active" || subscriptionID(t, active) != jsonOf(id) {
				t.Fatalf("first message %s %s, want active with subscriptionId %s", active.Method, active.Params, jsonOf(id))
			}
			hid := env.publish("alice", "orders", "streamed", "", "")
			var sawEvent, sawHeartbeat bool
			for !sawEvent || !sawHeartbeat {
				m := nextMessage(t, next)
				p := obj(t, m.Params)
				switch m.Method {
				case "notifications/events/event":
					sawEvent = p["cursor"] == hid.String() && subscriptionID(t, m) == jsonOf(id)
				case "notifications/events/heartbeat":
					_, ok := p["cursor"].(string)
					sawHeartbeat = ok && subscriptionID(t, m) == jsonOf(id)
				}
			}
		})
	}
	t.Run("52 an invalid stream is an immediate error, no stream", func(t *testing.T) {
		resp, err := http.DefaultClient.Do(env.modernRequest(context.Background(), alice, 1, "events/stream", map[string]any{"name": "nonesuch"}))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, msg := env.decode(resp)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || msg.Error == nil || msg.Error.Code != -32023 {
			t.Errorf("%s %+v, want a JSON NotFound (SEP code)", resp.Header.Get("Content-Type"), msg.Error)
		}
	})
	t.Run("51 deleting the webhook terminates its stream", func(t *testing.T) {
		env.register("alice", "doomed")
		next := env.openStream(t, "doomed-1", "doomed")
		if err := env.store.DeleteRegistration(context.Background(), "alice", "doomed"); err != nil {
			t.Fatal(err)
		}
		for {
			m := nextMessage(t, next)
			if m.Method == "notifications/events/heartbeat" {
				continue // sent before the next check saw the delete
			}
			p := obj(t, m.Params)
			e, _ := p["error"].(map[string]any)
			data, _ := e["data"].(map[string]any)
			if m.Method != "notifications/events/terminated" || e["code"] != float64(-32023) || data["kind"] != "event" || subscriptionID(t, m) != `"doomed-1"` {
				t.Fatalf("after the delete: %s %s, want terminated with NotFound kind event", m.Method, m.Params)
			}
			break
		}
		if final := nextMessage(t, next); final.Method != "" || obj(t, final.Result)["resultType"] != "complete" {
			t.Errorf("after terminated: %s %s, want the final result", final.Method, final.Result)
		}
		if f, ok := next(); ok {
			t.Errorf("stream went on after its final result: %q", f)
		}
	})
	t.Run("51 Shutdown ends a stream with its final result", func(t *testing.T) {
		next := env.openStream(t, "last", "orders")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		go func() { _ = env.events.Shutdown(ctx) }()
		for {
			m := nextMessage(t, next)
			if m.Method == "" {
				r := obj(t, m.Result)
				if r["resultType"] != "complete" || r["_meta"].(map[string]any)[mcp.MetaKeySubscriptionID] != "last" {
					t.Errorf("final result %s", m.Result)
				}
				return
			}
		}
	})
}

func TestEventsConformanceListChanged(t *testing.T) {
	// 53, both eras.
	env := newEventsEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := http.DefaultClient.Do(env.modernRequest(ctx, alice, "lc", "subscriptions/listen", map[string]any{"notifications": map[string]any{"eventsListChanged": true}}))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	next, stop := pullFrames(resp)
	defer stop()
	ack := nextMessage(t, next)
	if ack.Method != "notifications/subscriptions/acknowledged" || obj(t, ack.Params)["notifications"].(map[string]any)["eventsListChanged"] != true {
		t.Fatalf("acknowledgement %s %s, want eventsListChanged echoed", ack.Method, ack.Params)
	}
	legacy := env.legacy(alice)
	get, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.srv.URL+"/mcp", nil)
	legacy.header(get)
	getResp, err := http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	defer getResp.Body.Close()
	legacyNext, legacyStop := pullFrames(getResp)
	defer legacyStop()

	env.mustCall(alice, "tools/call", map[string]any{"name": "register_webhook", "arguments": map[string]any{"label": "fresh"}})
	if m := nextMessage(t, next); m.Method != "notifications/events/list_changed" || subscriptionID(t, m) != `"lc"` {
		t.Errorf("listen got %s %s, want list_changed with the subscriptionId", m.Method, m.Params)
	}
	for {
		m := nextMessage(t, legacyNext)
		if m.Method == "notifications/events/list_changed" {
			break
		}
	}

	// Removing an event type changes the list too.
	env.mustCall(alice, "tools/call", map[string]any{"name": "delete_webhook", "arguments": map[string]any{"label": "fresh"}})
	if m := nextMessage(t, next); m.Method != "notifications/events/list_changed" || subscriptionID(t, m) != `"lc"` {
		t.Errorf("after delete_webhook, listen got %s %s, want list_changed", m.Method, m.Params)
	}
	for {
		m := nextMessage(t, legacyNext)
		if m.Method == "notifications/events/list_changed" {
			break
		}
	}
}

// openStream starts alice's events/stream of name with the request id, reads
// its notifications/events/active, and returns the rest of the stream.
func (env *eventsEnv) openStream(t *testing.T, id, name string) func() (string, bool) {
	t.Helper()
	resp, err := http.DefaultClient.Do(env.modernRequest(context.Background(), alice, id, "events/stream", map[string]any{"name": name}))
	if err != nil {
		t.Fatal(err)
	}
	next, stop := pullFrames(resp)
	t.Cleanup(stop)
	if m := nextMessage(t, next); m.Method != "notifications/events/active" {
		t.Fatalf("stream %s: first message %s, want notifications/events/active", id, m.Method)
	}
	return next
}

// pullFrames iterates the messages of an event stream.
func pullFrames(resp *http.Response) (func() (string, bool), func()) {
	frames := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(frames)
		for f := range eventFrames(resp.Body) {
			select {
			case frames <- f:
			case <-done:
				return
			}
		}
	}()
	next := func() (string, bool) {
		select {
		case f, ok := <-frames:
			return f, ok
		case <-time.After(10 * time.Second):
			return "", false
		}
	}
	return next, func() { close(done); resp.Body.Close() }
}

func nextMessage(t *testing.T, next func() (string, bool)) rpcMsg {
	t.Helper()
	f, ok := next()
	if !ok {
		t.Fatal("stream ended or was silent for 10s")
	}
	var m rpcMsg
	if err := json.Unmarshal([]byte(f), &m); err != nil {
		t.Fatalf("frame %q: %v", f, err)
	}
	return m
}

// subscriptionID is a notification's _meta subscriptionId as raw JSON, so
// string and number ids compare exactly.
func subscriptionID(t *testing.T, m rpcMsg) string {
	t.Helper()
	var p struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	_ = json.Unmarshal(m.Params, &p)
	return string(p.Meta[mcp.MetaKeySubscriptionID])
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
