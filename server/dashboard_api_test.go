package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWebhooksListAPI: GET /v1/webhooks lists the caller's registrations
// with their URLs and pending counts, as list_webhooks does, and never a
// secret.
func TestWebhooksListAPI(t *testing.T) {
	g := startGateway(t, t.TempDir())
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	url, secret := reg["url"].(string), reg["secret"].(string)
	body := []byte(`{"id":"o-1","type":"order.created"}`)
	if s, _ := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(secret, body)}}, body); s != http.StatusOK {
		t.Fatalf("POST: %d", s)
	}

	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, g.url+"/v1/webhooks", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if s, _ := get(""); s != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", s)
	}
	if s, _ := get("hg_notatoken"); s != http.StatusUnauthorized {
		t.Errorf("with a bad token: %d, want 401", s)
	}
	s, text := get(g.token)
	if s != http.StatusOK {
		t.Fatalf("GET /v1/webhooks: %d %s", s, text)
	}
	var got struct {
		Webhooks []struct {
			ID, Label, URL, Provider, ResourceURI string
			CreatedAt                             time.Time
			Pending                               int
		} `json:"webhooks"`
	}
	if err := json.Unmarshal([]byte(text), &got); err != nil || len(got.Webhooks) != 1 {
		t.Fatalf("decode %s: %v", text, err)
	}
	w := got.Webhooks[0]
	if w.Label != "orders" || w.URL != url || w.ID != reg["id"] || w.Provider != "generic" ||
		w.ResourceURI != reg["resourceUri"] || w.Pending != 1 || w.CreatedAt.IsZero() {
		t.Errorf("listed %+v; registered %v", w, reg)
	}
	if strings.Contains(text, secret) {
		t.Error("GET /v1/webhooks shows the signing secret")
	}

	// The dashboard page and its assets are served without a token.
	for _, p := range []string{"/", "/ui/dashboard.js", "/ui/dashboard.css"} {
		resp, err := http.Get(g.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
}

// TestWebSocketSubprotocolAuth: a browser authenticates GET /v1/ws by
// offering the subprotocols ["hookgate.bearer", token]; the server verifies
// the token as it would a header, selects "hookgate.bearer" alone (never
// echoing the token), and refuses a wrong or missing token with 401.
func TestWebSocketSubprotocolAuth(t *testing.T) {
	g := startGateway(t, t.TempDir())
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	wsURL := "ws" + strings.TrimPrefix(g.url, "http") + "/v1/ws"

	dial := func(protocols ...string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return websocket.Dial(ctx, wsURL, &websocket.DialOptions{
			Subprotocols: protocols,
			HTTPHeader:   http.Header{"Origin": {g.url}}, // as a browser on the dashboard sends
		})
	}
	for _, protocols := range [][]string{{"hookgate.bearer", "hg_wrong"}, {"hookgate.bearer"}, {g.token}} {
		c, resp, err := dial(protocols...)
		if err == nil {
			c.CloseNow()
			t.Fatalf("subprotocols %q: connected, want 401", protocols)
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("subprotocols %q: %v %v, want 401", protocols, resp, err)
		}
	}

	c, resp, err := dial("hookgate.bearer", g.token)
	if err != nil {
		t.Fatalf("dial with the token as a subprotocol: %v", err)
	}
	defer c.CloseNow()
	if got := c.Subprotocol(); got != "hookgate.bearer" {
		t.Errorf("selected subprotocol %q, want hookgate.bearer", got)
	}
	if h := resp.Header.Values("Sec-WebSocket-Protocol"); strings.Contains(strings.Join(h, ","), g.token) {
		t.Errorf("the handshake answer echoes the token: %q", h)
	}

	body := []byte(`{"id":"ws-1","type":"order.created"}`)
	if s, _ := post(t, reg["url"].(string), http.Header{"X-Webhook-Signature": {signGeneric(reg["secret"].(string), body)}}, body); s != http.StatusOK {
		t.Fatalf("POST: %d", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read the event: %v", err)
	}
	var e testEvent
	if err := json.Unmarshal(msg, &e); err != nil || e.Label != "orders" || e.ProviderEventID != "ws-1" {
		t.Fatalf("event %s: %v", msg, err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	// A page from another origin is refused even with the token.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	c2, resp2, err := websocket.Dial(ctx2, wsURL, &websocket.DialOptions{
		Subprotocols: []string{"hookgate.bearer", g.token},
		HTTPHeader:   http.Header{"Origin": {"https://evil.example"}},
	})
	if err == nil {
		c2.CloseNow()
		t.Fatal("a cross-origin page connected")
	}
	if resp2 == nil || resp2.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin: %v %v, want 403", resp2, err)
	}
}
