package server_test

// End-to-end tests of the MCP Events extension against the real binary.
// subscribe/events_conformance*_test.go walks the reference's checks in
// process; these prove the wiring, and what needs a process: persistence
// across a restart, and the flags.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// evCall sends one raw 2026-07-28 request to a gateway and returns the
// HTTP status and the JSON-RPC response (result or error).
func evCall(t testing.TB, base, token, method string, params map[string]any) (int, evResponse) {
	t.Helper()
	status, msg := evRequest(t, base, token, method, params)
	var out evResponse
	_ = json.Unmarshal(msg, &out)
	return status, out
}

// evRequest sends one raw 2026-07-28 request and returns the HTTP status
// and the JSON-RPC response message as it came.
func evRequest(t testing.TB, base, token, method string, params map[string]any) (int, []byte) {
	t.Helper()
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, _ := http.NewRequest(http.MethodPost, base+"/mcp", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	if name, ok := params["name"].(string); ok && method == "tools/call" {
		req.Header.Set("Mcp-Name", name)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	for ev := range sseEvents(resp.Body) {
		var probe struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal([]byte(ev.data), &probe) == nil && (probe.Result != nil || probe.Error != nil) {
			return resp.StatusCode, []byte(ev.data)
		}
	}
	return resp.StatusCode, nil
}

// evResponse is a JSON-RPC response with its error data kept.
type evResponse struct {
	Result map[string]any `json:"result"`
	Error  *struct {
		Code    int            `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"error"`
}

func mustEvCall(t testing.TB, base, token, method string, params map[string]any) map[string]any {
	t.Helper()
	status, res := evCall(t, base, token, method, params)
	if status != http.StatusOK || res.Error != nil {
		t.Fatalf("%s: HTTP %d, error %+v", method, status, res.Error)
	}
	return res.Result
}

// evSubscribe subscribes the gateway's label to url with secret.
func evSubscribe(t testing.TB, g *gateway, label, url, secret string) (int, evResponse) {
	t.Helper()
	return evCall(t, g.url, g.token, "events/subscribe", map[string]any{
		"name": label, "arguments": map[string]any{}, "cursor": nil,
		"delivery": map[string]any{"mode": "webhook", "url": url, "secret": secret},
	})
}

func evSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// webhookReceiver is a callback on loopback that verifies every delivery
// with the official Standard Webhooks library and keeps those it accepted.
type webhookReceiver struct {
	t      testing.TB
	srv    *httptest.Server
	verify *standardwebhooks.Webhook
	// failing answers deliveries 500 while it returns true.
	failing func() bool

	mu       sync.Mutex
	requests int
	accepted []evDelivery // in arrival order
	bad      []string
}

// evDelivery is one accepted delivery.
type evDelivery struct {
	webhookID, hookgateID string
	at                    time.Time
}

func newWebhookReceiver(t testing.TB, secret string, failing func() bool) *webhookReceiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &webhookReceiver{t: t, verify: wh, failing: failing}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *webhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err := r.verify.Verify(body, req.Header); err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var msg struct {
		Type      string         `json:"type"`
		Challenge string         `json:"challenge"`
		EventID   string         `json:"eventId"`
		Meta      map[string]any `json:"_meta"`
	}
	_ = json.Unmarshal(body, &msg)
	if msg.Type == "verification" {
		_ = json.NewEncoder(w).Encode(map[string]string{"challenge": msg.Challenge})
		return
	}
	if r.failing != nil && r.failing() {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	id, _ := msg.Meta["hookgate/id"].(string)
	if msg.EventID == "" || msg.EventID != req.Header.Get("webhook-id") || id == "" {
		r.bad = append(r.bad, fmt.Sprintf("delivery %q with webhook-id %q", body, req.Header.Get("webhook-id")))
	}
	r.accepted = append(r.accepted, evDelivery{webhookID: msg.EventID, hookgateID: id, at: at})
}

func (r *webhookReceiver) snapshot() ([]evDelivery, int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.accepted), r.requests, slices.Clone(r.bad)
}

// waitAccepted waits until n deliveries were accepted.
func (r *webhookReceiver) waitAccepted(n int, d time.Duration) []evDelivery {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		got, _, _ := r.snapshot()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d deliveries accepted within %s, want %d", len(got), d, n)
		}
		time.Sleep(10 * time.Millisecond) // polling against a deadline
	}
}

// TestEventsCapabilityOnTheWire: the top-level "events" key the SDK's
// capability struct would drop is in both eras' raw results, beside the
// extension entry.
func TestEventsCapabilityOnTheWire(t *testing.T) {
	g := startGateway(t, t.TempDir())
	res := mustEvCall(t, g.url, g.token, "server/discover", nil)
	caps, _ := res["capabilities"].(map[string]any)
	exts, _ := caps["extensions"].(map[string]any)
	if _, ok := caps["events"].(map[string]any); !ok {
		t.Errorf("2026-07-28 server/discover capabilities lack events: %v", caps)
	}
	if _, ok := exts["io.modelcontextprotocol/events"].(map[string]any); !ok {
		t.Errorf("2026-07-28 server/discover lacks the extension: %v", caps)
	}
	for _, version := range []string{"2025-03-26", "2025-06-18", "2025-11-25"} {
		s := &rawSession{t: t, base: g.url, token: g.token, version: version}
		raw, rerr := s.call("initialize", map[string]any{
			"protocolVersion": version, "capabilities": map[string]any{},
			"clientInfo": map[string]any{"name": "raw", "version": "1"},
		})
		if rerr != nil {
			t.Fatal(rerr)
		}
		var init struct {
			ProtocolVersion string                     `json:"protocolVersion"`
			Capabilities    map[string]json.RawMessage `json:"capabilities"`
			ResultType      *string                    `json:"resultType"`
		}
		if err := json.Unmarshal(raw, &init); err != nil {
			t.Fatal(err)
		}
		if init.ProtocolVersion != version {
			t.Errorf("initialize %s negotiated %s", version, init.ProtocolVersion)
		}
		var ext map[string]json.RawMessage
		_ = json.Unmarshal(init.Capabilities["extensions"], &ext)
		if string(init.Capabilities["events"]) != `{"listChanged":true}` || string(ext["io.modelcontextprotocol/events"]) != `{"listChanged":true}` {
			t.Errorf("%s initialize capabilities: %s", version, raw)
		}
		if init.ResultType != nil {
			t.Errorf("a %s result carries resultType", version)
		}
		s.notify("notifications/initialized")
		if _, rerr := s.call("events/list", map[string]any{}); rerr != nil {
			t.Errorf("%s events/list: %+v", version, rerr)
		}
	}
}

// TestEventsOff: with --events=false the deployment has no Events
// extension (the reference's check 4): no capability in either era, and
// events/* is an unknown method (-32601, HTTP 404 on 2026-07-28), while
// the rest of MCP works.
func TestEventsOff(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--events=false")
	caps, _ := mustEvCall(t, g.url, g.token, "server/discover", nil)["capabilities"].(map[string]any)
	exts, _ := caps["extensions"].(map[string]any)
	if _, ok := caps["events"]; ok {
		t.Errorf("server/discover declares events: %v", caps)
	}
	if _, ok := exts["io.modelcontextprotocol/events"]; ok {
		t.Errorf("server/discover declares the extension: %v", caps)
	}
	if status, res := evCall(t, g.url, g.token, "events/list", nil); status != http.StatusNotFound || res.Error == nil || res.Error.Code != -32601 {
		t.Errorf("events/list with events off: HTTP %d, error %+v; want 404 and -32601", status, res.Error)
	}
	s := &rawSession{t: t, base: g.url, token: g.token, version: "2025-11-25"}
	raw, rerr := s.call("initialize", map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "raw", "version": "1"},
	})
	if rerr != nil {
		t.Fatal(rerr)
	}
	if strings.Contains(string(raw), `"events"`) || strings.Contains(string(raw), "io.modelcontextprotocol/events") {
		t.Errorf("2025-11-25 initialize declares events: %s", raw)
	}
	s.notify("notifications/initialized")
	if _, rerr := s.call("events/list", map[string]any{}); rerr == nil || rerr.Code != -32601 {
		t.Errorf("2025-11-25 events/list with events off: %+v, want -32601", rerr)
	}
	cs := connect(t, g.url, g.token, "")
	mustTool(t, cs, "register_webhook", map[string]any{"label": "still-works"})
}

// TestEventsWebhookAcrossRestart: two subscriptions, one to a healthy
// receiver and one to a receiver that answers 500 for its first second,
// get every one of 500 events exactly once each, in order, verified with
// the Standard Webhooks library, across a graceful restart in the middle;
// after the restart the subscription resumes without a resubscribe, and a
// resubscribe returns the same id.
func TestEventsWebhookAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--events-allow-local-callbacks", "--events-retry-delay", "50ms"}
	g := startGateway(t, dir, args...)
	token := g.token
	cs := connect(t, g.url, token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	regID, hookSecret := reg["id"].(string), reg["secret"].(string)

	secret := evSecret()
	healthy := newWebhookReceiver(t, secret, nil)
	var failUntil time.Time
	var failMu sync.Mutex
	flaky := newWebhookReceiver(t, secret, func() bool {
		failMu.Lock()
		defer failMu.Unlock()
		if failUntil.IsZero() {
			failUntil = time.Now().Add(time.Second)
		}
		return time.Now().Before(failUntil)
	})
	var ids []string
	for _, rc := range []*webhookReceiver{healthy, flaky} {
		status, res := evSubscribe(t, g, "orders", rc.srv.URL+"/hook", secret)
		if status != 200 || res.Error != nil {
			t.Fatalf("subscribe: %d %+v", status, res.Error)
		}
		ids = append(ids, res.Result["id"].(string))
	}

	posted := postMany(t, g.url+"/hooks/"+regID, hookSecret, 0, 250, 8, 0)
	healthy.waitAccepted(1, 10*time.Second) // delivery under way, then restart
	g.stop()
	g = startGateway(t, dir, args...)
	g.token = token
	posted = append(posted, postMany(t, g.url+"/hooks/"+regID, hookSecret, 250, 250, 8, 0)...)
	slices.SortFunc(posted, compareIDs)

	for name, rc := range map[string]*webhookReceiver{"healthy": healthy, "flaky": flaky} {
		got := rc.waitAccepted(500, 30*time.Second)
		_, requests, bad := rc.snapshot()
		if len(bad) > 0 {
			t.Errorf("%s: %d bad deliveries, first: %s", name, len(bad), bad[0])
		}
		var order []string
		seen := map[string]int{}
		for _, d := range got {
			order = append(order, d.hookgateID)
			seen[d.webhookID]++
		}
		if !slices.Equal(order, posted) {
			t.Errorf("%s: %d accepted, want the 500 posted exactly once each in order (first mismatch: %v)", name, len(order), firstDiff(order, posted))
		}
		if len(seen) != 500 {
			t.Errorf("%s: %d distinct webhook-ids, want 500", name, len(seen))
		}
		if name == "flaky" && requests <= 501 {
			t.Errorf("flaky: %d requests, want retries of the refused ones", requests)
		}
	}
	for i, rc := range []*webhookReceiver{healthy, flaky} {
		status, res := evSubscribe(t, g, "orders", rc.srv.URL+"/hook", secret)
		if status != 200 || res.Error != nil || res.Result["id"] != ids[i] {
			t.Errorf("resubscribe after restart: %d %+v %v, want id %s", status, res.Error, res.Result, ids[i])
		}
	}
}

// TestEventsLoopbackRefusedByDefault: without --events-allow-local-callbacks
// a loopback callback is refused, and the receiver sees no request.
func TestEventsLoopbackRefusedByDefault(t *testing.T) {
	g := startGateway(t, t.TempDir())
	cs := connect(t, g.url, g.token, "")
	mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"})
	secret := evSecret()
	rc := newWebhookReceiver(t, secret, nil)
	https := strings.Replace(rc.srv.URL, "http:", "https:", 1)
	for _, url := range []string{rc.srv.URL + "/hook", https + "/hook", strings.Replace(https, "127.0.0.1", "localhost", 1) + "/hook"} {
		_, res := evSubscribe(t, g, "orders", url, secret)
		if res.Error == nil || res.Error.Code != -32602 {
			t.Errorf("subscribe to %s: %+v, want -32602", url, res.Error)
		}
	}
	if _, requests, _ := rc.snapshot(); requests != 0 {
		t.Errorf("the receiver got %d requests", requests)
	}
}

// TestEventsFailedChallengeNotStored: a receiver that echoes the wrong
// challenge makes subscribe fail with the category, and no delivery
// follows.
func TestEventsFailedChallengeNotStored(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--events-allow-local-callbacks")
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	var mu sync.Mutex
	wrongRequests := 0
	wrong := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		wrongRequests++
		mu.Unlock()
		_, _ = io.WriteString(w, `{"challenge":"not-the-nonce"}`)
	}))
	defer wrong.Close()
	_, res := evSubscribe(t, g, "orders", wrong.URL+"/hook", evSecret())
	if res.Error == nil || res.Error.Code != -32015 || res.Error.Data["reason"] != "challenge_failed" {
		t.Fatalf("subscribe: %+v, want CallbackEndpointError challenge_failed", res.Error)
	}
	// A healthy subscription is the control: once it has the event, the
	// failed one would have had it too.
	secret := evSecret()
	ok := newWebhookReceiver(t, secret, nil)
	if _, res := evSubscribe(t, g, "orders", ok.srv.URL+"/hook", secret); res.Error != nil {
		t.Fatal(res.Error)
	}
	postMany(t, reg["url"].(string), reg["secret"].(string), 0, 1, 1, 0)
	ok.waitAccepted(1, 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if wrongRequests != 1 {
		t.Errorf("the failing receiver got %d requests, want only the challenge", wrongRequests)
	}
}

// TestEventsWebhookAcrossCrash: hookgate killed mid-delivery (no graceful
// stop) loses nothing: after the restart every event reaches the receiver,
// the first arrivals in order; only events of the last cursor-save
// interval may come twice, with the same webhook-id, which receivers
// deduplicate on.
func TestEventsWebhookAcrossCrash(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--events-allow-local-callbacks"}
	g := startGateway(t, dir, args...)
	token := g.token
	cs := connect(t, g.url, token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	secret := evSecret()
	rc := newWebhookReceiver(t, secret, nil)
	if status, res := evSubscribe(t, g, "orders", rc.srv.URL+"/hook", secret); status != 200 || res.Error != nil {
		t.Fatalf("subscribe: %d %+v", status, res.Error)
	}
	posted := postMany(t, reg["url"].(string), reg["secret"].(string), 0, 300, 8, 0)
	slices.SortFunc(posted, compareIDs)
	rc.waitAccepted(1, 10*time.Second)
	g.kill()
	g = startGateway(t, dir, args...)
	g.token = token

	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _, bad := rc.snapshot()
		if len(bad) > 0 {
			t.Fatalf("%d bad deliveries, first: %s", len(bad), bad[0])
		}
		var first []string
		webhookID := map[string]string{}
		for _, d := range got {
			if prev, seen := webhookID[d.hookgateID]; seen {
				if prev != d.webhookID {
					t.Fatalf("event %s came again with webhook-id %q, first %q", d.hookgateID, d.webhookID, prev)
				}
				continue
			}
			webhookID[d.hookgateID] = d.webhookID
			first = append(first, d.hookgateID)
		}
		if len(first) >= len(posted) {
			if !slices.Equal(first, posted) {
				t.Errorf("first arrivals are not the 300 posted in order: %v", firstDiff(first, posted))
			}
			t.Logf("%d deliveries for %d events across the crash", len(got), len(posted))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered within 30s of the restart", len(first), len(posted))
		}
		time.Sleep(10 * time.Millisecond) // polling against a deadline
	}
}
