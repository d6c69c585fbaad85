package server_test

// End-to-end tests of MCP Events webhook delivery with two replicas on one
// Redis: each subscription is delivered by the one replica holding its
// claim, taken over when that replica dies, and changes made on the other
// replica (refresh, unsubscribe) are neither undone nor ignored.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookgate/hookgate/internal/redistest"
)

// replicaClaimTTL is the replicas' claim length in these tests: a dead
// replica's subscriptions are taken over within about 4 s, and a live one
// keeps its claims through stalls of up to 2 s on a loaded machine.
const replicaClaimTTL = "3s"

// startEventReplicas starts replica A (with the dev token) and, after
// before(a) ran, replica B, both on rs with local callbacks allowed.
func startEventReplicas(t *testing.T, rs *redistest.Server, aArgs []string, before func(a *gateway)) (a, b *gateway) {
	t.Helper()
	common := []string{"--redis", rs.URL(), "--events-allow-local-callbacks", "--events-claim-ttl", replicaClaimTTL, "--redis-wake-recheck", "1s"}
	a = startGateway(t, t.TempDir(), slices.Concat([]string{"--dev-token"}, common, aArgs)...)
	if before != nil {
		before(a)
	}
	b = startGateway(t, t.TempDir(), common...)
	b.token = a.token
	return a, b
}

// mustSubscribe subscribes g's label to url with secret and returns the
// result.
func mustSubscribe(t *testing.T, g *gateway, label, url, secret string, extra map[string]any) map[string]any {
	t.Helper()
	params := map[string]any{
		"name": label, "arguments": map[string]any{},
		"delivery": map[string]any{"mode": "webhook", "url": url, "secret": secret},
	}
	for k, v := range extra {
		params[k] = v
	}
	return mustEvCall(t, g.url, g.token, "events/subscribe", params)
}

// checkOnce fails unless deliveries are exactly want, in order, each
// webhook-id once.
func checkOnce(t *testing.T, name string, got []evDelivery, want []string) {
	t.Helper()
	var order []string
	ids := map[string]bool{}
	for _, d := range got {
		order = append(order, d.hookgateID)
		ids[d.webhookID] = true
	}
	if !slices.Equal(order, want) || len(ids) != len(want) {
		t.Fatalf("%s: %d deliveries (%d webhook-ids), want the %d posted exactly once each in order (%s)",
			name, len(order), len(ids), len(want), firstDiff(order, want))
	}
}

// TestEventsReplicasDeliverOnce: two replicas on one Redis, webhook
// subscriptions made on A, one before B started (B would have loaded it at
// its start) and one after (B learns of it only from the store). 300
// events POSTed alternately to A and B reach each receiver exactly once, in
// order, verified with the Standard Webhooks library. Then A, which holds
// both claims, is killed mid-stream: B takes over once the claims run out,
// and every remaining event arrives, in order; only events around the
// takeover may come twice, with the same webhook-id.
func TestEventsReplicasDeliverOnce(t *testing.T) {
	rs := redistest.Start(t)
	secret := evSecret()
	early := newWebhookReceiver(t, secret, nil)
	late := newWebhookReceiver(t, secret, nil)
	var reg map[string]any
	a, b := startEventReplicas(t, rs, nil, func(a *gateway) {
		reg = mustTool(t, connect(t, a.url, a.token, ""), "register_webhook", map[string]any{"label": "orders"}).Structured
		mustSubscribe(t, a, "orders", early.srv.URL+"/hook", secret, nil)
	})
	mustSubscribe(t, a, "orders", late.srv.URL+"/hook", secret, nil)

	p := &alternating{t: t, bases: []string{a.url, b.url}, regID: reg["id"].(string), secret: reg["secret"].(string)}
	first := p.post(0, 300, 4)
	receivers := map[string]*webhookReceiver{"subscribed before B started": early, "subscribed after B started": late}
	for name, rc := range receivers {
		checkOnce(t, name, rc.waitAccepted(len(first), replicaWait), first)
	}

	posted := make(chan []string, 1)
	go func() { posted <- p.post(300, 300, 4) }()
	early.waitAccepted(len(first)+30, replicaWait)
	killedAt := time.Now()
	a.kill()
	want := slices.Concat(first, <-posted)
	if len(want) != 600 {
		t.Fatalf("%d distinct events accepted, want 600", len(want))
	}
	for name, rc := range receivers {
		deadline := time.Now().Add(replicaWait)
		for {
			got, _, bad := rc.snapshot()
			if len(bad) > 0 {
				t.Fatalf("%s: %d bad deliveries, first: %s", name, len(bad), bad[0])
			}
			var arrivals []string
			webhookID := map[string]string{}
			repeats := 0
			var takeover time.Duration // the longest wait for a delivery after the kill
			prev := killedAt
			for _, d := range got {
				if d.at.After(prev) {
					takeover = max(takeover, d.at.Sub(prev))
					prev = d.at
				}
				if firstID, seen := webhookID[d.hookgateID]; seen {
					if firstID != d.webhookID {
						t.Fatalf("%s: event %s came again with webhook-id %q, first %q", name, d.hookgateID, d.webhookID, firstID)
					}
					if d.at.Before(killedAt) {
						t.Fatalf("%s: event %s delivered twice while both replicas ran", name, d.hookgateID)
					}
					repeats++
					continue
				}
				webhookID[d.hookgateID] = d.webhookID
				arrivals = append(arrivals, d.hookgateID)
			}
			if len(arrivals) >= len(want) {
				if !slices.Equal(arrivals, want) {
					t.Fatalf("%s: first arrivals are not the 600 posted in order: %s", name, firstDiff(arrivals, want))
				}
				t.Logf("%s: %d deliveries for %d events; longest wait for a delivery after the kill %v; %d repeats around the takeover",
					name, len(got), len(want), takeover.Round(time.Millisecond), repeats)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d events delivered within %v of killing A", name, len(arrivals), len(want), replicaWait)
			}
			time.Sleep(10 * time.Millisecond) // polling against a deadline
		}
	}
}

// dualReceiver is a callback that verifies each delivery against two
// secrets with the Standard Webhooks library, to see when a new secret,
// given in a refresh on another replica, starts signing.
type dualReceiver struct {
	srv      *httptest.Server
	old, new *standardwebhooks.Webhook

	mu   sync.Mutex
	got  []string // hookgate IDs in arrival order
	both int      // deliveries verified by both secrets
	bad  int      // deliveries verified by neither
}

func newDualReceiver(t *testing.T, oldSecret, newSecret string) *dualReceiver {
	r := &dualReceiver{}
	var err error
	if r.old, err = standardwebhooks.NewWebhook(oldSecret); err != nil {
		t.Fatal(err)
	}
	if r.new, err = standardwebhooks.NewWebhook(newSecret); err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var msg struct {
			Type      string         `json:"type"`
			Challenge string         `json:"challenge"`
			Meta      map[string]any `json:"_meta"`
		}
		_ = json.Unmarshal(body, &msg)
		okOld, okNew := r.old.Verify(body, req.Header) == nil, r.new.Verify(body, req.Header) == nil
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case !okOld && !okNew:
			r.bad++
			w.WriteHeader(http.StatusUnauthorized)
		case msg.Type == "verification":
			_ = json.NewEncoder(w).Encode(map[string]string{"challenge": msg.Challenge})
		default:
			id, _ := msg.Meta["hookgate/id"].(string)
			r.got = append(r.got, id)
			if okOld && okNew {
				r.both++
			}
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *dualReceiver) snapshot() ([]string, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got), r.both, r.bad
}

// waitFor polls until cond holds for the receiver's state or replicaWait
// passes.
func (r *dualReceiver) waitFor(t *testing.T, what string, cond func(got []string, both int) bool) {
	t.Helper()
	deadline := time.Now().Add(replicaWait)
	for {
		got, both, bad := r.snapshot()
		if bad > 0 {
			t.Fatalf("%d deliveries verified by neither secret", bad)
		}
		if cond(got, both) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (%d deliveries, %d signed with the new secret)", what, replicaWait, len(got), both)
		}
		time.Sleep(10 * time.Millisecond) // polling against a deadline
	}
}

// storedSubscription reads a subscription's record, cursor and claim
// ("<until ms> <owner>") straight from Redis, as the store keeps them (see
// bridge/store/redis).
func storedSubscription(t *testing.T, rdb *goredis.Client, id string) (rec map[string]any, cursor, claim string, found bool) {
	t.Helper()
	all, err := rdb.HGetAll(context.Background(), "hookgate:subscriptions").Result()
	if err != nil {
		t.Fatalf("HGETALL subscriptions: %v", err)
	}
	for field, raw := range all {
		if strings.HasSuffix(field, "\x00"+id) {
			if err := json.Unmarshal([]byte(raw), &rec); err != nil {
				t.Fatalf("stored subscription %q: %v", raw, err)
			}
			found = true
		}
		if strings.Contains(field, "\x00"+id+"\x00") {
			found = true // a cursor or claim left behind counts too
			if strings.HasSuffix(field, "\x00cursor") {
				cursor = raw
			}
			if strings.HasSuffix(field, "\x00claim") {
				claim = raw
			}
		}
	}
	return rec, cursor, claim, found
}

// TestEventsReplicasRefreshAndUnsubscribe: a subscription made and
// delivered on A is refreshed on B with a new secret and a longer grant.
// A's cursor saves do not undo the refresh (the store keeps B's expiry and
// secrets while the cursor moves on), and A picks the new secret up: its
// deliveries carry both signatures. Then an unsubscribe on B stops A's
// deliveries: nothing POSTed afterwards reaches the callback, while another
// subscription on A gets all of it, and the subscription is not brought
// back by A. Last, A stops gracefully: it releases its claims, and B
// delivers the other subscription from where A stopped, repeating nothing.
func TestEventsReplicasRefreshAndUnsubscribe(t *testing.T) {
	rs := redistest.Start(t)
	a, b := startEventReplicas(t, rs, []string{"--log-level", "info"}, nil)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	reg := mustTool(t, connect(t, a.url, a.token, ""), "register_webhook", map[string]any{"label": "orders"}).Structured
	oldSecret, newSecret := evSecret(), evSecret()
	rc := newDualReceiver(t, oldSecret, newSecret)
	witness := newWebhookReceiver(t, oldSecret, nil)
	sub := mustSubscribe(t, a, "orders", rc.srv.URL+"/hook", oldSecret, nil)
	witnessID := mustSubscribe(t, a, "orders", witness.srv.URL+"/hook", oldSecret, nil)["id"].(string)
	id := sub["id"].(string)

	p := &alternating{t: t, bases: []string{a.url, b.url}, regID: reg["id"].(string), secret: reg["secret"].(string)}
	want := p.post(0, 20, 2)
	rc.waitFor(t, "the first 20 events", func(got []string, _ int) bool { return len(got) >= 20 })

	refresh := mustSubscribe(t, b, "orders", rc.srv.URL+"/hook", newSecret, map[string]any{"ttlMs": 3 * 24 * 3600 * 1000})
	if refresh["id"] != id || refresh["deliveryStatus"] == nil {
		t.Fatalf("refresh on B: %v, want id %s with a deliveryStatus", refresh, id)
	}
	refreshBefore := refresh["refreshBefore"].(string)
	if refreshBefore == sub["refreshBefore"] {
		t.Fatalf("refresh on B kept refreshBefore %s", refreshBefore)
	}

	// A keeps delivering, saving its cursor, and takes the new secret up at
	// its next claim renewal.
	for i := 20; ; i += 5 {
		want = append(want, p.post(i, 5, 1)...)
		n := len(want)
		rc.waitFor(t, "events after the refresh", func(got []string, _ int) bool { return len(got) >= n })
		if _, both, _ := rc.snapshot(); both > 0 {
			break
		}
		if i > 2000 {
			t.Fatal("A never signed with the secret given in the refresh on B")
		}
	}
	last := want[len(want)-1]
	deadline := time.Now().Add(replicaWait)
	for {
		rec, cursor, _, _ := storedSubscription(t, rdb, id)
		data, _ := rec["data"].(map[string]any)
		secrets, _ := data["secrets"].([]any)
		first, _ := secrets[0].(map[string]any)
		expires, _ := time.Parse(time.RFC3339Nano, rec["expiresAt"].(string))
		if expires.UTC().Truncate(time.Second).Format(time.RFC3339) != refreshBefore || first["secret"] != newSecret {
			t.Fatalf("stored after A's cursor saves: expiresAt %v, secrets %v; want the refresh's (refreshBefore %s)", rec["expiresAt"], secrets, refreshBefore)
		}
		if cursor == last {
			break // A saved its cursor after the refresh, and the refresh stands
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored cursor %q, want %q", cursor, last)
		}
		time.Sleep(10 * time.Millisecond) // polling against a deadline
	}
	if got, _, _ := rc.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("deliveries across the refresh: %s", firstDiff(got, want))
	}

	mustEvCall(t, b.url, b.token, "events/unsubscribe", map[string]any{
		"name": "orders", "arguments": map[string]any{},
		"delivery": map[string]any{"mode": "webhook", "url": rc.srv.URL + "/hook"},
	})
	after := p.post(10_000, 50, 2)
	witness.waitAccepted(len(want)+len(after), replicaWait)
	withDeadline(t, replicaWait, "A to stop delivering the unsubscribed subscription", func() {
		for !strings.Contains(a.stderr.String(), "stopped delivering subscription") || !strings.Contains(a.stderr.String(), id) {
			time.Sleep(10 * time.Millisecond) // polling against the deadline
		}
	})
	if got, _, _ := rc.snapshot(); len(got) != len(want) {
		t.Fatalf("%d deliveries after the unsubscribe on B, want none: %v", len(got)-len(want), got[len(want):])
	}
	if _, _, _, found := storedSubscription(t, rdb, id); found {
		t.Fatal("the unsubscribed subscription is back in the store")
	}

	// A stops gracefully: it saves the witness's cursor and releases its
	// claim, and B goes on from there without repeating anything.
	_, _, claim, _ := storedSubscription(t, rdb, witnessID)
	_, ownerA, _ := strings.Cut(claim, " ")
	a.stop()
	if _, _, claim, _ := storedSubscription(t, rdb, witnessID); strings.HasSuffix(claim, " "+ownerA) {
		t.Fatalf("A (%s) still holds the claim %q after a graceful stop", ownerA, claim)
	}
	p.bases = []string{b.url}
	all := slices.Concat(want, after, p.post(20_000, 30, 2))
	checkOnce(t, "witness across A's graceful stop", witness.waitAccepted(len(all), replicaWait), all)
}
