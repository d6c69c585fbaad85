package subscribe_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
	"github.com/hookgate/hookgate/compat"
	"github.com/hookgate/hookgate/subscribe"
)

// eventsEnv is the whole /mcp stack in process, over real loopback HTTP: a
// bbolt store, the inbox, one MCP server per principal, the SDK handlers,
// GuardStreams and the Events extension, behind bearer tokens "tok-<name>"
// for principal <name>. Tests speak raw HTTP to it, so the SDK client can
// hide nothing.
type eventsEnv struct {
	t      *testing.T
	store  store.Store
	inbox  *bridge.Inbox
	events *subscribe.Events
	srv    *httptest.Server
	dns    *fakeDNS
}

// harnessOptions are the extension's options in these tests: short
// timeouts and retries, so every check runs in well under a second.
func harnessOptions() subscribe.EventsOptions {
	return subscribe.EventsOptions{
		AllowLocalCallbacks: true,
		Heartbeat:           150 * time.Millisecond,
		PageSize:            2,
		CallbackTimeout:     time.Second,
		RetryDelay:          10 * time.Millisecond,
		MaxAttempts:         4,
		MinTTL:              400 * time.Millisecond,
		SecretGrace:         time.Second,
		MaxSubscriptions:    3,
	}
}

func newEventsEnv(t *testing.T, tweak func(*subscribe.EventsOptions)) *eventsEnv {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return startEventsEnv(t, st, tweak)
}

// startEventsEnv serves the stack over st; cleanup stops it, and closes st.
func startEventsEnv(t *testing.T, st store.Store, tweak func(*subscribe.EventsOptions)) *eventsEnv {
	t.Helper()
	env := &eventsEnv{t: t, store: st, dns: &fakeDNS{answers: map[string][]string{}}}
	env.inbox = bridge.New(st, bridge.Options{PublicURL: "http://hookgate.test"})
	opts := harnessOptions()
	opts.Log, opts.Wake, opts.Resolver = st, env.inbox.Wakeups(), env.dns
	opts.Dial = subscribe.LoopbackOnly(t)
	if tweak != nil {
		tweak(&opts)
	}
	var servers *subscribe.Servers // made below, before any request
	opts.HasSession = func(principal, id string) bool { return servers.HasSession(principal, id) }
	ev, err := subscribe.NewEvents(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	env.events = ev
	var handler *compat.Handler
	servers = subscribe.NewServers(subscribe.ServersOptions{
		Implementation: &mcp.Implementation{Name: "hookgate-test", Version: "1"},
		Log:            st,
		Wake:           env.inbox.Wakeups(),
		Extensions:     ev.Extensions(),
		Configure: func(principal string, m *mcp.Server) {
			compat.AddTools(m, env.inbox)
			m.AddReceivingMiddleware(handler.EndListensOnShutdown)
			ev.Configure(principal, m)
		},
	})
	handler = compat.NewHandler(servers.ForRequest, compat.HandlerOptions{EventStore: mcp.NewMemoryEventStore(nil)})
	verifier := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		name, ok := strings.CutPrefix(token, "tok-")
		if !ok || name == "" {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: name}, nil
	}
	authed := auth.RequireBearerToken(verifier, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})
	mux := http.NewServeMux()
	mux.Handle("/mcp", authed(subscribe.GuardStreams(ev.Handler(handler), subscribe.GuardOptions{})))
	mux.Handle("/hooks/{id}", env.inbox)
	env.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ev.Shutdown(ctx)
		_ = handler.Shutdown(ctx)
		servers.Each(compat.CloseSessions)
		env.srv.Close()
		servers.Close()
		_ = st.Close()
	})
	return env
}

// register creates a generic webhook registration for principal.
func (env *eventsEnv) register(principal, label string) store.Registration {
	env.t.Helper()
	reg, err := env.inbox.Register(context.Background(), principal, bridge.RegisterRequest{Label: label})
	if err != nil {
		env.t.Fatal(err)
	}
	return reg
}

// publish appends an event of provider type typ to the label's log, as
// ingress would, and returns its hookgate ID.
func (env *eventsEnv) publish(principal, label, typ, providerID string, payload string) store.ID {
	env.t.Helper()
	ctx := context.Background()
	reg, err := env.store.RegistrationByLabel(ctx, principal, label)
	if err != nil {
		env.t.Fatal(err)
	}
	if payload == "" {
		payload = fmt.Sprintf(`{"type":%q}`, typ)
	}
	res, err := env.store.Append(ctx, store.NewEvent{
		Principal: principal, RegistrationID: reg.ID, Label: label, Source: "generic", Type: typ,
		ProviderEventID: providerID, ReceivedAt: time.Now().UTC(), Verified: true, Payload: json.RawMessage(payload),
	})
	if err != nil {
		env.t.Fatal(err)
	}
	env.inbox.Wakeups().Notify(principal)
	return res.ID
}

// subscriptionCount is how many webhook subscriptions the store holds.
func (env *eventsEnv) subscriptionCount() int {
	env.t.Helper()
	subs, err := env.store.Subscriptions(context.Background())
	if err != nil {
		env.t.Fatal(err)
	}
	return len(subs)
}

// rpcMsg is any JSON-RPC message as received.
type rpcMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// obj decodes raw JSON into a map, failing the test if it is not one.
func obj(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return m
}

// modernMeta is the _meta triple every 2026-07-28 request carries.
func modernMeta() map[string]any {
	return map[string]any{
		mcp.MetaKeyProtocolVersion:    "2026-07-28",
		mcp.MetaKeyClientCapabilities: map[string]any{},
		mcp.MetaKeyClientInfo:         map[string]any{"name": "raw", "version": "1"},
	}
}

// modernRequest builds a raw 2026-07-28 POST; params gets the _meta triple
// unless it has a _meta already.
func (env *eventsEnv) modernRequest(ctx context.Context, token string, id any, method string, params map[string]any) *http.Request {
	if params == nil {
		params = map[string]any{}
	}
	if _, ok := params["_meta"]; !ok {
		params["_meta"] = modernMeta()
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.srv.URL+"/mcp", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	if name, ok := params["name"].(string); ok && method == "tools/call" {
		req.Header.Set("Mcp-Name", name)
	}
	return req
}

// call sends a 2026-07-28 request and returns the HTTP status and the
// response message.
func (env *eventsEnv) call(token, method string, params map[string]any) (int, rpcMsg) {
	env.t.Helper()
	return env.do(env.modernRequest(context.Background(), token, 1, method, params))
}

// do sends req and decodes the one response.
func (env *eventsEnv) do(req *http.Request) (int, rpcMsg) {
	env.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		env.t.Fatalf("%s: %v", req.Header.Get("Mcp-Method"), err)
	}
	defer resp.Body.Close()
	return env.decode(resp)
}

// decode reads a response: JSON, or the first response message of an
// event stream.
func (env *eventsEnv) decode(resp *http.Response) (int, rpcMsg) {
	env.t.Helper()
	var msg rpcMsg
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for ev := range eventFrames(resp.Body) {
			if json.Unmarshal([]byte(ev), &msg) == nil && msg.Method == "" {
				break
			}
			msg = rpcMsg{}
		}
		return resp.StatusCode, msg
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &msg); err != nil && resp.StatusCode < 300 {
		env.t.Fatalf("HTTP %d, body %q is not JSON-RPC", resp.StatusCode, raw)
	}
	return resp.StatusCode, msg
}

// mustCall is call that fails the test on an error response.
func (env *eventsEnv) mustCall(token, method string, params map[string]any) map[string]any {
	env.t.Helper()
	status, msg := env.call(token, method, params)
	if status != http.StatusOK || msg.Error != nil {
		env.t.Fatalf("%s(%v): HTTP %d, error %+v", method, params, status, msg.Error)
	}
	return obj(env.t, msg.Result)
}

// callErr is call that expects a JSON-RPC error and returns its code and data.
func (env *eventsEnv) callErr(token, method string, params map[string]any) (int, map[string]any, string) {
	env.t.Helper()
	_, msg := env.call(token, method, params)
	if msg.Error == nil {
		env.t.Fatalf("%s(%v) succeeded with %s; want an error", method, params, msg.Result)
	}
	data := map[string]any{}
	if len(msg.Error.Data) > 0 {
		data = obj(env.t, msg.Error.Data)
	}
	return msg.Error.Code, data, msg.Error.Message + " " + string(msg.Error.Data)
}

// eventFrames yields the data of each Server-Sent Event until the stream ends.
func eventFrames(r io.Reader) func(func(string) bool) {
	return func(yield func(string) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		var data strings.Builder
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if data.Len() > 0 && !yield(data.String()) {
					return
				}
				data.Reset()
			case strings.HasPrefix(line, "data:"):
				data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			}
		}
	}
}

// legacySession is a raw 2025-11-25 session.
type legacySession struct {
	env   *eventsEnv
	token string
	id    string
	init  rpcMsg // the initialize response
	next  int
}

func (env *eventsEnv) legacy(token string) *legacySession {
	env.t.Helper()
	s := &legacySession{env: env, token: token}
	status, msg := s.call("initialize", map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "raw-legacy", "version": "1"},
	})
	if status != http.StatusOK || msg.Error != nil || s.id == "" {
		env.t.Fatalf("initialize: HTTP %d %+v, session %q", status, msg.Error, s.id)
	}
	s.init = msg
	body := []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/mcp", bytes.NewReader(body))
	s.header(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		env.t.Fatal(err)
	}
	resp.Body.Close()
	return s
}

func (s *legacySession) header(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
}

func (s *legacySession) request(ctx context.Context, method string, params any) *http.Request {
	s.next++
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": s.next, "method": method, "params": params})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.env.srv.URL+"/mcp", bytes.NewReader(body))
	s.header(req)
	return req
}

func (s *legacySession) call(method string, params any) (int, rpcMsg) {
	s.env.t.Helper()
	resp, err := http.DefaultClient.Do(s.request(context.Background(), method, params))
	if err != nil {
		s.env.t.Fatal(err)
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		s.id = id
	}
	return s.env.decode(resp)
}

// fakeDNS answers the names a test gives it, so no lookup leaves the
// machine; other names fail as unknown.
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][]string
	lookups atomic.Int64
}

func (d *fakeDNS) set(host string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answers[host] = addrs
}

// LookupNetIP implements subscribe.Resolver.
func (d *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	d.lookups.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []netip.Addr
	for _, a := range d.answers[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// newSecret returns a whsec_ secret of n random bytes.
func newSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// errTimeout marks a waitFor that ran out of time.
var errTimeout = errors.New("timed out")

// waitFor polls cond against a deadline.
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		time.Sleep(5 * time.Millisecond) // polling against a deadline
	}
	if cond() {
		return nil
	}
	return errTimeout
}

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// challenge returns the verification nonce of a challenge body, or "".
func (r received) challenge() string {
	var v struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}
	if json.Unmarshal(r.body, &v) != nil || v.Type != "verification" {
		return ""
	}
	return v.Challenge
}

// receiver is a webhook callback on loopback that records every request.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	// answer returns the status and body for a request; nil echoes
	// challenges and answers everything else 200.
	answer func(r received) (int, string)

	mu   sync.Mutex
	reqs []received
}

func newReceiver(t *testing.T, answer func(received) (int, string)) *receiver {
	t.Helper()
	rc := &receiver{t: t, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	got := received{header: r.Header.Clone(), body: body, at: time.Now()}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, got)
	rc.mu.Unlock()
	status, text := http.StatusOK, ""
	if rc.answer != nil {
		status, text = rc.answer(got)
	} else if c := got.challenge(); c != "" {
		text = echoBody(c)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

// echoBody is the right answer to a challenge.
func echoBody(challenge string) string {
	b, _ := json.Marshal(map[string]string{"challenge": challenge})
	return string(b)
}

// url is the receiver's URL with path.
func (rc *receiver) url(path string) string { return rc.srv.URL + path }

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// deliveries are the requests that were not challenges.
func (rc *receiver) deliveries() []received {
	var out []received
	for _, r := range rc.requests() {
		if r.challenge() == "" {
			out = append(out, r)
		}
	}
	return out
}

// waitDeliveries waits for at least n deliveries.
func (rc *receiver) waitDeliveries(n int) []received {
	rc.t.Helper()
	if err := waitFor(10*time.Second, func() bool { return len(rc.deliveries()) >= n }); err != nil {
		rc.t.Fatalf("%d deliveries within 10s, want %d", len(rc.deliveries()), n)
	}
	return rc.deliveries()
}

// subParams are events/subscribe parameters as ChatGPT sends them.
func subParams(name string, args map[string]any, url, secret string) map[string]any {
	if args == nil {
		args = map[string]any{}
	}
	return map[string]any{
		"name": name, "arguments": args, "cursor": nil,
		"delivery": map[string]any{"mode": "webhook", "url": url, "secret": secret},
	}
}

// occurrenceOf decodes a delivery body.
func occurrenceOf(t *testing.T, r received) map[string]any {
	t.Helper()
	return obj(t, r.body)
}

// hookgateID is the _meta["hookgate/id"] of an occurrence.
func hookgateID(t *testing.T, o map[string]any) string {
	t.Helper()
	meta, _ := o["_meta"].(map[string]any)
	id, _ := meta["hookgate/id"].(string)
	if id == "" {
		t.Fatalf("occurrence %v has no _meta hookgate/id", o)
	}
	return id
}
