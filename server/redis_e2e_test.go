package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/redistest"
)

// TestBinaryOnRedis runs the binary with --redis: the tools and ingress
// work; with Redis killed ingress answers 503 with Retry-After (never a 2xx)
// and /readyz fails; with Redis restarted (AOF) the same process serves
// again and every event that got a 2xx is still there.
func TestBinaryOnRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.AppendOnly())
	g := startGateway(t, t.TempDir(), "--redis", rs.URL(), "--dev-token")
	if g.token == "" {
		t.Fatal("--dev-token printed no token")
	}
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "r"}).Structured
	url, secret := reg["url"].(string), reg["secret"].(string)
	send := func(id string) (int, http.Header) {
		body := []byte(`{"id":"` + id + `"}`)
		req, _ := http.NewRequest(http.MethodPost, url, jsonReader(body))
		req.Header.Set("X-Webhook-Signature", signGeneric(secret, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	if s, _ := send("before"); s != 200 {
		t.Fatalf("POST on Redis: %d", s)
	}

	rs.Kill()
	if s, h := send("during"); s != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("POST with Redis down: %d, Retry-After %q; want 503 with Retry-After", s, h.Get("Retry-After"))
	}
	if resp, err := http.Get(g.url + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Redis down: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	rs.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, _ := send("during") // the provider's retry
		if s == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST after Redis restart still %d", s)
		}
		time.Sleep(100 * time.Millisecond) // polling against a deadline while the client reconnects
	}
	var events []testEvent
	if err := json.Unmarshal([]byte(mustTool(t, cs, "poll_events", nil).Text), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].ProviderEventID != "before" || events[1].ProviderEventID != "during" {
		t.Fatalf("after the restart: %+v, want before and during", events)
	}
}

func jsonReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
