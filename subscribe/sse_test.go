package subscribe_test

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
	"github.com/hookgate/hookgate/subscribe"
)

// wait bounds every wait of these tests; none takes it unless broken.
const wait = 10 * time.Second

// principalHeader carries the test's caller; the real server authenticates
// a bearer token instead.
const principalHeader = "X-Test-Principal"

// nameHeader names a feed request, so a test can wait for its handler.
const nameHeader = "X-Test-Name"

// testClock is the shared clock of the store (which dates IDs), the inbox
// and the feeds, moved by hand so "from now" is exact.
type testClock struct{ ms atomic.Int64 }

func (c *testClock) now() time.Time   { return time.UnixMilli(c.ms.Load()).UTC() }
func (c *testClock) advance(ms int64) { c.ms.Add(ms) }

// feedEnv is a real bbolt store, an inbox and both feeds over real
// loopback HTTP.
type feedEnv struct {
	store    store.Store
	inbox    *bridge.Inbox
	clock    *testClock
	srv      *httptest.Server
	client   *http.Client // the server's: HTTP/2 over TLS with envOptions.http2
	handlers *tracker
	metrics  *feedMetrics // the feeds' subscribe.Metrics
	sse      *subscribe.SSEHandler
	stopping context.Context // FeedOptions.Stopping
	stop     context.CancelFunc
}

// envOptions varies a feedEnv.
type envOptions struct {
	tweak func(*subscribe.FeedOptions)
	// wrap, if set, wraps the feed handlers, inside the tracker.
	wrap func(http.Handler) http.Handler
	// http2 serves HTTP/2 over TLS instead of plain HTTP/1.1.
	http2 bool
}

func newFeedEnv(t *testing.T, tweak func(*subscribe.FeedOptions)) *feedEnv {
	t.Helper()
	return newFeedEnvWith(t, envOptions{tweak: tweak})
}

func newFeedEnvWith(t *testing.T, eo envOptions) *feedEnv {
	t.Helper()
	tweak := eo.tweak
	wrap := eo.wrap
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	clock := &testClock{}
	clock.ms.Store(time.Date(2026, 11, 25, 6, 40, 0, 0, time.UTC).UnixMilli())
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	e := &feedEnv{store: st, clock: clock, handlers: newTracker(), metrics: &feedMetrics{}}
	e.stopping, e.stop = context.WithCancel(context.Background())
	t.Cleanup(e.stop)
	e.inbox = bridge.New(st, bridge.Options{Now: clock.now})
	opts := subscribe.FeedOptions{
		Log:       st,
		Wake:      e.inbox.Wakeups(),
		Principal: func(r *http.Request) string { return r.Header.Get(principalHeader) },
		Labels: func(ctx context.Context, principal, label string) error {
			_, err := st.RegistrationByLabel(ctx, principal, label)
			return err
		},
		Acker:    e.inbox,
		Now:      clock.now,
		Stopping: e.stopping,
		Metrics:  e.metrics,
	}
	if tweak != nil {
		tweak(&opts)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/{id}", e.inbox)
	e.sse = subscribe.NewSSEHandler(opts)
	mux.Handle("GET /v1/stream", e.handlers.wrap(wrap(e.sse)))
	mux.Handle("GET /v1/ws", e.handlers.wrap(wrap(subscribe.NewWebSocketHandler(opts))))
	e.srv = httptest.NewUnstartedServer(mux)
	// A small send buffer on the server's side makes a reader that stops
	// reading block the server's writes after kilobytes, not megabytes.
	e.srv.Listener = smallSendBuffer{e.srv.Listener}
	if eo.http2 {
		e.srv.EnableHTTP2 = true
		e.srv.StartTLS()
	} else {
		e.srv.Start()
	}
	e.client = e.srv.Client()
	t.Cleanup(func() {
		e.srv.CloseClientConnections()
		e.srv.Close()
		_ = st.Close()
	})
	return e
}

type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

func (e *feedEnv) register(t *testing.T, principal, label string) store.Registration {
	t.Helper()
	reg, err := e.inbox.Register(context.Background(), principal, bridge.RegisterRequest{Label: label})
	if err != nil {
		t.Fatalf("register %s/%s: %v", principal, label, err)
	}
	return reg
}

// appendEvents stores n events on reg, concurrently so that group commit
// keeps it fast, wakes the feeds, and returns the IDs in order.
func (e *feedEnv) appendEvents(t *testing.T, reg store.Registration, n int, payload string) []string {
	t.Helper()
	ids, err := e.tryAppendEvents(reg, n, payload)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// tryAppendEvents is appendEvents for a goroutine other than the test's.
func (e *feedEnv) tryAppendEvents(reg store.Registration, n int, payload string) ([]string, error) {
	ids := make([]store.ID, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				res, err := e.store.Append(context.Background(), store.NewEvent{
					Principal: reg.Principal, RegistrationID: reg.ID, Label: reg.Label, Source: "generic",
					Type: "test.event", ReceivedAt: e.clock.now(), Verified: true,
					Payload: json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, payload)),
				})
				if err != nil {
					errs <- err
					return
				}
				ids[i] = res.ID
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	e.inbox.Wakeups().Notify(reg.Principal)
	slices.SortFunc(ids, store.ID.Compare)
	out := make([]string, n)
	for i, id := range ids {
		out[i] = id.String()
	}
	return out, nil
}

// postWebhook sends a signed generic webhook through ingress.
func (e *feedEnv) postWebhook(t *testing.T, reg store.Registration, body string) string {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(reg.Secrets[len(reg.Secrets)-1]))
	mac.Write([]byte(body))
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/hooks/"+reg.ID, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Webhook-Signature", hex.EncodeToString(mac.Sum(nil)))
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("post webhook: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("post webhook: status %d, decode %v", resp.StatusCode, err)
	}
	return out.ID
}

// tracker reports when the feed handler of a named request starts and
// returns.
type tracker struct {
	mu      sync.Mutex
	started map[string]chan struct{}
	ended   map[string]chan struct{}
}

func newTracker() *tracker {
	return &tracker{started: map[string]chan struct{}{}, ended: map[string]chan struct{}{}}
}

func (tr *tracker) chans(name string) (started, ended chan struct{}) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.started[name] == nil {
		tr.started[name], tr.ended[name] = make(chan struct{}), make(chan struct{})
	}
	return tr.started[name], tr.ended[name]
}

// wrap tracks the named requests' handlers. A feed on a connection taken
// over from net/http outlives its handler, so such a request has ended
// only once its handler has returned and the connection is closed.
func (tr *tracker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get(nameHeader)
		if name == "" {
			h.ServeHTTP(w, r)
			return
		}
		started, ended := tr.chans(name)
		close(started)
		tw := &trackedWriter{ResponseWriter: w, ended: ended}
		tw.pending.Store(1)
		defer tw.done()
		h.ServeHTTP(tw, r)
	})
}

// trackedWriter is a tracked request's ResponseWriter: it closes ended once
// the handler has returned and any connection it took over is closed.
type trackedWriter struct {
	http.ResponseWriter
	ended   chan struct{}
	pending atomic.Int32 // the handler, and a taken-over connection
}

func (w *trackedWriter) done() {
	if w.pending.Add(-1) == 0 {
		close(w.ended)
	}
}

func (w *trackedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *trackedWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *trackedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.pending.Add(1)
	return &trackedConn{Conn: c, w: w}, brw, nil
}

type trackedConn struct {
	net.Conn
	w    *trackedWriter
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.w.done)
	return err
}

// feedMetrics is a subscribe.Metrics that counts what the feeds report.
type feedMetrics struct {
	subscribed, pushed, cut atomic.Int64
}

func (m *feedMetrics) Subscribed(path, era string, delta int) {
	if path == "sse" && era == "http" {
		m.subscribed.Add(int64(delta))
	}
}

func (m *feedMetrics) Pushed(path string) {
	if path == "sse" {
		m.pushed.Add(1)
	}
}

func (m *feedMetrics) Cut(path string) {
	if path == "sse" {
		m.cut.Add(1)
	}
}

// waitSubscribed polls until the SSE subscriber gauge reads n, failing the
// test if it does not within d.
func (e *feedEnv) waitSubscribed(t *testing.T, n int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for e.metrics.subscribed.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("sse subscriber gauge %d after %s, want %d", e.metrics.subscribed.Load(), d, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEnded fails unless the named request's handler returns within d.
func (tr *tracker) waitEnded(t *testing.T, name string, d time.Duration) {
	t.Helper()
	_, ended := tr.chans(name)
	select {
	case <-ended:
	case <-time.After(d):
		t.Fatalf("feed handler %q still running after %s", name, d)
	}
}

// sseBlock is one block of an event stream, up to its blank line.
type sseBlock struct {
	ID, Event, Data, Retry string
	Comment                bool
	Fields                 []string // every line, for checks of the framing
}

// sseReader reads an SSE response in a goroutine so tests can wait for
// blocks with a deadline.
type sseReader struct {
	resp   *http.Response
	cancel context.CancelFunc
	blocks chan sseBlock
}

// openSSE requests the stream with the given query and headers and checks
// that it is one.
func openSSE(t *testing.T, e *feedEnv, principal, query string, header http.Header) *sseReader {
	t.Helper()
	resp, cancel := getSSE(t, e, principal, query, header)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /v1/stream?%s: %d %s", query, resp.StatusCode, b)
	}
	r := &sseReader{resp: resp, cancel: cancel, blocks: make(chan sseBlock, 64)}
	go r.read()
	t.Cleanup(r.close)
	return r
}

func getSSE(t *testing.T, e *feedEnv, principal, query string, header http.Header) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/v1/stream?"+query, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	if principal != "" {
		req.Header.Set(principalHeader, principal)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /v1/stream: %v", err)
	}
	return resp, cancel
}

func (r *sseReader) read() {
	defer close(r.blocks)
	sc := bufio.NewScanner(r.resp.Body)
	sc.Buffer(nil, 1<<20)
	var b sseBlock
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			r.blocks <- b
			b = sseBlock{}
			continue
		}
		b.Fields = append(b.Fields, line)
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "":
			b.Comment = true
		case "id":
			b.ID = value
		case "event":
			b.Event = value
		case "data":
			b.Data = value
		case "retry":
			b.Retry = value
		}
	}
}

func (r *sseReader) close() {
	r.cancel()
	r.resp.Body.Close()
}

// next returns the next block, failing the test if none comes in time or
// the stream ends.
func (r *sseReader) next(t *testing.T) sseBlock {
	t.Helper()
	select {
	case b, ok := <-r.blocks:
		if !ok {
			t.Fatal("stream ended")
		}
		return b
	case <-time.After(wait):
		t.Fatalf("no SSE block within %s", wait)
		return sseBlock{}
	}
}

// nextEvent skips comments and returns the next event block.
func (r *sseReader) nextEvent(t *testing.T) sseBlock {
	t.Helper()
	for {
		if b := r.next(t); b.Data != "" {
			return b
		}
	}
}

// readIDs reads n events and returns their IDs, checking that each block's
// id is the event's.
func (r *sseReader) readIDs(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for range n {
		b := r.nextEvent(t)
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(b.Data), &ev); err != nil || ev.ID != b.ID {
			t.Fatalf("block id %q, data %s (decode: %v)", b.ID, b.Data, err)
		}
		ids = append(ids, b.ID)
	}
	return ids
}

// expectIDs fails unless got is exactly want, naming the first difference.
func expectIDs(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: got %s, want %s (missing, duplicated or out of order)", i, got[i], want[i])
		}
	}
}

func TestSSEDeliversWebhooksInOrder(t *testing.T) {
	e := newFeedEnv(t, nil)
	reg := e.register(t, "alice", "orders")
	r := openSSE(t, e, "alice", "", nil)

	h := r.resp.Header
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	first := r.next(t)
	if first.Retry != "2000" || first.Data != "" {
		t.Fatalf("first block %q, want retry: 2000 and no data", first.Fields)
	}
	if want := subscribe.Since(e.clock.now()).String(); first.ID != want {
		t.Fatalf("first block id %q, want the starting cursor %s", first.ID, want)
	}

	bodies := []string{
		`{"id":"evt_1","type":"order.created","n":1}`,
		"{\n  \"id\": \"evt_2\",\n  \"type\": \"order.paid\",\n  \"note\": \"two\\nlines\"\n}",
		`{"id":"evt_3","n":3}`,
		`{"id":"evt_4","type":"bad\nid: 1-1\ndata: forged","n":4}`,
	}
	var ids []string
	for _, body := range bodies {
		ids = append(ids, e.postWebhook(t, reg, body))
	}
	wantEvents := []string{"order.created", "order.paid", "event", "badid: 1-1data: forged"}
	for i, want := range ids {
		b := r.nextEvent(t)
		if len(b.Fields) != 3 || b.ID != want || b.Event != wantEvents[i] {
			t.Fatalf("event %d: block %q, want id %s, event %q, one data line", i, b.Fields, want, wantEvents[i])
		}
		var ev store.Event
		if err := json.Unmarshal([]byte(b.Data), &ev); err != nil {
			t.Fatalf("event %d: data %s: %v", i, b.Data, err)
		}
		var body, payload any
		_ = json.Unmarshal([]byte(bodies[i]), &body)
		_ = json.Unmarshal(ev.Payload, &payload)
		if ev.ID.String() != want || ev.Label != "orders" || ev.Source != "generic" || !ev.Verified ||
			ev.ProviderEventID != fmt.Sprintf("evt_%d", i+1) || fmt.Sprint(payload) != fmt.Sprint(body) {
			t.Fatalf("event %d: %+v, want the webhook %s as %s", i, ev, bodies[i], want)
		}
	}
}

func TestSSEStartsFromNow(t *testing.T) {
	e := newFeedEnv(t, nil)
	reg := e.register(t, "alice", "orders")
	e.appendEvents(t, reg, 5, "old")
	e.clock.advance(5)
	r := openSSE(t, e, "alice", "", nil)
	r.next(t) // preamble
	e.clock.advance(1)
	fresh := e.appendEvents(t, reg, 3, "new")
	// IDs are ordered, so had an old event been sent it would come first.
	expectIDs(t, r.readIDs(t, 3), fresh)
}

func TestSSEResumesWithLastEventID(t *testing.T) {
	e := newFeedEnv(t, nil)
	reg := e.register(t, "alice", "orders")
	all := e.appendEvents(t, reg, 1000, "")
	r := openSSE(t, e, "alice", "after=0-0", http.Header{nameHeader: {"first"}})
	expectTakenOver(t, r.resp)
	got := r.readIDs(t, 300)
	expectIDs(t, got, all[:300])

	r.close() // the client goes away mid-stream
	e.handlers.waitEnded(t, "first", wait)
	all = append(all, e.appendEvents(t, reg, 200, "")...)

	// after= is what the first request said; Last-Event-ID must win over it.
	r = openSSE(t, e, "alice", "after=0-0", http.Header{"Last-Event-ID": {got[len(got)-1]}})
	expectTakenOver(t, r.resp)
	if b := r.next(t); b.ID != got[len(got)-1] {
		t.Fatalf("preamble id %q, want the resume cursor %s", b.ID, got[len(got)-1])
	}
	expectIDs(t, r.readIDs(t, len(all)-300), all[300:])
}

func TestSSEAfterZeroReadsFromOldest(t *testing.T) {
	e := newFeedEnv(t, nil)
	reg := e.register(t, "alice", "orders")
	all := e.appendEvents(t, reg, 10, "")
	r := openSSE(t, e, "alice", "after=0-0", nil)
	expectIDs(t, r.readIDs(t, 10), all)

	r = openSSE(t, e, "alice", "after="+all[6], nil)
	expectIDs(t, r.readIDs(t, 3), all[7:])
}

func TestSSELabelFilter(t *testing.T) {
	e := newFeedEnv(t, nil)
	orders := e.register(t, "alice", "orders")
	refunds := e.register(t, "alice", "refunds")
	r := openSSE(t, e, "alice", "after=0-0&label=refunds", nil)
	var want []string
	for range 3 {
		e.appendEvents(t, orders, 2, "")
		want = append(want, e.appendEvents(t, refunds, 1, "")...)
	}
	for i, id := range r.readIDs(t, 3) {
		ev, err := e.store.Get(context.Background(), "alice", mustID(t, id))
		if err != nil || ev.Label != "refunds" || id != want[i] {
			t.Fatalf("event %d: %s of label %q (%v), want %s of refunds", i, id, ev.Label, err, want[i])
		}
	}
}

func mustID(t *testing.T, s string) store.ID {
	t.Helper()
	id, err := store.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSSERefusals(t *testing.T) {
	e := newFeedEnv(t, nil)
	e.register(t, "alice", "orders")
	e.register(t, "bob", "payroll")
	for _, tc := range []struct {
		name, principal, query string
		header                 http.Header
		status                 int
		mention                string
	}{
		{"no principal", "", "", nil, http.StatusUnauthorized, "Bearer"},
		{"unknown label", "alice", "label=nope", nil, http.StatusNotFound, `"nope"`},
		{"another principal's label", "alice", "label=payroll", nil, http.StatusNotFound, `"payroll"`},
		{"malformed Last-Event-ID", "alice", "", http.Header{"Last-Event-ID": {"yesterday"}}, http.StatusBadRequest, `Last-Event-ID "yesterday"`},
		{"malformed after", "alice", "after=12-x", nil, http.StatusBadRequest, `after "12-x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, cancel := getSSE(t, e, tc.principal, tc.query, tc.header)
			defer cancel()
			defer resp.Body.Close()
			var body struct {
				Error string `json:"error"`
			}
			err := json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.status || err != nil || !strings.Contains(body.Error, tc.mention) {
				t.Fatalf("got %d %q (decode: %v), want %d with a JSON error mentioning %s", resp.StatusCode, body.Error, err, tc.status, tc.mention)
			}
		})
	}
}

func TestSSEPrincipalIsolation(t *testing.T) {
	e := newFeedEnv(t, nil)
	alice := e.register(t, "alice", "orders")
	bob := e.register(t, "bob", "orders") // the same label, another principal
	r := openSSE(t, e, "bob", "after=0-0", nil)
	e.appendEvents(t, alice, 20, "")
	mine := e.appendEvents(t, bob, 1, "")
	// Alice's events are older; had any leaked, it would come first.
	if b := r.nextEvent(t); b.ID != mine[0] {
		t.Fatalf("bob got %s, want only his %s", b.Data, mine[0])
	}
}

func TestSSEHeartbeat(t *testing.T) {
	e := newFeedEnv(t, func(o *subscribe.FeedOptions) { o.Heartbeat = 50 * time.Millisecond })
	r := openSSE(t, e, "alice", "", nil)
	r.next(t) // preamble
	if b := r.next(t); !b.Comment || len(b.Fields) != 1 || b.Fields[0] != ": hb" {
		t.Fatalf("idle stream sent %q, want the heartbeat comment", b.Fields)
	}
}

func TestSSEEndsOnDone(t *testing.T) {
	e := newFeedEnv(t, nil)
	r := openSSE(t, e, "alice", "", http.Header{nameHeader: {"s"}})
	expectTakenOver(t, r.resp) // http.Server.Shutdown would not end it
	r.next(t)
	e.waitSubscribed(t, 1, wait)
	// Wait waits for the running feed, which outlived its request.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.sse.Wait(short); err == nil {
		t.Fatal("Wait returned with a feed still running")
	}
	e.stop()
	long, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.sse.Wait(long); err != nil {
		t.Fatalf("Wait after Stopping: %v", err)
	}
	e.handlers.waitEnded(t, "s", wait)
	e.waitSubscribed(t, 0, wait)
	select {
	case _, ok := <-r.blocks:
		if ok {
			t.Fatal("stream sent more after shutdown")
		}
	case <-time.After(wait):
		t.Fatal("stream still open after shutdown")
	}
}

// TestSSEStalledReaderIsCut has one client send its request and never
// read, while another reads normally. The stalled one must hold up only
// its own handler, which its write deadline ends.
func TestSSEStalledReaderIsCut(t *testing.T) {
	const writeTimeout = 1500 * time.Millisecond
	e := newFeedEnv(t, func(o *subscribe.FeedOptions) { o.WriteTimeout = writeTimeout })
	reg := e.register(t, "alice", "orders")
	pad := strings.Repeat("x", 1000)
	all := e.appendEvents(t, reg, 2000, pad)

	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET /v1/stream?after=0-0 HTTP/1.1\r\nHost: x\r\n%s: alice\r\n%s: stalled\r\n\r\n", principalHeader, nameHeader)
	stalledStarted, stalledEnded := e.handlers.chans("stalled")
	select {
	case <-stalledStarted:
	case <-time.After(wait):
		t.Fatal("the stalled client's request never reached the handler")
	}
	stalledAt := time.Now()
	// The head only: the stream behind it stays unread. Nothing but the
	// write deadline can end a taken-over stream's blocked write.
	head, err := http.ReadResponse(bufio.NewReaderSize(conn, 512), nil)
	if err != nil {
		t.Fatalf("stalled client: read the response head: %v", err)
	}
	expectTakenOver(t, head)

	healthy := openSSE(t, e, "alice", "after=0-0", nil)
	more := make(chan []string, 1)
	go func() {
		ids, err := e.tryAppendEvents(reg, 500, pad)
		if err != nil {
			t.Error(err)
		}
		more <- ids
	}()
	got := healthy.readIDs(t, 2000)
	select {
	case <-stalledEnded:
		t.Fatalf("the stalled handler ended before the healthy reader got its events (%s): they are not independent", time.Since(stalledAt))
	default:
	}
	all = append(all, <-more...)
	got = append(got, healthy.readIDs(t, 500)...)
	expectIDs(t, got, all)

	// Nothing ends a feed whose client neither reads nor leaves but a
	// failed write; the deadline makes that happen after writeTimeout.
	e.handlers.waitEnded(t, "stalled", writeTimeout+wait)
	if d := time.Since(stalledAt); d < writeTimeout {
		t.Fatalf("stalled handler ended after %s, before its write timeout %s", d, writeTimeout)
	}
	if n := e.metrics.cut.Load(); n != 1 {
		t.Fatalf("%d streams counted as cut, want the stalled one", n)
	}
}

// expectTakenOver fails unless resp is an SSE stream the handler wrote on
// the connection it took over from net/http: HTTP/1.1, neither chunked nor
// of known length, ended by the connection's close.
func expectTakenOver(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.ProtoMajor != 1 || !resp.Close || resp.TransferEncoding != nil || resp.ContentLength != -1 {
		t.Fatalf("response %s, close %v, transfer-encoding %q, length %d: want a taken-over HTTP/1.1 stream delimited by the connection's close",
			resp.Proto, resp.Close, resp.TransferEncoding, resp.ContentLength)
	}
}

// TestSSETakenOverResponse checks the response head written by hand on a
// taken-over connection: the stream's headers, those a middleware set,
// and nothing net/http would have refused to send.
func TestSSETakenOverResponse(t *testing.T) {
	e := newFeedEnvWith(t, envOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Request-Id", "req-1")
			w.Header().Set("X-Bad", "a\r\nSet-Cookie: forged")
			h.ServeHTTP(w, r)
		})
	}})
	reg := e.register(t, "alice", "orders")
	r := openSSE(t, e, "alice", "", nil)
	expectTakenOver(t, r.resp)
	h := r.resp.Header
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
		"X-Request-Id": "req-1", "X-Bad": "a  Set-Cookie: forged",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, err := http.ParseTime(h.Get("Date")); err != nil || h.Get("Set-Cookie") != "" {
		t.Errorf("headers %v: want a Date and no Set-Cookie", h)
	}
	if b := r.next(t); b.Retry != "2000" {
		t.Fatalf("first block %q, want the preamble", b.Fields)
	}
	id := e.postWebhook(t, reg, `{"id":"evt_1","type":"order.created"}`)
	if b := r.nextEvent(t); b.ID != id || b.Event != "order.created" {
		t.Fatalf("got block %q, want event %s", b.Fields, id)
	}
}

// TestSSEClientLeaving has clients leave idle taken-over streams. net/http
// no longer reads such a connection, so no request context tells the feed;
// the feed's own watch must, at once: the heartbeat is an hour and the log
// is empty, so no write could notice instead. The feed must end, close
// its connection and leave the subscriber gauge.
func TestSSEClientLeaving(t *testing.T) {
	e := newFeedEnv(t, func(o *subscribe.FeedOptions) { o.Heartbeat = time.Hour })
	for _, tc := range []struct {
		name  string
		leave func(c *net.TCPConn)
	}{
		// A clean close (FIN).
		{"close", func(c *net.TCPConn) { c.Close() }},
		// An abortive close (RST), as when the client leaves unread data.
		{"reset", func(c *net.TCPConn) {
			_ = c.SetLinger(0)
			c.Close()
		}},
		// A half close: the client will send nothing more, which is all
		// the server can tell of a departure from its side.
		{"half close", func(c *net.TCPConn) { _ = c.CloseWrite() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(wait))
			fmt.Fprintf(conn, "GET /v1/stream HTTP/1.1\r\nHost: x\r\n%s: alice\r\n%s: %s\r\n\r\n", principalHeader, nameHeader, tc.name)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			expectTakenOver(t, resp)
			// The preamble; the log is empty, so the stream is idle.
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("read the stream: %v", err)
				}
				if line == "\n" {
					break
				}
			}
			e.waitSubscribed(t, 1, wait)
			tc.leave(conn.(*net.TCPConn))
			e.handlers.waitEnded(t, tc.name, wait)
			e.waitSubscribed(t, 0, wait)
		})
	}
}

// hiddenConn is a middleware's ResponseWriter that hides net/http's: it
// can flush, but neither hijack nor set deadlines.
type hiddenConn struct{ w http.ResponseWriter }

func (h hiddenConn) Header() http.Header         { return h.w.Header() }
func (h hiddenConn) Write(b []byte) (int, error) { return h.w.Write(b) }
func (h hiddenConn) WriteHeader(status int)      { h.w.WriteHeader(status) }
func (h hiddenConn) Flush()                      { h.w.(http.Flusher).Flush() }

// TestSSEWithoutTakeover runs the stream where the handler cannot take the
// connection over, through the ResponseWriter as before: events, heartbeats,
// a client leaving and shutdown.
func TestSSEWithoutTakeover(t *testing.T) {
	for _, tc := range []struct {
		name  string
		eo    envOptions
		proto int
	}{
		{"HTTP/2", envOptions{http2: true}, 2},
		{"hidden connection", envOptions{wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(hiddenConn{w}, r) })
		}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eo := tc.eo
			eo.tweak = func(o *subscribe.FeedOptions) { o.Heartbeat = 100 * time.Millisecond }
			e := newFeedEnvWith(t, eo)
			reg := e.register(t, "alice", "orders")
			all := e.appendEvents(t, reg, 3, "")

			r := openSSE(t, e, "alice", "after=0-0", http.Header{nameHeader: {"left"}})
			if r.resp.ProtoMajor != tc.proto || r.resp.Close || r.resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("response %s, close %v, %q: want a %d.x event stream through net/http", r.resp.Proto, r.resp.Close, r.resp.Header.Get("Content-Type"), tc.proto)
			}
			expectIDs(t, r.readIDs(t, 3), all)
			if b := r.next(t); !b.Comment {
				t.Fatalf("idle stream sent %q, want a heartbeat", b.Fields)
			}
			r.close()
			e.handlers.waitEnded(t, "left", wait)

			r = openSSE(t, e, "alice", "after="+all[2], http.Header{nameHeader: {"stopped"}})
			r.next(t) // preamble
			e.stop()
			e.handlers.waitEnded(t, "stopped", wait)
			for b := range r.blocks {
				if !b.Comment {
					t.Fatalf("stream sent %q after shutdown", b.Fields)
				}
			}
		})
	}
}
