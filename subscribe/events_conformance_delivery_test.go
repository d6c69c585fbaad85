package subscribe_test

// Conformance, continued (see events_conformance_test.go): delivery
// (33-43), unsubscribe (44-47), poll (48-50); streams and list_changed
// (51-53) are in events_conformance_stream_test.go.

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookgate/hookgate/subscribe"
)

func TestEventsConformanceDelivery(t *testing.T) {
	env := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.MaxSubscriptions = 20 })
	secret := newSecret(32)
	// subscribed makes a receiver with answer, subscribes alice's label to
	// it with args, and returns both.
	subscribed := func(t *testing.T, label string, args map[string]any, answer func(received) (int, string)) (*receiver, string) {
		t.Helper()
		env.register("alice", label)
		rc := newReceiver(t, answer)
		res := env.mustCall(alice, "events/subscribe", subParams(label, args, rc.url("/hook"), secret))
		return rc, res["id"].(string)
	}

	t.Run("33 one signed POST per event", func(t *testing.T) {
		rc, id := subscribed(t, "d33", nil, nil)
		hid := env.publish("alice", "d33", "payment_intent.payment_failed", "evt_33", "")
		d := rc.waitDeliveries(1)[0]
		if d.header.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type %q", d.header.Get("Content-Type"))
		}
		o := occurrenceOf(t, d)
		if d.header.Get("webhook-id") != o["eventId"] || o["eventId"] != "evt_33" {
			t.Errorf("webhook-id %q, eventId %v; want the provider's id evt_33 in both", d.header.Get("webhook-id"), o["eventId"])
		}
		if hookgateID(t, o) != hid.String() || o["cursor"] != hid.String() {
			t.Errorf("_meta hookgate/id %v, cursor %v; want hookgate's id %s", hookgateID(t, o), o["cursor"], hid)
		}
		ts, _ := strconv.ParseInt(d.header.Get("webhook-timestamp"), 10, 64)
		if skew := time.Since(time.Unix(ts, 0)); skew > 5*time.Second || skew < -5*time.Second {
			t.Errorf("webhook-timestamp %d is %s off", ts, skew)
		}
		wh, _ := standardwebhooks.NewWebhook(secret)
		if err := wh.Verify(d.body, d.header); err != nil {
			t.Errorf("signature: %v", err)
		}
		if d.header.Get("X-MCP-Subscription-Id") != id {
			t.Errorf("X-MCP-Subscription-Id %q, want %q", d.header.Get("X-MCP-Subscription-Id"), id)
		}
		if o["name"] != "d33" {
			t.Errorf("name %v", o["name"])
		}
		if at, err := time.Parse(time.RFC3339Nano, o["timestamp"].(string)); err != nil || !strings.HasSuffix(o["timestamp"].(string), "Z") || time.Since(at) > time.Minute {
			t.Errorf("timestamp %v: %v", o["timestamp"], err)
		}
		if _, ok := o["type"]; ok {
			t.Error("an occurrence has a top-level type (that marks a control envelope)")
		}
		data, _ := o["data"].(map[string]any)
		for _, k := range []string{"id", "label", "source", "type", "providerEventId", "receivedAt", "verified", "deliveryCount", "payload"} {
			if _, ok := data[k]; !ok {
				t.Errorf("data lacks %s (payloadSchema requires it): %v", k, data)
			}
		}
	})
	t.Run("34 a filtered-out event is never POSTed", func(t *testing.T) {
		rc, _ := subscribed(t, "d34", map[string]any{"type": "payment_intent.*"}, nil)
		env.publish("alice", "d34", "charge.succeeded", "", "")
		env.publish("alice", "d34", "payment_intent.payment_failed", "", "")
		got := rc.waitDeliveries(1)
		if len(got) != 1 || occurrenceOf(t, got[0])["data"].(map[string]any)["type"] != "payment_intent.payment_failed" {
			t.Errorf("deliveries %d, want only the payment_intent one", len(got))
		}
	})
	t.Run("36 retries are bounded; the next event still goes", func(t *testing.T) {
		rc, _ := subscribed(t, "d36", nil, answerFor(func(r received) int {
			if strings.Contains(string(r.body), `"doomed"`) {
				return 500
			}
			return 200
		}))
		env.publish("alice", "d36", "doomed", "", "")
		env.publish("alice", "d36", "fine", "", "")
		got := rc.waitDeliveries(5)
		if n := countType(t, got, "doomed"); n != 4 { // MaxAttempts
			t.Errorf("%d attempts at a failing event, want 4", n)
		}
		if countType(t, got, "fine") != 1 {
			t.Error("the event after an abandoned one was not delivered")
		}
	})
	for _, status := range []int{http.StatusGone, http.StatusRequestEntityTooLarge} {
		t.Run("37-38 no retry on "+strconv.Itoa(status), func(t *testing.T) {
			label := "d" + strconv.Itoa(status)
			rc, _ := subscribed(t, label, nil, answerFor(func(r received) int {
				if strings.Contains(string(r.body), `"refused"`) {
					return status
				}
				return 200
			}))
			env.publish("alice", label, "refused", "", "")
			env.publish("alice", label, "after", "", "")
			got := rc.waitDeliveries(2)
			if countType(t, got, "refused") != 1 || countType(t, got, "after") != 1 {
				t.Errorf("%d: deliveries %d, want one attempt each", status, len(got))
			}
		})
	}
	t.Run("39 no body over 256 KiB", func(t *testing.T) {
		rc, _ := subscribed(t, "d39", nil, nil)
		big := `{"blob":"` + strings.Repeat("x", 300<<10) + `"}`
		hid := env.publish("alice", "d39", "big", "", big)
		d := rc.waitDeliveries(1)[0]
		if len(d.body) > 256<<10 {
			t.Errorf("body of %d bytes", len(d.body))
		}
		o := occurrenceOf(t, d)
		meta := o["_meta"].(map[string]any)
		if o["data"].(map[string]any)["payload"] != nil || meta["hookgate/payloadOmitted"] != true || !strings.HasSuffix(meta["hookgate/resourceUri"].(string), hid.String()) {
			t.Errorf("oversized occurrence: %v", meta)
		}
		// The provider's type and ID come from the body or a header, up to
		// the ingress limit: without the payload they can still be too big.
		huge := strings.Repeat("t", 300<<10)
		hid = env.publish("alice", "d39", huge, strings.Repeat("i", 1000), `{"small":true}`)
		d = rc.waitDeliveries(2)[1]
		if len(d.body) > 256<<10 {
			t.Fatalf("body of %d bytes for an event with a huge type and provider ID", len(d.body))
		}
		o = occurrenceOf(t, d)
		if hookgateID(t, o) != hid.String() || o["eventId"] != hid.String() || d.header.Get("webhook-id") != hid.String() {
			t.Errorf("summary of %s: eventId %v, webhook-id %q", hid, o["eventId"], d.header.Get("webhook-id"))
		}
		data := o["data"].(map[string]any)
		for _, k := range []string{"id", "label", "source", "type", "providerEventId", "receivedAt", "verified", "deliveryCount", "payload"} {
			if _, ok := data[k]; !ok {
				t.Errorf("summary lacks data.%s (payloadSchema requires it)", k)
			}
		}
		if meta := o["_meta"].(map[string]any); meta["hookgate/payloadOmitted"] != true || !strings.HasSuffix(meta["hookgate/resourceUri"].(string), hid.String()) {
			t.Errorf("summary _meta %v", meta)
		}
	})
	t.Run("40 three events, three POSTs, in order", func(t *testing.T) {
		rc, _ := subscribed(t, "d40", nil, nil)
		var want []string
		for i := range 3 {
			want = append(want, env.publish("alice", "d40", "t"+strconv.Itoa(i), "", "").String())
		}
		var got []string
		for _, d := range rc.waitDeliveries(3) {
			if !json.Valid(d.body) || d.body[0] != '{' {
				t.Errorf("body is not one JSON object: %.40s", d.body)
			}
			got = append(got, hookgateID(t, occurrenceOf(t, d)))
		}
		if !slices.Equal(got, want) {
			t.Errorf("delivered %v, want %v", got, want)
		}
	})
	t.Run("42 503 then 200 delivers on retry", func(t *testing.T) {
		var attempts atomic.Int32
		rc, _ := subscribed(t, "d42", nil, answerFor(func(received) int {
			if attempts.Add(1) == 1 {
				return 503
			}
			return 200
		}))
		env.publish("alice", "d42", "late", "", "")
		got := rc.waitDeliveries(2)
		if got[0].header.Get("webhook-id") != got[1].header.Get("webhook-id") || string(got[0].body) != string(got[1].body) {
			t.Error("a retry changed the webhook-id or the body")
		}
	})
	t.Run("43 revocation stops delivery; the refresh is NotFound", func(t *testing.T) {
		rc, _ := subscribed(t, "d43", nil, nil)
		env.mustCall(alice, "tools/call", map[string]any{"name": "delete_webhook", "arguments": map[string]any{"label": "d43"}})
		if err := waitFor(5*time.Second, func() bool { return !hasSubscription(t, env, "d43") }); err != nil {
			t.Fatal("the subscription outlived its event type")
		}
		code, data, _ := env.callErr(alice, "events/subscribe", subParams("d43", nil, rc.url("/hook"), secret))
		if code != codeNotFound || data["kind"] != "event" {
			t.Errorf("refresh: %d %v", code, data)
		}
		if n := len(rc.deliveries()); n != 0 { // the ChatGPT profile sends no terminated envelope
			t.Errorf("%d POSTs after revocation", n)
		}
	})
}

func countType(t *testing.T, got []received, typ string) int {
	n := 0
	for _, d := range got {
		if occurrenceOf(t, d)["data"].(map[string]any)["type"] == typ {
			n++
		}
	}
	return n
}

func hasSubscription(t *testing.T, env *eventsEnv, name string) bool {
	subs, err := env.store.Subscriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if strings.Contains(string(s.Data), `"name":"`+name+`"`) {
			return true
		}
	}
	return false
}

func TestEventsConformanceRetrySignature(t *testing.T) {
	// 35: attempts a second apart, so each has its own timestamp.
	env := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.RetryDelay = 1100 * time.Millisecond })
	env.register("alice", "orders")
	var attempts atomic.Int32
	rc := newReceiver(t, answerFor(func(received) int {
		if attempts.Add(1) == 1 {
			return 500
		}
		return 200
	}))
	secret := newSecret(32)
	env.mustCall(alice, "events/subscribe", subParams("orders", nil, rc.url("/r"), secret))
	env.publish("alice", "orders", "retried", "", "")
	got := rc.waitDeliveries(2)
	a, b := got[0], got[1]
	if a.header.Get("webhook-id") != b.header.Get("webhook-id") || string(a.body) != string(b.body) {
		t.Error("the retry changed the webhook-id or the body")
	}
	if a.header.Get("webhook-timestamp") == b.header.Get("webhook-timestamp") || a.header.Get("webhook-signature") == b.header.Get("webhook-signature") {
		t.Error("the retry reused the timestamp or signature")
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	for _, d := range got {
		if err := wh.Verify(d.body, d.header); err != nil {
			t.Errorf("attempt signature: %v", err)
		}
	}
	if b.at.Sub(a.at) < time.Second {
		t.Errorf("retry after %s", b.at.Sub(a.at))
	}
}

func TestEventsConformanceDNSRebinding(t *testing.T) {
	// 41: the name resolved to loopback (allowed here) at subscribe time
	// and to a private address at delivery: the delivery never connects.
	env := newEventsEnv(t, nil)
	env.register("alice", "orders")
	rc := newReceiver(t, nil)
	rc.srv.Config.SetKeepAlivesEnabled(false) // every delivery dials anew
	port := rc.srv.Listener.Addr().String()[strings.LastIndex(rc.srv.Listener.Addr().String(), ":"):]
	env.dns.set("flip.test", "127.0.0.1")
	env.mustCall(alice, "events/subscribe", subParams("orders", nil, "http://flip.test"+port+"/hook", newSecret(32)))
	env.dns.set("flip.test", "10.0.0.7")
	env.publish("alice", "orders", "rebound", "", "")
	lookups := env.dns.lookups.Load()
	if err := waitFor(5*time.Second, func() bool { return env.dns.lookups.Load() >= lookups+4 }); err != nil {
		t.Fatal("the delivery did not re-resolve the host")
	}
	if n := len(rc.deliveries()); n != 0 {
		t.Errorf("%d deliveries reached the old address after the name moved", n)
	}
}

func TestEventsConformanceTerminatedEnvelope(t *testing.T) {
	// 43 under the SEP profile: a terminated envelope, with SEP codes.
	env := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.Profile = subscribe.ProfileSEP })
	env.register("alice", "orders")
	rc := newReceiver(t, nil)
	secret := newSecret(32)
	env.mustCall(alice, "events/subscribe", subParams("orders", nil, rc.url("/t"), secret))
	env.mustCall(alice, "tools/call", map[string]any{"name": "delete_webhook", "arguments": map[string]any{"label": "orders"}})
	d := rc.waitDeliveries(1)[0]
	o := occurrenceOf(t, d)
	e, _ := o["error"].(map[string]any)
	if o["type"] != "terminated" || e["code"] != float64(-32023) || !strings.HasPrefix(d.header.Get("webhook-id"), "msg_terminated_") {
		t.Errorf("envelope %s, webhook-id %q", d.body, d.header.Get("webhook-id"))
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(d.body, d.header); err != nil {
		t.Errorf("envelope signature: %v", err)
	}
}

func TestEventsConformanceUnsubscribe(t *testing.T) {
	for _, profile := range []subscribe.EventsProfile{subscribe.ProfileChatGPT, subscribe.ProfileSEP} {
		t.Run(string(profile), func(t *testing.T) {
			env := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.Profile = profile })
			env.register("alice", "orders")
			env.register("bob", "orders")
			rc := newReceiver(t, nil)
			secret := newSecret(32)
			key := func(withMode bool) map[string]any {
				d := map[string]any{"url": rc.url("/u")}
				if withMode {
					d["mode"] = "webhook"
				}
				return map[string]any{"name": "orders", "arguments": map[string]any{}, "delivery": d}
			}
			env.mustCall(alice, "events/subscribe", subParams("orders", nil, rc.url("/u"), secret))
			t.Run("46 another principal's key touches nothing", func(t *testing.T) {
				if profile == subscribe.ProfileChatGPT {
					env.mustCall(bob, "events/unsubscribe", key(true))
				} else if code, _, _ := env.callErr(bob, "events/unsubscribe", key(true)); code != -32023 {
					t.Errorf("bob's unsubscribe: code %d", code)
				}
				env.publish("alice", "orders", "still", "", "")
				rc.waitDeliveries(1)
			})
			t.Run("47 id is not an input", func(t *testing.T) {
				if code, _, _ := env.callErr(alice, "events/unsubscribe", map[string]any{"id": "sub_x"}); code != codeInvalid {
					t.Errorf("code %d", code)
				}
			})
			t.Run("44 unsubscribe stops delivery", func(t *testing.T) {
				res := env.mustCall(alice, "events/unsubscribe", key(profile == subscribe.ProfileChatGPT))
				if res["resultType"] != "complete" || len(res) > 3 {
					t.Errorf("result %v, want {} with resultType", res)
				}
				if env.subscriptionCount() != 0 {
					t.Error("still stored")
				}
				env.publish("alice", "orders", "gone", "", "")
				// A positive control: a fresh subscription elsewhere gets
				// the next event, and the old URL never gets "gone".
				rc2 := newReceiver(t, nil)
				env.mustCall(alice, "events/subscribe", subParams("orders", nil, rc2.url("/v"), secret))
				env.publish("alice", "orders", "next", "", "")
				rc2.waitDeliveries(1)
				if countType(t, rc.deliveries(), "gone") != 0 {
					t.Error("delivered after unsubscribe")
				}
			})
			t.Run("45 unsubscribing again", func(t *testing.T) {
				if profile == subscribe.ProfileChatGPT {
					env.mustCall(alice, "events/unsubscribe", key(true))
					return
				}
				code, data, _ := env.callErr(alice, "events/unsubscribe", key(true))
				if code != -32023 || data["kind"] != "subscription" {
					t.Errorf("SEP profile: %d %v, want NotFound kind subscription", code, data)
				}
			})
		})
	}
}

func TestEventsConformanceUnsubscribeCancelsRetries(t *testing.T) {
	// 44, queued retries: the receiver holds the first attempt until the
	// unsubscribe has returned, then answers 500. A retry would follow
	// RetryDelay (50 ms) later; none may come.
	env := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.RetryDelay = 50 * time.Millisecond })
	env.register("alice", "orders")
	release := make(chan struct{})
	rc := newReceiver(t, answerFor(func(received) int {
		<-release
		return 500
	}))
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	env.mustCall(alice, "events/subscribe", subParams("orders", nil, rc.url("/r"), newSecret(32)))
	env.publish("alice", "orders", "doomed", "", "")
	rc.waitDeliveries(1)
	env.mustCall(alice, "events/unsubscribe", map[string]any{"name": "orders", "arguments": map[string]any{}, "delivery": map[string]any{"url": rc.url("/r")}})
	close(release)
	// Ten retry delays without a second attempt.
	if err := waitFor(500*time.Millisecond, func() bool { return len(rc.deliveries()) > 1 }); err == nil {
		t.Errorf("%d attempts: a retry was sent after unsubscribe", len(rc.deliveries()))
	}
}

// TestEventsCursorStoredWhenCaughtUp: the delivery cursor is stored in
// batches, but once the worker has caught up the store has it, past the
// last event delivered and past events the filter skipped, so a crash
// while idle repeats nothing.
func TestEventsCursorStoredWhenCaughtUp(t *testing.T) {
	env := newEventsEnv(t, nil)
	env.register("alice", "orders")
	rc := newReceiver(t, nil)
	env.mustCall(alice, "events/subscribe", subParams("orders", map[string]any{"type": "wanted"}, rc.url("/c"), newSecret(32)))
	stored := func() string {
		subs, err := env.store.Subscriptions(context.Background())
		if err != nil || len(subs) != 1 {
			t.Fatalf("subscriptions %v, %v", subs, err)
		}
		return subs[0].Cursor.String()
	}
	for i := range 20 {
		env.publish("alice", "orders", "wanted", "", `{"n":`+strconv.Itoa(i)+`}`)
	}
	last := env.publish("alice", "orders", "unwanted", "", "")
	rc.waitDeliveries(20)
	if err := waitFor(5*time.Second, func() bool { return stored() == last.String() }); err != nil {
		t.Errorf("stored cursor %s, want %s (the last event, filtered out) once caught up", stored(), last)
	}
}

func TestEventsConformancePoll(t *testing.T) {
	env := newEventsEnv(t, nil)
	env.register("alice", "orders")
	poll := func(params map[string]any) map[string]any {
		params["name"] = "orders"
		return env.mustCall(alice, "events/poll", params)
	}
	var cursor string
	t.Run("48 from now", func(t *testing.T) {
		env.publish("alice", "orders", "old", "", "")
		res := poll(map[string]any{"cursor": nil})
		cursor, _ = res["cursor"].(string)
		if events, ok := res["events"].([]any); !ok || len(events) != 0 || cursor == "" || res["truncated"] != false {
			t.Errorf("result %v", res)
		}
		if _, ok := res["hasMore"].(bool); !ok {
			t.Errorf("hasMore %v", res["hasMore"])
		}
		if n, ok := res["nextPollMs"].(float64); !ok || n != float64(int(n)) {
			t.Errorf("nextPollMs %v", res["nextPollMs"])
		}
	})
	t.Run("49 maxEvents and hasMore drain in order", func(t *testing.T) {
		var want, got []string
		for i := range 3 {
			want = append(want, env.publish("alice", "orders", "p"+strconv.Itoa(i), "", "").String())
		}
		for range 3 {
			res := poll(map[string]any{"cursor": cursor, "maxEvents": 1})
			events := res["events"].([]any)
			if len(events) != 1 {
				t.Fatalf("events %v", events)
			}
			got = append(got, hookgateID(t, events[0].(map[string]any)))
			cursor = res["cursor"].(string)
			if res["hasMore"] != (len(got) < 3) {
				t.Errorf("after %d: hasMore %v", len(got), res["hasMore"])
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("drained %v, want %v", got, want)
		}
	})
	t.Run("50 a gap is truncated, not an error", func(t *testing.T) {
		res := poll(map[string]any{"cursor": "0-0"}) // older than the retention
		if res["truncated"] != true {
			t.Errorf("cursor older than retention: truncated %v", res["truncated"])
		}
		res = poll(map[string]any{"cursor": "1-0", "maxAgeMs": 1})
		if res["truncated"] != true || len(res["events"].([]any)) != 0 {
			t.Errorf("maxAgeMs past every event: %v", res)
		}
		if code, _, _ := env.callErr(alice, "events/poll", map[string]any{"name": "orders", "cursor": "nonsense"}); code != codeInvalid {
			t.Errorf("bad cursor: code %d", code)
		}
	})
}
