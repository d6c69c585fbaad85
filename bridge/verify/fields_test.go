package verify

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestResultFields checks the event type, ID and time each scheme reports,
// per the product contract.
func TestResultFields(t *testing.T) {
	const (
		sq = "https://hooks.example.com/h/sq"
		tw = "https://hooks.example.com/h/tw"
	)
	linearBody := func(typ, action string) string {
		return fmt.Sprintf(`{"action":%q,"type":%q,"createdAt":"2026-11-30T06:30:00.000Z","webhookTimestamp":%d}`, action, typ, testNow.UnixMilli())
	}
	linearCreated := time.Date(2026, 11, 30, 6, 30, 0, 0, time.UTC)
	tests := []struct {
		name   string
		scheme string
		url    string
		extra  []string // headers added after signing
		body   string
		want   Result
	}{
		{name: "generic header id wins", scheme: "generic", extra: []string{"X-Webhook-Id", "hdr-1"},
			body: `{"id":"body-1","type":"order.paid"}`, want: Result{EventType: "order.paid", ProviderEventID: "hdr-1"}},
		{name: "generic body id", scheme: "generic",
			body: `{"id":"body-1","type":"order.paid"}`, want: Result{EventType: "order.paid", ProviderEventID: "body-1"}},
		{name: "generic non-string id and type", scheme: "generic",
			body: `{"id":42,"type":{"name":"x"}}`, want: Result{}},
		{name: "generic non-JSON body", scheme: "generic", body: "hello", want: Result{}},
		{name: "generic empty body", scheme: "generic", body: "", want: Result{}},

		{name: "stripe", scheme: "stripe", body: `{"id":"evt_9","object":"event","type":"invoice.paid"}`,
			want: Result{EventType: "invoice.paid", ProviderEventID: "evt_9", Timestamp: testNow}},
		{name: "stripe created", scheme: "stripe", body: `{"id":"evt_8","object":"event","type":"invoice.paid","created":1700000000}`,
			want: Result{EventType: "invoice.paid", ProviderEventID: "evt_8", Timestamp: testNow, OccurredAt: time.Unix(1700000000, 0)}},

		{name: "github action appended", scheme: "github",
			extra: []string{"X-GitHub-Event", "issues", "X-GitHub-Delivery", "d-1"},
			body:  `{"action":"opened","issue":{"number":1}}`, want: Result{EventType: "issues.opened", ProviderEventID: "d-1"}},
		{name: "github no action", scheme: "github",
			extra: []string{"X-GitHub-Event", "push", "X-GitHub-Delivery", "d-2"},
			body:  `{"ref":"refs/heads/main"}`, want: Result{EventType: "push", ProviderEventID: "d-2"}},
		{name: "github non-string action", scheme: "github",
			extra: []string{"X-GitHub-Event", "push", "X-GitHub-Delivery", "d-3"},
			body:  `{"action":7}`, want: Result{EventType: "push", ProviderEventID: "d-3"}},
		{name: "github form payload", scheme: "github",
			extra: []string{"X-GitHub-Event", "issues", "X-GitHub-Delivery", "d-4", "Content-Type", "application/x-www-form-urlencoded"},
			body:  "payload=%7B%22action%22%3A%22closed%22%7D", want: Result{EventType: "issues.closed", ProviderEventID: "d-4"}},

		{name: "shopify event id wins", scheme: "shopify",
			extra: []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Event-Id", "ev-1", "X-Shopify-Webhook-Id", "wh-1"},
			body:  `{}`, want: Result{EventType: "orders/create", ProviderEventID: "ev-1"}},
		{name: "shopify triggered at", scheme: "shopify",
			extra: []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Event-Id", "ev-2", "X-Shopify-Triggered-At", "2026-11-30T08:00:00.123Z"},
			body:  `{}`, want: Result{EventType: "orders/create", ProviderEventID: "ev-2", OccurredAt: time.Date(2026, 11, 30, 8, 0, 0, 123e6, time.UTC)}},
		{name: "shopify webhook id", scheme: "shopify",
			extra: []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Webhook-Id", "wh-1"},
			body:  `{}`, want: Result{EventType: "orders/create", ProviderEventID: "wh-1"}},

		{name: "zendesk event", scheme: "zendesk", extra: []string{"X-Zendesk-Webhook-Invocation-Id", "inv-1"},
			body: `{"id":"z-1","type":"zen:event-type:ticket.created","time":"2026-11-30T07:59:58Z"}`,
			want: Result{EventType: "zen:event-type:ticket.created", ProviderEventID: "z-1", Timestamp: testNow, OccurredAt: time.Date(2026, 11, 30, 7, 59, 58, 0, time.UTC)}},
		{name: "zendesk trigger", scheme: "zendesk", extra: []string{"X-Zendesk-Webhook-Invocation-Id", "inv-1"},
			body: `{"ticket":"123"}`, want: Result{ProviderEventID: "inv-1", Timestamp: testNow}},

		{name: "slack url_verification", scheme: "slack",
			body: `{"token":"t","challenge":"c","type":"url_verification"}`,
			want: Result{EventType: "url_verification", Timestamp: testNow}},
		{name: "slack event_callback", scheme: "slack",
			body: `{"type":"event_callback","event_id":"Ev1","event_time":1700000001,"event":{"type":"app_mention","text":"hi"}}`,
			want: Result{EventType: "app_mention", ProviderEventID: "Ev1", Timestamp: testNow, OccurredAt: time.Unix(1700000001, 0)}},
		{name: "slack event_callback without event", scheme: "slack",
			body: `{"type":"event_callback","event_id":"Ev2"}`,
			want: Result{EventType: "event_callback", ProviderEventID: "Ev2", Timestamp: testNow}},
		{name: "slack interactivity", scheme: "slack",
			extra: []string{"Content-Type", "application/x-www-form-urlencoded"},
			body:  "payload=%7B%22type%22%3A%22block_actions%22%2C%22trigger_id%22%3A%221.2%22%7D",
			want:  Result{EventType: "block_actions", Timestamp: testNow}},
		{name: "slack slash command", scheme: "slack",
			extra: []string{"Content-Type", "application/x-www-form-urlencoded"},
			body:  "token=x&team_id=T1&command=%2Fweather&text=paris",
			want:  Result{EventType: "slash_command", Timestamp: testNow}},

		{name: "standard-webhooks", scheme: "standard-webhooks", body: `{"type":"user.created","timestamp":"2026-11-30T07:00:00Z","data":{}}`,
			want: Result{EventType: "user.created", ProviderEventID: testID, Timestamp: testNow, OccurredAt: time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC)}},
		{name: "svix", scheme: "svix", body: `{"type":"user.created","data":{}}`,
			want: Result{EventType: "user.created", ProviderEventID: testID, Timestamp: testNow}},

		{name: "twilio message status", scheme: "twilio", url: tw,
			body: "MessageSid=SM1&MessageStatus=delivered&AccountSid=AC1",
			want: Result{EventType: "message.delivered", ProviderEventID: "SM1:delivered"}},
		{name: "twilio inbound sms", scheme: "twilio", url: tw,
			body: "MessageSid=SM2&SmsStatus=received&Body=hello",
			want: Result{EventType: "message.received", ProviderEventID: "SM2:received"}},
		{name: "twilio call", scheme: "twilio", url: tw,
			body: "CallSid=CA1&CallStatus=ringing",
			want: Result{EventType: "call.ringing"}},
		{name: "twilio idempotency token wins", scheme: "twilio", url: tw,
			extra: []string{"I-Twilio-Idempotency-Token", "tok-1"},
			body:  "CallSid=CA1&CallStatus=completed",
			want:  Result{EventType: "call.completed", ProviderEventID: "tok-1"}},
		{name: "twilio message without status", scheme: "twilio", url: tw,
			body: "MessageSid=SM3&Body=hi", want: Result{EventType: "message", ProviderEventID: "SM3"}},
		{name: "twilio unknown form", scheme: "twilio", url: tw, body: "Foo=bar", want: Result{}},

		{name: "linear type and action", scheme: "linear", extra: []string{"Linear-Delivery", "ld-1", "Linear-Event", "Issue"},
			body: linearBody("Issue", "update"), want: Result{EventType: "Issue.update", ProviderEventID: "ld-1", Timestamp: testNow, OccurredAt: linearCreated}},
		{name: "linear header type", scheme: "linear", extra: []string{"Linear-Delivery", "ld-2", "Linear-Event", "Comment"},
			body: linearBody("", "remove"), want: Result{EventType: "Comment.remove", ProviderEventID: "ld-2", Timestamp: testNow, OccurredAt: linearCreated}},

		{name: "intercom", scheme: "intercom",
			body: `{"type":"notification_event","id":"notif_1","topic":"conversation.user.created","created_at":1407993600}`,
			want: Result{EventType: "conversation.user.created", ProviderEventID: "notif_1", Timestamp: time.Unix(1407993600, 0), OccurredAt: time.Unix(1407993600, 0)}},

		{name: "pagerduty", scheme: "pagerduty", extra: []string{"X-Webhook-Id", "pd-1"},
			body: `{"event":{"id":"E1","event_type":"incident.triggered","occurred_at":"2026-01-02T03:04:05.5Z"}}`,
			want: Result{EventType: "incident.triggered", ProviderEventID: "pd-1", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC), OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC)}},
		{name: "pagerduty bad time", scheme: "pagerduty", extra: []string{"X-Webhook-Id", "pd-2"},
			body: `{"event":{"event_type":"incident.resolved","occurred_at":"yesterday"}}`,
			want: Result{EventType: "incident.resolved", ProviderEventID: "pd-2"}},

		{name: "square", scheme: "square", url: sq,
			body: `{"merchant_id":"M","type":"payment.created","event_id":"e-1","created_at":"2022-07-13T20:30:59.037339943Z"}`,
			want: Result{EventType: "payment.created", ProviderEventID: "e-1", Timestamp: time.Date(2022, 7, 13, 20, 30, 59, 37339943, time.UTC), OccurredAt: time.Date(2022, 7, 13, 20, 30, 59, 37339943, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			h := testSigners[tt.scheme](secretA, tt.url, body, testNow, nil)
			for i := 0; i+1 < len(tt.extra); i += 2 {
				h.Set(tt.extra[i], tt.extra[i+1])
			}
			res, err := Verify(tt.scheme, []string{secretA}, tt.url, h, body, testNow)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, res, tt.want)
		})
	}
}

// verifyErr is a table entry for the scheme-specific rejection tests.
type verifyErr struct {
	name    string
	scheme  string
	url     string
	secrets []string
	header  http.Header
	body    string
	now     time.Time
	opts    Options
	want    error // nil means valid
}

// runVerifyErrs runs tests against scheme; an entry's empty scheme or body
// takes the given default.
func runVerifyErrs(t *testing.T, tests []verifyErr, scheme, body string) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.scheme == "" {
				tt.scheme = scheme
			}
			if tt.body == "" {
				tt.body = body
			}
			if tt.secrets == nil {
				tt.secrets = []string{secretA}
			}
			if tt.now.IsZero() {
				tt.now = testNow
			}
			_, err := tt.opts.Verify(tt.scheme, tt.secrets, tt.url, tt.header, []byte(tt.body), tt.now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
