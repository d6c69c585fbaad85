package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFourNumbersAfterAScriptedRun: 100 accepted, 5 bad signatures, 3
// duplicates, 90 acked, 5 nacked, 5 left to expire — /metrics, get_stats and
// /v1/stats all show exactly that, with the drop rate and success rate
// those counts imply: nothing was dropped (the nacked and expired events
// come back), and 90 of 100 actions succeeded.
func TestFourNumbersAfterAScriptedRun(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--lease", "1s")
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "obs"}).Structured
	url, secret := reg["url"].(string), reg["secret"].(string)
	pushed := subscriber(t, g.url, g.token, "2025-11-25", reg["resourceUri"].(string))

	send := func(i int, key string) int {
		body := fmt.Appendf(nil, `{"id":"obs-%d","type":"t"}`, i)
		status, _ := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(key, body)}}, body)
		return status
	}
	for i := range 100 {
		if s := send(i, secret); s != 200 {
			t.Fatalf("POST %d: %d", i, s)
		}
	}
	for i := range 5 {
		if s := send(1000+i, "wrong"); s != 401 {
			t.Fatalf("bad signature: %d", s)
		}
	}
	for i := range 3 {
		send(i, secret) // duplicates
	}

	var events []testEvent
	if err := json.Unmarshal([]byte(mustTool(t, cs, "poll_events", map[string]any{"limit": 100}).Text), &events); err != nil || len(events) != 100 {
		t.Fatalf("poll: %v, %d events", err, len(events))
	}
	var ackIDs []string
	for _, e := range events[:90] {
		ackIDs = append(ackIDs, e.ID)
	}
	mustTool(t, cs, "ack_event", map[string]any{"event_ids": ackIDs})
	for _, e := range events[90:95] {
		mustTool(t, cs, "nack_event", map[string]any{"event_id": e.ID, "retry_after_seconds": 3600})
	}
	// events[95:] are left to expire after their 1 s lease.

	var got webhookStats
	deadline := time.Now().Add(15 * time.Second)
	for {
		var res struct {
			Webhooks []webhookStats `json:"webhooks"`
		}
		if err := json.Unmarshal([]byte(mustTool(t, cs, "get_stats", nil).Text), &res); err != nil || len(res.Webhooks) != 1 {
			t.Fatalf("get_stats: %v %+v", err, res)
		}
		got = res.Webhooks[0]
		if got.LeaseExpired == 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling against a deadline: the leases run out on their own
	}
	if got.Label != "obs" || got.Accepted != 100 || got.Duplicates != 3 || got.BadSignatures != 5 ||
		got.Acked != 90 || got.Nacked != 5 || got.LeaseExpired != 5 || got.DeadLettered != 0 || got.ExpiredUnacked != 0 || got.Pending != 10 {
		t.Fatalf("get_stats = %+v", got)
	}
	if got.DropRate == nil || *got.DropRate != 0 || got.ActionSuccessRate == nil || *got.ActionSuccessRate != 0.9 {
		t.Fatalf("rates: drop %v success %v, want 0 and 0.9", deref(got.DropRate), deref(got.ActionSuccessRate))
	}
	if got.ProcessingLatency == nil || got.ProcessingLatency.Count != 90 {
		t.Fatalf("processing latency %+v, want 90 samples", got.ProcessingLatency)
	}

	// /v1/stats says the same.
	var viaHTTP struct {
		Webhooks []webhookStats `json:"webhooks"`
	}
	getJSON(t, g.url+"/v1/stats?label=obs", g.token, &viaHTTP)
	if len(viaHTTP.Webhooks) != 1 || viaHTTP.Webhooks[0].Acked != 90 || viaHTTP.Webhooks[0].LeaseExpired != 5 {
		t.Fatalf("/v1/stats = %+v", viaHTTP)
	}

	pushed.waitFor(t, 100, 30*time.Second)
	// /metrics, unauthenticated as Prometheus expects.
	text := scrapeMetrics(t, g.url)
	for _, want := range []string{
		`hookgate_ingress_requests_total{outcome="accepted",provider="generic"} 100`,
		`hookgate_ingress_requests_total{outcome="bad_signature",provider="generic"} 5`,
		`hookgate_ingress_requests_total{outcome="duplicate",provider="generic"} 3`,
		`hookgate_events_acked_total{principal="dev",webhook="obs"} 90`,
		`hookgate_events_nacked_total{principal="dev",webhook="obs"} 5`,
		`hookgate_leases_expired_total{principal="dev",webhook="obs"} 5`,
		`hookgate_processing_latency_seconds_count{principal="dev",webhook="obs"} 90`,
		`hookgate_store_operation_seconds_count{op="append",result="ok"}`,
		`hookgate_subscribers{era="2025-11-25",path="mcp"} 1`,
		`hookgate_push_notifications_total{path="mcp"} 100`,
		`hookgate_queue_depth{principal="dev",webhook="obs"} 10`,
		`hookgate_queue_scrape_errors 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if age := metricValue(t, text, `hookgate_queue_oldest_pending_age_seconds{principal="dev",webhook="obs"}`); age <= 0 || age > 600 {
		t.Errorf("oldest pending age %v s, want the age of the oldest of the 10 pending events", age)
	}
	if strings.Contains(text, "obs-1") || strings.Contains(text, secret) {
		t.Error("/metrics leaks an event ID or a secret")
	}
}

// metricValue returns the value of the sample named exactly series in a
// Prometheus text exposition.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	v, ok := metricSample(text, series)
	if !ok {
		t.Fatalf("/metrics lacks %s", series)
	}
	return v
}

// metricSample is metricValue without a test: ok is false when series is
// absent or its value does not parse.
func metricSample(text, series string) (float64, bool) {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// webhookStats is one webhook's entry of get_stats and /v1/stats, the
// fields these tests check.
type webhookStats struct {
	Label             string   `json:"label"`
	Accepted          int      `json:"accepted"`
	Duplicates        int      `json:"duplicates"`
	BadSignatures     int      `json:"badSignatures"`
	Acked             int      `json:"acked"`
	Nacked            int      `json:"nacked"`
	LeaseExpired      int      `json:"leaseExpired"`
	DeadLettered      int      `json:"deadLettered"`
	ExpiredUnacked    int      `json:"expiredUnacked"`
	Pending           int      `json:"pending"`
	DropRate          *float64 `json:"dropRate"`
	ActionSuccessRate *float64 `json:"actionSuccessRate"`
	ProcessingLatency *struct {
		Count int `json:"count"`
	} `json:"processingLatency"`
}
