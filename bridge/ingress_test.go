package bridge_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
)

// fixedNow is the clock of these tests: signatures carry timestamps.
var fixedNow = time.Date(2026, 11, 25, 6, 40, 0, 0, time.UTC)

// env is an Inbox on a real bbolt file served over real loopback HTTP.
type env struct {
	store store.Store
	inbox *bridge.Inbox
	srv   *httptest.Server
}

func newEnv(t *testing.T, wrap func(store.Store) store.Store) *env {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if wrap != nil {
		st = wrap(st)
	}
	mux := http.NewServeMux()
	e := &env{store: st}
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.inbox = bridge.New(st, bridge.Options{PublicURL: e.srv.URL, MaxBody: 1024, Now: func() time.Time { return fixedNow }})
	mux.Handle("/hooks/{id}", e.inbox)
	return e
}

func (e *env) register(t *testing.T, principal string, req bridge.RegisterRequest) store.Registration {
	t.Helper()
	reg, err := e.inbox.Register(context.Background(), principal, req)
	if err != nil {
		t.Fatalf("register %+v: %v", req, err)
	}
	return reg
}

// send POSTs (or another method) and returns the status, headers and body.
func (e *env) send(t *testing.T, method, path string, header http.Header, body io.Reader) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (e *env) storedCount(t *testing.T, principal string) int {
	t.Helper()
	events, err := e.store.Read(context.Background(), principal, store.Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(events)
}

func hexHMAC(secret, msg string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(msg))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestIngressRefusalsStoreNothing(t *testing.T) {
	e := newEnv(t, nil)
	generic := e.register(t, "p", bridge.RegisterRequest{Label: "g", Secrets: []string{"s3cret"}})
	stripe := e.register(t, "p", bridge.RegisterRequest{Label: "st", Provider: "stripe", Secrets: []string{"whsec_abc"}})
	deleted := e.register(t, "p", bridge.RegisterRequest{Label: "gone"})
	if err := e.inbox.Delete(context.Background(), "p", "gone"); err != nil {
		t.Fatal(err)
	}
	body := `{"id":"x1","type":"t"}`
	big := strings.Repeat("x", 2048)
	staleTS := strconv.FormatInt(fixedNow.Add(-10*time.Minute).Unix(), 10)

	cases := []struct {
		name   string
		method string
		path   string
		header http.Header
		body   io.Reader
		status int
	}{
		{"unknown registration", "POST", "/hooks/wh_nope", nil, strings.NewReader(body), 404},
		{"deleted registration", "POST", "/hooks/" + deleted.ID, nil, strings.NewReader(body), 410},
		{"missing signature", "POST", "/hooks/" + generic.ID, nil, strings.NewReader(body), 401},
		{"wrong signature", "POST", "/hooks/" + generic.ID, http.Header{"X-Webhook-Signature": {hexHMAC("other", body)}}, strings.NewReader(body), 401},
		{"signature of another body", "POST", "/hooks/" + generic.ID, http.Header{"X-Webhook-Signature": {hexHMAC("s3cret", body)}}, strings.NewReader(`{"id":"x2"}`), 401},
		{"stale stripe timestamp", "POST", "/hooks/" + stripe.ID, http.Header{"Stripe-Signature": {"t=" + staleTS + ",v1=" + hexHMAC("whsec_abc", staleTS+"."+body)}}, strings.NewReader(body), 401},
		{"body over the limit with length", "POST", "/hooks/" + generic.ID, http.Header{"X-Webhook-Signature": {hexHMAC("s3cret", big)}}, strings.NewReader(big), 413},
		{"body over the limit chunked", "POST", "/hooks/" + generic.ID, http.Header{"X-Webhook-Signature": {hexHMAC("s3cret", big)}}, io.MultiReader(strings.NewReader(big)), 413},
		{"GET without handshake", "GET", "/hooks/" + generic.ID, nil, nil, 405},
		{"PUT", "PUT", "/hooks/" + generic.ID, nil, strings.NewReader(body), 405},
	}
	for _, c := range cases {
		status, _, text := e.send(t, c.method, c.path, c.header, c.body)
		if status != c.status {
			t.Errorf("%s: status %d (%s), want %d", c.name, status, text, c.status)
		}
		if !strings.Contains(text, `"error"`) {
			t.Errorf("%s: body %q has no error message", c.name, text)
		}
	}
	if n := e.storedCount(t, "p"); n != 0 {
		t.Fatalf("refused requests stored %d events", n)
	}

	// A good one after all that is stored, with the ID the answer names.
	status, _, text := e.send(t, "POST", "/hooks/"+generic.ID, http.Header{"X-Webhook-Signature": {"sha256=" + hexHMAC("s3cret", body)}}, strings.NewReader(body))
	var ok struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.Unmarshal([]byte(text), &ok); status != 200 || err != nil || ok.Duplicate {
		t.Fatalf("valid POST: %d %s", status, text)
	}
	events, _ := e.store.Read(context.Background(), "p", store.Query{})
	if len(events) != 1 || events[0].ID.String() != ok.ID || events[0].ProviderEventID != "x1" || events[0].Type != "t" || !events[0].ReceivedAt.Equal(fixedNow) {
		t.Fatalf("stored %+v, answered %s", events, text)
	}
}

// appendFails is the real store whose Append fails, as on a full disk.
type appendFails struct{ store.Store }

func (appendFails) Append(context.Context, store.NewEvent) (store.AppendResult, error) {
	return store.AppendResult{}, fmt.Errorf("append event: %w", store.ErrUnavailable)
}

func TestIngressStoreFailureIs503WithRetryAfter(t *testing.T) {
	e := newEnv(t, func(s store.Store) store.Store { return appendFails{s} })
	reg := e.register(t, "p", bridge.RegisterRequest{Label: "g", Secrets: []string{"k"}})
	body := `{"id":"a"}`
	status, header, _ := e.send(t, "POST", "/hooks/"+reg.ID, http.Header{"X-Webhook-Signature": {hexHMAC("k", body)}}, strings.NewReader(body))
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
		t.Fatalf("append failure: %d Retry-After %q, want 503 with Retry-After", status, header.Get("Retry-After"))
	}
	if n := e.storedCount(t, "p"); n != 0 {
		t.Fatalf("stored %d events after a failed append", n)
	}

	// A store that is gone altogether (closed) answers 503 too, never 2xx or 404.
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	status, header, _ = e.send(t, "POST", "/hooks/"+reg.ID, http.Header{"X-Webhook-Signature": {hexHMAC("k", body)}}, strings.NewReader(body))
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
		t.Fatalf("closed store: %d, want 503 with Retry-After", status)
	}
}

// deletedMidRequest is the real store with a delete that lands between
// ingress's registration lookup and its append, as when a principal deletes
// a webhook while a provider's POST is in flight.
type deletedMidRequest struct {
	store.Store
	principal, label string
}

func (s deletedMidRequest) Append(ctx context.Context, e store.NewEvent) (store.AppendResult, error) {
	if err := s.DeleteRegistration(ctx, s.principal, s.label); err != nil {
		return store.AppendResult{}, err
	}
	return s.Store.Append(ctx, e)
}

func TestIngressDeleteRacingAppendIs410(t *testing.T) {
	e := newEnv(t, func(s store.Store) store.Store { return deletedMidRequest{s, "p", "g"} })
	reg := e.register(t, "p", bridge.RegisterRequest{Label: "g", Secrets: []string{"k"}})
	body := `{"id":"a"}`
	status, header, text := e.send(t, "POST", "/hooks/"+reg.ID, http.Header{"X-Webhook-Signature": {hexHMAC("k", body)}}, strings.NewReader(body))
	if status != http.StatusGone || header.Get("Retry-After") != "" {
		t.Fatalf("append after a racing delete: %d Retry-After %q %s, want 410 and no Retry-After", status, header.Get("Retry-After"), text)
	}
	if n := e.storedCount(t, "p"); n != 0 {
		t.Fatalf("stored %d events for a deleted webhook", n)
	}
}

func TestSlackURLVerification(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.register(t, "p", bridge.RegisterRequest{Label: "slack", Provider: "slack", Secrets: []string{"slack-signing"}})
	body := `{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	ts := strconv.FormatInt(fixedNow.Unix(), 10)
	signed := http.Header{"X-Slack-Request-Timestamp": {ts}, "X-Slack-Signature": {"v0=" + hexHMAC("slack-signing", "v0:"+ts+":"+body)}, "Content-Type": {"application/json"}}
	status, _, text := e.send(t, "POST", "/hooks/"+reg.ID, signed, strings.NewReader(body))
	if status != 200 || !strings.Contains(text, `"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"`) {
		t.Fatalf("url_verification: %d %s", status, text)
	}
	unsigned := http.Header{"X-Slack-Request-Timestamp": {ts}, "X-Slack-Signature": {"v0=" + hexHMAC("wrong", "v0:"+ts+":"+body)}}
	if status, _, _ := e.send(t, "POST", "/hooks/"+reg.ID, unsigned, strings.NewReader(body)); status != 401 {
		t.Fatalf("unsigned url_verification: %d, want 401", status)
	}
	if n := e.storedCount(t, "p"); n != 0 {
		t.Fatalf("a handshake stored %d events", n)
	}
}

func TestHubChallenge(t *testing.T) {
	e := newEnv(t, nil)
	withToken := e.register(t, "p", bridge.RegisterRequest{Label: "meta", Provider: "github", VerifyToken: "let-me-in"})
	without := e.register(t, "p", bridge.RegisterRequest{Label: "plain"})
	status, _, text := e.send(t, "GET", "/hooks/"+withToken.ID+"?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=let-me-in", nil, nil)
	if status != 200 || text != "1158201444" {
		t.Fatalf("matching verify token: %d %q", status, text)
	}
	for _, path := range []string{
		"/hooks/" + withToken.ID + "?hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope",
		"/hooks/" + without.ID + "?hub.mode=subscribe&hub.challenge=1&hub.verify_token=",
	} {
		if status, _, _ := e.send(t, "GET", path, nil, nil); status != http.StatusForbidden {
			t.Errorf("GET %s: %d, want 403", path, status)
		}
	}
}

func TestPayloadShapes(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.register(t, "p", bridge.RegisterRequest{Label: "g", Secrets: []string{"k"}})
	cases := []struct {
		contentType, body, want string
	}{
		{"application/json", `{"b": "<&>", "a": [1, 2]}`, `{"b": "<&>", "a": [1, 2]}`},
		{"application/x-www-form-urlencoded", "From=%2B15551234&Body=hi", `{"Body":"hi","From":"+15551234"}`},
		{"application/octet-stream", "\x00\x01binary", `{"contentType":"application/octet-stream","base64":"AAFiaW5hcnk="}`},
	}
	for i, c := range cases {
		h := http.Header{"Content-Type": {c.contentType}, "X-Webhook-Signature": {hexHMAC("k", c.body)}, "X-Webhook-Id": {strconv.Itoa(i)}}
		if status, _, text := e.send(t, "POST", "/hooks/"+reg.ID, h, strings.NewReader(c.body)); status != 200 {
			t.Fatalf("%s: %d %s", c.contentType, status, text)
		}
	}
	events, err := e.store.Read(context.Background(), "p", store.Query{})
	if err != nil || len(events) != len(cases) {
		t.Fatalf("read: %v, %d events", err, len(events))
	}
	for i, c := range cases {
		if got := string(events[i].Payload); got != c.want {
			t.Errorf("%s payload %s, want %s", c.contentType, got, c.want)
		}
	}
}

// leaseSignals is the real store that reports each empty lease, so a test
// knows a long poll is waiting before it POSTs.
type leaseSignals struct {
	store.Store
	empty chan struct{}
}

func (s leaseSignals) Lease(ctx context.Context, principal string, q store.LeaseQuery) (store.LeaseResult, error) {
	res, err := s.Store.Lease(ctx, principal, q)
	if err == nil && len(res.Events) == 0 {
		select {
		case s.empty <- struct{}{}:
		default:
		}
	}
	return res, err
}

// TestLeaseWaitReturnsWhenAnEventArrives: a waiting long poll is woken by
// the append itself. Rechecks are an hour apart here, so without the
// wake-up the poll would run to MaxWait and return nothing.
func TestLeaseWaitReturnsWhenAnEventArrives(t *testing.T) {
	empty := make(chan struct{}, 1)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	inbox := bridge.New(leaseSignals{st, empty}, bridge.Options{Now: func() time.Time { return fixedNow }, Recheck: time.Hour})
	reg, err := inbox.Register(context.Background(), "p", bridge.RegisterRequest{Label: "g", Secrets: []string{"k"}})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		res store.LeaseResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := inbox.Lease(context.Background(), "p", bridge.LeaseRequest{Limit: 10, Wait: bridge.MaxWait})
		done <- result{res, err}
	}()
	select {
	case <-empty: // the poll found nothing and is about to wait
	case <-time.After(10 * time.Second):
		t.Fatal("long poll never leased")
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/{id}", inbox)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body := `{"id":"late"}`
	req, _ := http.NewRequest("POST", srv.URL+"/hooks/"+reg.ID, strings.NewReader(body))
	req.Header.Set("X-Webhook-Signature", hexHMAC("k", body))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST: %v %v", resp, err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.res.Events) != 1 || r.res.Events[0].ProviderEventID != "late" {
			t.Fatalf("long poll returned %+v, %v; want the event the append woke it for", r.res, r.err)
		}
	case <-time.After(bridge.MaxWait + 5*time.Second):
		t.Fatal("long poll never returned")
	}
}

func TestRegisterRules(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	first := e.register(t, "p", bridge.RegisterRequest{Label: "orders", Provider: "stripe"})
	if len(first.Secrets) != 1 || !strings.HasPrefix(first.Secrets[0], "whsec_") {
		t.Fatalf("generated secrets %v", first.Secrets)
	}
	rotated := e.register(t, "p", bridge.RegisterRequest{Label: "orders", Secrets: []string{"old", "new"}})
	if rotated.ID != first.ID || rotated.Provider != "stripe" || strings.Join(rotated.Secrets, ",") != "old,new" {
		t.Fatalf("update kept %+v", rotated)
	}
	for _, bad := range []bridge.RegisterRequest{
		{Label: ""}, {Label: "has space"}, {Label: "-lead"}, {Label: strings.Repeat("a", 65)},
		{Label: "x", Provider: "paypal"},
		{Label: "orders", Provider: "github"}, // provider change
		{Label: "y", Secrets: []string{""}},
	} {
		if _, err := e.inbox.Register(ctx, "p", bad); !errors.Is(err, bridge.ErrInvalid) {
			t.Errorf("Register(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := e.inbox.Lease(ctx, "p", bridge.LeaseRequest{Label: "no-such-label", Limit: 10}); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "no-such-label") {
		t.Fatalf("lease of an unknown label: %v", err)
	}
	if _, err := e.inbox.Ack(ctx, "p", []string{"not-an-id"}); !errors.Is(err, bridge.ErrInvalid) || !strings.Contains(err.Error(), "not-an-id") {
		t.Fatalf("ack of a malformed id: %v", err)
	}
}

// ctxKey marks a request's context in TestIngressWarningsCarryTheRequestContext.
type ctxKey struct{}

// contextRecorder is a slog.Handler that keeps, per message, the ctxKey value
// of the context the record was logged with.
type contextRecorder struct {
	mu   *sync.Mutex
	seen map[string]any
}

func (h contextRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h contextRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h contextRecorder) WithGroup(string) slog.Handler            { return h }
func (h contextRecorder) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[r.Message] = ctx.Value(ctxKey{})
	return nil
}

// TestIngressWarningsCarryTheRequestContext: a store failure's warning is
// logged with the request's context, which is where the server's log
// handler finds the request ID an operator searches by.
func TestIngressWarningsCarryTheRequestContext(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rec := contextRecorder{mu: &sync.Mutex{}, seen: map[string]any{}}
	inbox := bridge.New(appendFails{st}, bridge.Options{Logger: slog.New(rec)})
	reg, err := inbox.Register(context.Background(), "p", bridge.RegisterRequest{Label: "g", Secrets: []string{"k"}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/{id}", inbox)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "req-7")))
	}))
	defer srv.Close()
	body := `{"id":"a"}`
	req, _ := http.NewRequest("POST", srv.URL+"/hooks/"+reg.ID, strings.NewReader(body))
	req.Header.Set("X-Webhook-Signature", hexHMAC("k", body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := rec.seen["webhook: append event"]; got != "req-7" {
		t.Errorf("append warning logged with context value %v, want the request's (req-7); logged: %v", got, rec.seen)
	}
}

// webhookReports records the ingress reports of an Inbox; the embedded
// Observer is nil, so any other call fails the test loudly.
type webhookReports struct {
	bridge.Observer
	reports chan bridge.WebhookReport
}

func (w webhookReports) Webhook(r bridge.WebhookReport) { w.reports <- r }

// TestIngressEventTimeIsWhenItHappened: delivery latency is measured from
// the event time the provider states (Stripe's created), not from its
// signing time, which a provider renews on every retry.
func TestIngressEventTimeIsWhenItHappened(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	obs := webhookReports{reports: make(chan bridge.WebhookReport, 4)}
	inbox := bridge.New(st, bridge.Options{Now: func() time.Time { return fixedNow }, Observer: obs})
	mux := http.NewServeMux()
	mux.Handle("/hooks/{id}", inbox)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	reg, err := inbox.Register(context.Background(), "p", bridge.RegisterRequest{Label: "pay", Provider: "stripe", Secrets: []string{"whsec_k"}})
	if err != nil {
		t.Fatal(err)
	}
	happened := fixedNow.Add(-90 * time.Second)
	ts := strconv.FormatInt(fixedNow.Unix(), 10)
	for _, c := range []struct {
		body string
		want time.Time
	}{
		{fmt.Sprintf(`{"id":"evt_1","type":"invoice.paid","created":%d}`, happened.Unix()), happened},
		{`{"id":"evt_2","type":"invoice.paid"}`, fixedNow}, // no created: the signing time
	} {
		sig := http.Header{"Stripe-Signature": {"t=" + ts + ",v1=" + hexHMAC("whsec_k", ts+"."+c.body)}}
		req, _ := http.NewRequest("POST", srv.URL+"/hooks/"+reg.ID, strings.NewReader(c.body))
		req.Header = sig
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var r bridge.WebhookReport
		select {
		case r = <-obs.reports:
		case <-time.After(10 * time.Second):
			t.Fatal("no ingress report")
		}
		if r.Outcome != bridge.OutcomeAccepted || !r.EventTime.Equal(c.want) {
			t.Errorf("%s: outcome %s, event time %v, want accepted at %v", c.body, r.Outcome, r.EventTime, c.want)
		}
	}
}
