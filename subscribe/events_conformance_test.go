package subscribe_test

// Conformance of the MCP Events extension, walking the checks of the
// implementer's reference (shared/reference/mcp-events-extension.md §16),
// each numbered as there, every assertion made on the wire with raw HTTP.
// This file: capability and transport (1-5), events/list (6-8), subscribe
// validation (9-17), verification (18-24), result, identity and TTL
// (25-31). events_conformance_delivery_test.go has delivery (33-43),
// unsubscribe (44-47) and poll/push (48-53). Check 32 (a subscription
// survives a restart) runs against the real binary in
// server/events_test.go. Check 15 has no case here: every event type offers
// every delivery mode.

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookgate/hookgate/subscribe"
)

const (
	alice = "tok-alice"
	bob   = "tok-bob"
	// codes of the default (ChatGPT) profile
	codeNotFound    = -32011
	codeExhausted   = -32013
	codeCallback    = -32015
	codeInvalid     = -32602
	codeHeader      = -32020
	codeNoMethod    = -32601
	extensionEvents = "io.modelcontextprotocol/events"
)

func TestEventsConformanceCapabilities(t *testing.T) {
	env := newEventsEnv(t, nil)
	env.register("alice", "orders")

	t.Run("01 server/discover declares both keys", func(t *testing.T) {
		res := env.mustCall(alice, "server/discover", nil)
		if res["resultType"] != "complete" {
			t.Errorf("resultType = %v", res["resultType"])
		}
		if !slices.Contains(res["supportedVersions"].([]any), any("2026-07-28")) {
			t.Errorf("supportedVersions = %v", res["supportedVersions"])
		}
		checkCapabilities(t, res["capabilities"])
		if ttl, ok := res["ttlMs"].(float64); !ok || ttl < 0 || ttl != float64(int(ttl)) {
			t.Errorf("ttlMs = %v, want an integer >= 0", res["ttlMs"])
		}
		if res["cacheScope"] != "private" {
			t.Errorf("cacheScope = %v, want private (the catalog is per principal)", res["cacheScope"])
		}
	})
	t.Run("02 legacy initialize declares both keys, no resultType", func(t *testing.T) {
		init := obj(t, env.legacy(alice).init.Result)
		checkCapabilities(t, init["capabilities"])
		if _, ok := init["resultType"]; ok {
			t.Errorf("legacy initialize carries resultType: %v", init)
		}
	})
	t.Run("03 events/list needs no client declaration", func(t *testing.T) {
		// modernMeta declares clientCapabilities {}, as ChatGPT does.
		if res := env.mustCall(alice, "events/list", nil); len(res["events"].([]any)) != 1 {
			t.Errorf("events/list = %v", res)
		}
	})
	t.Run("04 an events method the server lacks is -32601 with 404", func(t *testing.T) {
		status, msg := env.call(alice, "events/nonesuch", nil)
		if status != http.StatusNotFound || msg.Error == nil || msg.Error.Code != codeNoMethod {
			t.Errorf("HTTP %d %+v, want 404 and -32601", status, msg.Error)
		}
	})
	t.Run("05 header mismatch and missing _meta", func(t *testing.T) {
		// The SDK checks the requests it routes; Handler checks events/stream.
		for _, c := range []struct{ body, header string }{{"events/subscribe", "events/list"}, {"events/list", "events/stream"}} {
			req := env.modernRequest(context.Background(), alice, 1, c.body, map[string]any{"name": "orders"})
			req.Header.Set("Mcp-Method", c.header)
			if status, msg := env.do(req); status != http.StatusBadRequest || msg.Error == nil || msg.Error.Code != codeHeader {
				t.Errorf("body %s, Mcp-Method %s: HTTP %d %+v, want 400 and -32020", c.body, c.header, status, msg.Error)
			}
		}
		for _, method := range []string{"events/subscribe", "events/stream"} {
			noVersion := map[string]any{"name": "orders", "_meta": map[string]any{mcp.MetaKeyClientCapabilities: map[string]any{}}}
			req := env.modernRequest(context.Background(), alice, 1, method, noVersion)
			if status, msg := env.do(req); status != http.StatusBadRequest || msg.Error == nil || msg.Error.Code != codeInvalid {
				t.Errorf("%s without _meta protocolVersion: HTTP %d %+v, want 400 and -32602", method, status, msg.Error)
			}
		}
	})
}

// checkCapabilities asserts the top-level events key (what ChatGPT reads)
// and the extension entry, with the same listChanged.
func checkCapabilities(t *testing.T, raw any) {
	t.Helper()
	caps, _ := raw.(map[string]any)
	events, ok := caps["events"].(map[string]any)
	if !ok {
		t.Fatalf("capabilities.events missing (the SDK drops unknown keys): %v", caps)
	}
	exts, _ := caps["extensions"].(map[string]any)
	ext, ok := exts[extensionEvents].(map[string]any)
	if !ok {
		t.Fatalf("capabilities.extensions[%s] missing: %v", extensionEvents, caps)
	}
	if ext["listChanged"] != true || events["listChanged"] != true {
		t.Errorf("listChanged: events %v, extension %v; want true in both", events, ext)
	}
}

func TestEventsConformanceList(t *testing.T) {
	env := newEventsEnv(t, nil) // PageSize 2
	labels := []string{"a-hooks", "b-hooks", "c-hooks", "d-hooks", "e-hooks"}
	for _, l := range labels {
		env.register("alice", l)
	}
	env.register("bob", "bob-only")

	t.Run("06 descriptors", func(t *testing.T) {
		res := env.mustCall(alice, "events/list", nil)
		if res["resultType"] != "complete" {
			t.Errorf("modern result without resultType: %v", res)
		}
		for _, d := range res["events"].([]any) {
			desc := d.(map[string]any)
			if _, ok := desc["name"].(string); !ok {
				t.Errorf("name: %v", desc)
			}
			modes, _ := desc["delivery"].([]any)
			if len(modes) == 0 {
				t.Errorf("delivery empty: %v", desc)
			}
			for _, m := range modes {
				if m != "poll" && m != "push" && m != "webhook" {
					t.Errorf("delivery mode %v", m)
				}
			}
			for _, k := range []string{"inputSchema", "payloadSchema"} {
				if s, ok := desc[k].(map[string]any); !ok || s["type"] != "object" {
					t.Errorf("%s: %v", k, desc[k])
				}
			}
		}
		_, msg := env.legacy(alice).call("events/list", map[string]any{})
		if msg.Error != nil || strings.Contains(string(msg.Result), "resultType") {
			t.Errorf("legacy events/list: %s %+v; want a result without resultType", msg.Result, msg.Error)
		}
	})
	t.Run("07 pages join to the catalog; a bad cursor is -32602", func(t *testing.T) {
		var names []string
		params := map[string]any{}
		for pages := 0; ; pages++ {
			if pages > len(labels) {
				t.Fatal("nextCursor never ends")
			}
			res := env.mustCall(alice, "events/list", params)
			for _, d := range res["events"].([]any) {
				names = append(names, d.(map[string]any)["name"].(string))
			}
			next, ok := res["nextCursor"].(string)
			if !ok {
				break
			}
			params = map[string]any{"cursor": next}
		}
		if !slices.Equal(names, labels) {
			t.Errorf("paged names %v, want %v once each", names, labels)
		}
		if code, _, _ := env.callErr(alice, "events/list", map[string]any{"cursor": "garbage!"}); code != codeInvalid {
			t.Errorf("garbage cursor: code %d", code)
		}
	})
	t.Run("08 another principal's type is invisible and not subscribable", func(t *testing.T) {
		res := env.mustCall(alice, "events/list", map[string]any{})
		for _, d := range res["events"].([]any) {
			if d.(map[string]any)["name"] == "bob-only" {
				t.Error("alice lists bob's event type")
			}
		}
		rc := newReceiver(t, nil)
		code, data, _ := env.callErr(alice, "events/subscribe", subParams("bob-only", nil, rc.url("/x"), newSecret(32)))
		if code != codeNotFound || data["kind"] != "event" {
			t.Errorf("alice subscribing to bob's type: %d %v", code, data)
		}
		if code, _, _ := env.callErr(alice, "events/poll", map[string]any{"name": "bob-only", "cursor": nil}); code != codeNotFound {
			t.Errorf("alice polling bob's type: %d", code)
		}
		if n := len(rc.requests()); n != 0 {
			t.Errorf("receiver got %d requests", n)
		}
	})
}

func TestEventsConformanceSubscribeValidation(t *testing.T) {
	env := newEventsEnv(t, nil)
	env.register("alice", "orders")
	rc := newReceiver(t, nil)
	good := newSecret(32)
	// refused asserts a subscribe error with no traffic and nothing stored.
	refused := func(t *testing.T, params map[string]any, wantCode int) map[string]any {
		t.Helper()
		code, data, text := env.callErr(alice, "events/subscribe", params)
		if code != wantCode {
			t.Errorf("code %d (%s), want %d", code, text, wantCode)
		}
		if n := len(rc.requests()); n != 0 {
			t.Errorf("receiver got %d requests", n)
		}
		if n := env.subscriptionCount(); n != 0 {
			t.Errorf("%d subscriptions stored", n)
		}
		return data
	}

	t.Run("09 no principal: the endpoint refuses", func(t *testing.T) {
		req := env.modernRequest(context.Background(), "", 1, "events/subscribe", subParams("orders", nil, rc.url("/x"), good))
		req.Header.Del("Authorization")
		if status, _ := env.do(req); status != http.StatusUnauthorized {
			t.Errorf("HTTP %d, want 401", status)
		}
	})
	t.Run("10 unknown name is NotFound kind event", func(t *testing.T) {
		if data := refused(t, subParams("nonesuch", nil, rc.url("/x"), good), codeNotFound); data["kind"] != "event" {
			t.Errorf("data %v", data)
		}
	})
	t.Run("11 arguments outside inputSchema", func(t *testing.T) {
		refused(t, subParams("orders", map[string]any{"type": 5}, rc.url("/x"), good), codeInvalid)
		refused(t, subParams("orders", map[string]any{"color": "red"}, rc.url("/x"), good), codeInvalid)
		refused(t, subParams("orders", map[string]any{"type": []any{}}, rc.url("/x"), good), codeInvalid)
	})
	t.Run("12 secrets", func(t *testing.T) {
		for _, s := range []string{"", "abc", newSecret(8), newSecret(65), "whsec_!!!", "whsec_" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 30))} {
			refused(t, subParams("orders", nil, rc.url("/x"), s), codeInvalid)
		}
		for i, n := range []int{24, 64} {
			res := env.mustCall(alice, "events/subscribe", subParams("orders", map[string]any{"type": []any{"boundary", string(rune('a' + i))}}, rc.url("/bound"), newSecret(n)))
			if res["id"] == "" {
				t.Errorf("%d-byte secret: %v", n, res)
			}
		}
		env.mustCall(alice, "events/unsubscribe", map[string]any{"name": "orders", "arguments": map[string]any{"type": []any{"boundary", "a"}}, "delivery": map[string]any{"url": rc.url("/bound")}})
		env.mustCall(alice, "events/unsubscribe", map[string]any{"name": "orders", "arguments": map[string]any{"type": []any{"boundary", "b"}}, "delivery": map[string]any{"url": rc.url("/bound")}})
		rc.mu.Lock()
		rc.reqs = nil
		rc.mu.Unlock()
	})
	t.Run("13 callback URL syntax and scheme", func(t *testing.T) {
		strict := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.AllowLocalCallbacks = false })
		strict.register("alice", "orders")
		for _, u := range []string{"http://127.0.0.1/x", "ftp://example.test/x", "", "/relative", "https://user:pw@example.test/x"} {
			if code, _, _ := strict.callErr(alice, "events/subscribe", subParams("orders", nil, u, good)); code != codeInvalid {
				t.Errorf("url %q: code %d", u, code)
			}
		}
		if n := strict.dns.lookups.Load(); n != 0 {
			t.Errorf("%d DNS lookups for URLs refused by syntax", n)
		}
	})
	t.Run("14 non-public callback addresses are refused without connecting", func(t *testing.T) {
		strict := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.AllowLocalCallbacks = false })
		strict.register("alice", "orders")
		strict.dns.set("internal.test", "192.168.1.5")
		strict.dns.set("mixed.test", "8.8.8.8", "10.1.2.3")
		canary, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var accepted atomic.Int64
		go func() {
			for {
				c, err := canary.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
		t.Cleanup(func() { canary.Close() })
		port := canary.Addr().(*net.TCPAddr).Port
		for _, u := range []string{
			"https://127.0.0.1:" + strconv.Itoa(port) + "/x", "https://[::1]:" + strconv.Itoa(port) + "/x", "https://localhost.:" + strconv.Itoa(port) + "/x",
			"https://10.0.0.1/x", "https://169.254.169.254/x", "https://100.64.0.1/x", "https://[fd00::1]/x",
			"https://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/x", "https://internal.test/x", "https://mixed.test/x",
		} {
			code, _, text := strict.callErr(alice, "events/subscribe", subParams("orders", nil, u, good))
			if code != codeInvalid && code != codeCallback {
				t.Errorf("url %s: code %d (%s)", u, code, text)
			}
		}
		if n := accepted.Load(); n != 0 {
			t.Errorf("canary accepted %d connections", n)
		}
		if n := strict.subscriptionCount(); n != 0 {
			t.Errorf("%d subscriptions stored", n)
		}
	})
	t.Run("16 delivery.mode other than webhook", func(t *testing.T) {
		p := subParams("orders", nil, rc.url("/x"), good)
		p["delivery"].(map[string]any)["mode"] = "poll"
		refused(t, p, codeInvalid)
	})
	t.Run("17 quota before any challenge", func(t *testing.T) {
		for i := range 3 { // MaxSubscriptions
			env.mustCall(alice, "events/subscribe", subParams("orders", map[string]any{"type": "t" + strconv.Itoa(i)}, rc.url("/q"), good))
		}
		before := len(rc.requests())
		code, data, _ := env.callErr(alice, "events/subscribe", subParams("orders", nil, rc.url("/other-endpoint"), good))
		if code != codeExhausted || data["limit"] != "subscriptions" || data["max"] != float64(3) {
			t.Errorf("4th subscription: %d %v", code, data)
		}
		if len(rc.requests()) != before {
			t.Error("a challenge was sent past the quota")
		}
	})
}

func TestEventsConformanceVerification(t *testing.T) {
	env := newEventsEnv(t, nil)
	env.register("alice", "orders")
	env.register("bob", "orders")
	secret := newSecret(32)

	var aliceNonce string
	rc := newReceiver(t, nil)
	t.Run("18 one signed challenge before the result", func(t *testing.T) {
		res := env.mustCall(alice, "events/subscribe", subParams("orders", nil, rc.url("/u1"), secret))
		reqs := rc.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want exactly the challenge", len(reqs))
		}
		r := reqs[0]
		aliceNonce = r.challenge()
		if len(aliceNonce) < 22 { // 128 bits in base64
			t.Errorf("challenge %q too short", aliceNonce)
		}
		if !regexp.MustCompile(`^msg_verification_`).MatchString(r.header.Get("webhook-id")) {
			t.Errorf("webhook-id %q", r.header.Get("webhook-id"))
		}
		if r.header.Get("X-MCP-Subscription-Id") != res["id"] {
			t.Errorf("X-MCP-Subscription-Id %q, result id %v", r.header.Get("X-MCP-Subscription-Id"), res["id"])
		}
		wh, _ := standardwebhooks.NewWebhook(secret)
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Errorf("challenge signature: %v", err)
		}
	})
	failing := func(t *testing.T, answer func(received) (int, string), want string) string {
		t.Helper()
		bad := newReceiver(t, answer)
		code, data, text := env.callErr(alice, "events/subscribe", subParams("orders", nil, bad.url("/f"), secret))
		if code != codeCallback || data["reason"] != want {
			t.Errorf("code %d data %v, want %d reason %s", code, data, codeCallback, want)
		}
		if n := env.subscriptionCount(); n != 1 { // only check 18's
			t.Errorf("%d subscriptions stored after a failed challenge", n)
		}
		return text
	}
	t.Run("19 a wrong echo fails and stores nothing", func(t *testing.T) {
		failing(t, func(received) (int, string) { return 200, `{"challenge":"not-it"}` }, "challenge_failed")
	})
	t.Run("20 a 500 fails without leaking the body", func(t *testing.T) {
		if text := failing(t, func(received) (int, string) { return 500, "ZZ-LEAK" }, "challenge_failed"); strings.Contains(text, "ZZ-LEAK") {
			t.Errorf("error carries the endpoint's body: %s", text)
		}
	})
	t.Run("21 refused, timeout, TLS", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		closed := "http://" + l.Addr().String() + "/x"
		l.Close()
		if code, data, _ := env.callErr(alice, "events/subscribe", subParams("orders", nil, closed, secret)); code != codeCallback || data["reason"] != "connection_refused" {
			t.Errorf("closed port: %d %v", code, data)
		}
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		defer close(release)
		if code, data, _ := env.callErr(alice, "events/subscribe", subParams("orders", nil, slow.URL+"/x", secret)); code != codeCallback || data["reason"] != "timeout" {
			t.Errorf("slow endpoint: %d %v", code, data)
		}
		selfSigned := httptest.NewTLSServer(http.NotFoundHandler())
		defer selfSigned.Close()
		if code, data, _ := env.callErr(alice, "events/subscribe", subParams("orders", nil, selfSigned.URL+"/x", secret)); code != codeCallback || data["reason"] != "tls_error" {
			t.Errorf("self-signed endpoint: %d %v", code, data)
		}
	})
	t.Run("22 redirects are not followed", func(t *testing.T) {
		r2 := newReceiver(t, nil)
		redirect := httptest.NewServer(http.RedirectHandler(r2.url("/landing"), http.StatusFound))
		defer redirect.Close()
		code, data, _ := env.callErr(alice, "events/subscribe", subParams("orders", nil, redirect.URL+"/x", secret))
		if code != codeCallback || data["reason"] != "challenge_failed" {
			t.Errorf("redirecting endpoint: %d %v", code, data)
		}
		if n := len(r2.requests()); n != 0 {
			t.Errorf("redirect target got %d requests", n)
		}
	})
	t.Run("23-24 challenges are per (principal, URL), with fresh nonces", func(t *testing.T) {
		env.mustCall(alice, "events/subscribe", subParams("orders", map[string]any{"type": "other"}, rc.url("/u1"), secret))
		if n := len(rc.requests()); n != 1 {
			t.Errorf("same principal and URL, other arguments: %d requests, want no new challenge", n)
		}
		env.mustCall(bob, "events/subscribe", subParams("orders", nil, rc.url("/u1"), secret))
		reqs := rc.requests()
		if len(reqs) != 2 || reqs[1].challenge() == "" {
			t.Fatalf("other principal: %d requests, want a new challenge", len(reqs))
		}
		if reqs[1].challenge() == aliceNonce {
			t.Error("two challenges carried the same nonce")
		}
	})
}

func TestEventsConformanceIdentityAndTTL(t *testing.T) {
	env := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.MaxSubscriptions = 20 })
	env.register("alice", "orders")
	env.register("alice", "refunds")
	env.register("bob", "orders")
	rc := newReceiver(t, nil)
	s1 := newSecret(32)

	var base map[string]any
	t.Run("25 result fields", func(t *testing.T) {
		base = env.mustCall(alice, "events/subscribe", subParams("orders", map[string]any{"type": "x"}, rc.url("/a"), s1))
		if id, _ := base["id"].(string); id == "" {
			t.Errorf("id %v", base["id"])
		}
		if rb, _ := base["refreshBefore"].(string); rb == "" {
			t.Errorf("refreshBefore %v", base["refreshBefore"])
		} else if _, err := time.Parse(time.RFC3339, rb); err != nil {
			t.Errorf("refreshBefore %q: %v", rb, err)
		}
		if _, ok := base["cursor"].(string); !ok {
			t.Errorf("cursor %v", base["cursor"])
		}
		if _, ok := base["truncated"].(bool); !ok {
			t.Errorf("truncated %v", base["truncated"])
		}
	})
	t.Run("26 the key is canonical: same id, nothing new", func(t *testing.T) {
		challenges, stored := len(rc.requests()), env.subscriptionCount()
		// The same arguments written differently, as raw JSON.
		body := `{"jsonrpc":"2.0","id":7,"method":"events/subscribe","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},` +
			`"name":"orders","arguments":{ "type" :  "x" },"cursor":null,"delivery":{"url":"` + rc.url("/a") + `","secret":"` + s1 + `","mode":"webhook"}}}`
		req := env.modernRequest(context.Background(), alice, 7, "events/subscribe", nil)
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
		_, msg := env.do(req)
		if msg.Error != nil || obj(t, msg.Result)["id"] != base["id"] {
			t.Fatalf("repeat: %s %+v, want id %v", msg.Result, msg.Error, base["id"])
		}
		if len(rc.requests()) != challenges || env.subscriptionCount() != stored {
			t.Error("a repeat challenged again or stored another subscription")
		}
	})
	t.Run("27 each key part makes a different subscription", func(t *testing.T) {
		ids := map[any]bool{base["id"]: true}
		for _, v := range []struct {
			token, name, url string
			args             map[string]any
		}{
			{alice, "orders", rc.url("/b"), map[string]any{"type": "x"}},
			{alice, "refunds", rc.url("/a"), map[string]any{"type": "x"}},
			{alice, "orders", rc.url("/a"), map[string]any{"type": "y"}},
			{bob, "orders", rc.url("/a"), map[string]any{"type": "x"}},
		} {
			ids[env.mustCall(v.token, "events/subscribe", subParams(v.name, v.args, v.url, s1))["id"]] = true
		}
		if len(ids) != 5 {
			t.Errorf("%d distinct ids, want 5", len(ids))
		}
	})
	t.Run("28-29 TTL is clamped, never refused for its value", func(t *testing.T) {
		sub := func(ttl any) map[string]any {
			p := subParams("orders", map[string]any{"type": "ttl"}, rc.url("/a"), s1)
			if ttl != "omit" {
				p["ttlMs"] = ttl
			}
			return env.mustCall(alice, "events/subscribe", p)
		}
		refresh := func(res map[string]any) time.Time {
			rb, err := time.Parse(time.RFC3339, res["refreshBefore"].(string))
			if err != nil {
				t.Fatalf("refreshBefore %v: %v", res["refreshBefore"], err)
			}
			return rb
		}
		now := time.Now()
		if rb := refresh(sub("omit")); !rb.After(now) {
			t.Errorf("omitted ttlMs: refreshBefore %v", rb)
		}
		if rb := refresh(sub(3600000)); rb.After(now.Add(time.Hour + time.Minute)) {
			t.Errorf("ttlMs 1h: refreshBefore %v, more than 1h away", rb)
		}
		for _, ttl := range []any{1000, 2592000000, nil} {
			if rb := refresh(sub(ttl)); !rb.After(now) {
				t.Errorf("ttlMs %v: refreshBefore %v", ttl, rb)
			}
		}
		p := subParams("orders", nil, rc.url("/a"), s1)
		p["ttlMs"] = "x"
		if code, _, _ := env.callErr(alice, "events/subscribe", p); code != codeInvalid {
			t.Errorf("ttlMs \"x\": code %d", code)
		}
	})
	t.Run("30 a new secret is dual-signed during the grace period", func(t *testing.T) {
		rc2 := newReceiver(t, nil)
		env.mustCall(alice, "events/subscribe", subParams("refunds", nil, rc2.url("/rot"), s1))
		s2 := newSecret(40)
		env.mustCall(alice, "events/subscribe", subParams("refunds", nil, rc2.url("/rot"), s2))
		env.publish("alice", "refunds", "r.1", "", "")
		d := rc2.waitDeliveries(1)[0]
		if sigs := strings.Fields(d.header.Get("webhook-signature")); len(sigs) != 2 {
			t.Errorf("during grace: %d signatures, want 2", len(sigs))
		}
		for _, s := range []string{s1, s2} {
			wh, _ := standardwebhooks.NewWebhook(s)
			if err := wh.Verify(d.body, d.header); err != nil {
				t.Errorf("during grace, secret %d...: %v", len(s), err)
			}
		}
		// Once the grace period (SecretGrace, 1 s) has passed, only the new
		// secret signs: publish until a delivery shows it.
		deadline := time.Now().Add(10 * time.Second)
		for n := 2; ; n++ {
			env.publish("alice", "refunds", "r."+strconv.Itoa(n), "", "")
			d = rc2.waitDeliveries(n)[n-1]
			if len(strings.Fields(d.header.Get("webhook-signature"))) == 1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // polling against the deadline
		}
		wh1, _ := standardwebhooks.NewWebhook(s1)
		wh2, _ := standardwebhooks.NewWebhook(s2)
		if len(strings.Fields(d.header.Get("webhook-signature"))) != 1 || wh2.Verify(d.body, d.header) != nil || wh1.Verify(d.body, d.header) == nil {
			t.Errorf("after grace: signature %q, want only the new secret's", d.header.Get("webhook-signature"))
		}
	})
	t.Run("31 past refreshBefore nothing is delivered; resubscribing gives the same id", func(t *testing.T) {
		short := newEventsEnv(t, nil) // MinTTL 400ms
		short.register("alice", "orders")
		rc3 := newReceiver(t, nil)
		p := subParams("orders", nil, rc3.url("/short"), s1)
		p["ttlMs"] = 1
		first := short.mustCall(alice, "events/subscribe", p)
		if err := waitFor(5*time.Second, func() bool { return short.subscriptionCount() == 0 }); err != nil {
			t.Fatal("the expired subscription is still stored")
		}
		short.publish("alice", "orders", "lapsed", "", "")
		again := short.mustCall(alice, "events/subscribe", subParams("orders", nil, rc3.url("/short"), s1))
		if again["id"] != first["id"] {
			t.Errorf("resubscribe id %v, want %v", again["id"], first["id"])
		}
		short.publish("alice", "orders", "live", "", "")
		for _, d := range rc3.waitDeliveries(1) {
			if o := occurrenceOf(t, d); o["data"].(map[string]any)["type"] != "live" {
				t.Errorf("delivered %v after expiry", o["data"])
			}
		}
	})
}

// answerFor is a receiver answer that echoes challenges and gives status
// to deliveries.
func answerFor(status func(received) int) func(received) (int, string) {
	return func(r received) (int, string) {
		if c := r.challenge(); c != "" {
			return 200, echoBody(c)
		}
		return status(r), ""
	}
}
