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

// The harness of the SSE and WebSocket feed tests: a real store, a real
// server on loopback, and readers that see the wire.

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
