package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
	"github.com/hookgate/hookgate/server"
)

// scrapeMetrics returns the gateway's /metrics exposition.
func scrapeMetrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	return string(raw)
}

// waitForSample scrapes /metrics until series has the value want, polling
// against a deadline, and fails with the last value seen otherwise.
func waitForSample(t *testing.T, base, series string, want float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v, ok := metricSample(scrapeMetrics(t, base), series)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: %s = %v (present: %v) after %s, want %v", series, v, ok, within, want)
		}
		time.Sleep(100 * time.Millisecond) // polling against a deadline
	}
}

// postSigned POSTs a generic webhook signed with secret and requires a 200.
func postSigned(t *testing.T, url, secret string, body []byte) {
	t.Helper()
	if status, _ := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(secret, body)}}, body); status != http.StatusOK {
		t.Fatalf("POST %s: %d", url, status)
	}
}

// TestMetricsShowLeaseExpiriesWithoutStats: an agent leases events and is
// never heard from again. Nobody calls get_stats or polls; a Prometheus
// scrape alone must show the expiries.
func TestMetricsShowLeaseExpiriesWithoutStats(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--lease", "1s")
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "stuck"}).Structured
	url, secret := reg["url"].(string), reg["secret"].(string)
	for i := range 4 {
		postSigned(t, url, secret, fmt.Appendf(nil, `{"id":"stuck-%d"}`, i))
	}
	var events []testEvent
	if err := json.Unmarshal([]byte(mustTool(t, cs, "poll_events", map[string]any{"limit": 10}).Text), &events); err != nil || len(events) != 4 {
		t.Fatalf("poll: %v, %d events", err, len(events))
	}
	// The agent is stuck: from here on only scrapes.
	waitForSample(t, g.url, `hookgate_leases_expired_total{principal="dev",webhook="stuck"}`, 4, 15*time.Second)
}

// TestDropRateCountsDeadLettersAndRetention: events really dropped show in
// the drop rate. Two registrations are written into the store before the
// gateway starts (the tools cannot set retention or attempts): "once"
// allows one attempt, "brief" keeps events one second. Of 10 events of
// "once", 6 are acked, 2 nacked (their one attempt used: dead at once)
// and 2 left to run out of their lease (dead-lettered by the next poll);
// the 3 events of "brief" are never polled, and compaction deletes them.
func TestDropRateCountsDeadLettersAndRetention(t *testing.T) {
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "hookgate.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	ctx := context.Background()
	token, err := server.CreateToken(ctx, st, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	once := store.Registration{ID: "wh_droptest_once", Principal: "ops", Label: "once", Provider: "generic",
		Secrets: []string{"whsec_once"}, CreatedAt: time.Now().UTC(), MaxAttempts: 1}
	brief := store.Registration{ID: "wh_droptest_brief", Principal: "ops", Label: "brief", Provider: "generic",
		Secrets: []string{"whsec_brief"}, CreatedAt: time.Now().UTC(), TTL: time.Second}
	for _, r := range []store.Registration{once, brief} {
		if err := st.PutRegistration(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A 5 s lease leaves ample time to ack and nack before any lease runs
	// out; compaction runs often, so "brief" is deleted soon after 1 s.
	g := startGateway(t, dir, "--lease", "5s", "--compact-every", "100ms")
	for i := range 10 {
		postSigned(t, g.url+"/hooks/"+once.ID, "whsec_once", fmt.Appendf(nil, `{"id":"once-%d"}`, i))
	}
	for i := range 3 {
		postSigned(t, g.url+"/hooks/"+brief.ID, "whsec_brief", fmt.Appendf(nil, `{"id":"brief-%d"}`, i))
	}
	cs := connect(t, g.url, token, "")
	var events []testEvent
	if err := json.Unmarshal([]byte(mustTool(t, cs, "poll_events", map[string]any{"label": "once", "limit": 10}).Text), &events); err != nil || len(events) != 10 {
		t.Fatalf("poll: %v, %d events", err, len(events))
	}
	var ackIDs []string
	for _, e := range events[:6] {
		ackIDs = append(ackIDs, e.ID)
	}
	mustTool(t, cs, "ack_event", map[string]any{"event_ids": ackIDs})
	for _, e := range events[6:8] {
		mustTool(t, cs, "nack_event", map[string]any{"event_id": e.ID})
	}

	byLabel := func() map[string]webhookStats {
		var res struct {
			Webhooks []webhookStats `json:"webhooks"`
		}
		if err := json.Unmarshal([]byte(mustTool(t, cs, "get_stats", nil).Text), &res); err != nil {
			t.Fatalf("get_stats: %v", err)
		}
		out := map[string]webhookStats{}
		for _, s := range res.Webhooks {
			out[s.Label] = s
		}
		return out
	}
	// events[8:] run out of their lease; the poll after that finds their
	// one attempt used and dead-letters them. Compaction deletes "brief".
	var got map[string]webhookStats
	deadline := time.Now().Add(20 * time.Second)
	for {
		mustTool(t, cs, "poll_events", map[string]any{"label": "once"})
		got = byLabel()
		if (got["once"].DeadLettered == 4 && got["brief"].ExpiredUnacked == 3) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling against a deadline: leases and retention run out on their own
	}
	o, b := got["once"], got["brief"]
	if o.Accepted != 10 || o.Acked != 6 || o.Nacked != 2 || o.LeaseExpired != 2 || o.DeadLettered != 4 || o.ExpiredUnacked != 0 || o.Pending != 0 {
		t.Errorf("once: %+v, want 10 accepted, 6 acked, 2 nacked, 2 lease expiries, 4 dead letters, nothing pending", o)
	}
	if o.DropRate == nil || *o.DropRate != 0.4 || o.ActionSuccessRate == nil || *o.ActionSuccessRate != 0.6 {
		t.Errorf("once: drop rate %v, success rate %v; want 4/10 = 0.4 and 6/(6+2+2) = 0.6", deref(o.DropRate), deref(o.ActionSuccessRate))
	}
	if b.Accepted != 3 || b.ExpiredUnacked != 3 || b.DeadLettered != 0 || b.Pending != 0 {
		t.Errorf("brief: %+v, want 3 accepted and 3 expired unacked, nothing pending", b)
	}
	if b.DropRate == nil || *b.DropRate != 1 {
		t.Errorf("brief: drop rate %v, want 1", deref(b.DropRate))
	}

	// /v1/stats says the same.
	var viaHTTP struct {
		Webhooks []webhookStats `json:"webhooks"`
	}
	getJSON(t, g.url+"/v1/stats", token, &viaHTTP)
	if len(viaHTTP.Webhooks) != 2 {
		t.Fatalf("/v1/stats: %+v", viaHTTP)
	}
	for _, s := range viaHTTP.Webhooks {
		if want := got[s.Label]; deref(s.DropRate) != deref(want.DropRate) || s.DeadLettered != want.DeadLettered || s.ExpiredUnacked != want.ExpiredUnacked {
			t.Errorf("/v1/stats %s: %+v, get_stats said %+v", s.Label, s, want)
		}
	}

	text := scrapeMetrics(t, g.url)
	for series, want := range map[string]float64{
		`hookgate_events_dead_lettered_total{principal="ops",webhook="once"}`:    4,
		`hookgate_events_expired_unacked_total{principal="ops",webhook="brief"}`: 3,
		`hookgate_leases_expired_total{principal="ops",webhook="once"}`:          2,
		`hookgate_events_nacked_total{principal="ops",webhook="once"}`:           2,
	} {
		if v := metricValue(t, text, series); v != want {
			t.Errorf("/metrics: %s = %v, want %v", series, v, want)
		}
	}
}

// TestCallbackDeliveriesInMetrics: MCP Events webhook-mode deliveries are
// counted in hookgate_callback_deliveries_total by result.
func TestCallbackDeliveriesInMetrics(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--events-allow-local-callbacks")
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	secret := evSecret()
	rc := newWebhookReceiver(t, secret, nil)
	if status, res := evSubscribe(t, g, "orders", rc.srv.URL+"/hook", secret); status != http.StatusOK || res.Error != nil {
		t.Fatalf("subscribe: %d %+v", status, res.Error)
	}
	for i := range 3 {
		postSigned(t, reg["url"].(string), reg["secret"].(string), fmt.Appendf(nil, `{"id":"order-%d"}`, i))
	}
	rc.waitAccepted(3, 10*time.Second)
	waitForSample(t, g.url, `hookgate_callback_deliveries_total{result="ok"}`, 3, 10*time.Second)
}

// TestStatsWithMetricsOff: --metrics=false serves no /metrics, and
// get_stats still counts.
func TestStatsWithMetricsOff(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--metrics=false")
	resp, err := http.Get(g.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics with --metrics=false: %d, want 404", resp.StatusCode)
	}
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "quiet"}).Structured
	postSigned(t, reg["url"].(string), reg["secret"].(string), []byte(`{"id":"quiet-1"}`))
	var res struct {
		Webhooks []webhookStats `json:"webhooks"`
	}
	if err := json.Unmarshal([]byte(mustTool(t, cs, "get_stats", nil).Text), &res); err != nil || len(res.Webhooks) != 1 || res.Webhooks[0].Accepted != 1 {
		t.Fatalf("get_stats with --metrics=false: %v %+v, want 1 accepted", err, res)
	}
}
