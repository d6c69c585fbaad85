package subscribe_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/subscribe"
)

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
