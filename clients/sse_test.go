package clients_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
	"github.com/hookgate/hookgate/clients"
	"github.com/hookgate/hookgate/subscribe"
)

// wait bounds every wait of these tests; none takes it unless broken.
const wait = 10 * time.Second

// feed is hookgate's real SSE handler over a real bbolt store, served on
// loopback, with the token "good" for principal alice.
type feed struct {
	store store.Store
	inbox *bridge.Inbox
	reg   store.Registration
	srv   *httptest.Server
	sse   *subscribe.SSEHandler

	mu          sync.Mutex
	lastEventID []string              // the Last-Event-ID of each request, in order
	conns       map[net.Conn]struct{} // the server's ends of its connections
}

func newFeed(t *testing.T) *feed {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &feed{store: st, inbox: bridge.New(st, bridge.Options{})}
	f.reg, err = f.inbox.Register(context.Background(), "alice", bridge.RegisterRequest{Label: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	f.conns = map[net.Conn]struct{}{}
	h := subscribe.NewSSEHandler(subscribe.FeedOptions{
		Log:  st,
		Wake: f.inbox.Wakeups(),
		Principal: func(r *http.Request) string {
			if r.Header.Get("Authorization") == "Bearer good" {
				return "alice"
			}
			return ""
		},
		Labels: func(ctx context.Context, principal, label string) error {
			_, err := st.RegistrationByLabel(ctx, principal, label)
			return err
		},
	})
	f.sse = h
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.lastEventID = append(f.lastEventID, r.Header.Get("Last-Event-ID"))
		f.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	// The feed takes its connection over from net/http, which then no
	// longer tracks it (CloseClientConnections would not close it), so the
	// test keeps the server's end of every connection itself.
	f.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch s {
		case http.StateNew:
			f.conns[c] = struct{}{}
		case http.StateClosed:
			delete(f.conns, c)
		}
	}
	f.srv.Start()
	t.Cleanup(func() {
		f.cutConnections()
		f.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := h.Wait(ctx); err != nil {
			t.Errorf("feeds still running after their connections were cut: %v", err)
		}
		_ = st.Close()
	})
	return f
}

// cutConnections closes the server's end of every connection, those the
// feed took over from net/http included: a cut from the server's side.
func (f *feed) cutConnections() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
		delete(f.conns, c)
	}
}

func (f *feed) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lastEventID...)
}

// appendEvents stores n events and wakes the feed; it returns their IDs.
func (f *feed) appendEvents(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		res, err := f.store.Append(context.Background(), store.NewEvent{
			Principal: "alice", RegistrationID: f.reg.ID, Label: f.reg.Label, Source: "generic",
			Type: "order.created", ReceivedAt: time.Now(), Verified: true,
			Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID.String())
	}
	f.inbox.Wakeups().Notify("alice")
	return ids
}

// stream runs StreamSSE in the background; events arrive on the channel and
// its result on done.
func stream(t *testing.T, opts clients.SSEOptions) (events chan clients.Event, done chan error, cancel context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events, done = make(chan clients.Event, 10000), make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- clients.StreamSSE(ctx, opts, func(e clients.Event) error { events <- e; return nil })
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return events, done, cancel
}

func receive(t *testing.T, events chan clients.Event, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		select {
		case e := <-events:
			ids = append(ids, e.ID)
		case <-time.After(wait):
			t.Fatalf("got %d events, want %d", len(ids), n)
		}
	}
	return ids
}

func TestStreamSSEResumesAfterServerCut(t *testing.T) {
	f := newFeed(t)
	all := f.appendEvents(t, 50)
	events, done, cancel := stream(t, clients.SSEOptions{Server: f.srv.URL, Token: "good", Label: "orders", After: "0-0", Retry: 20 * time.Millisecond})
	got := receive(t, events, 20)

	f.cutConnections() // the server side cuts the stream mid-way
	all = append(all, f.appendEvents(t, 50)...)
	got = append(got, receive(t, events, 80)...)
	for i := range all {
		if got[i] != all[i] {
			t.Fatalf("event %d: got %s, want %s (missing, duplicated or out of order)", i, got[i], all[i])
		}
	}
	select {
	case e := <-events:
		t.Fatalf("extra event %s after all %d", e.ID, len(all))
	default:
	}

	reqs := f.requests()
	if len(reqs) < 2 || reqs[0] != "0-0" {
		t.Fatalf("requests carried Last-Event-ID %q, want 0-0 then a resume", reqs)
	}
	if resume := reqs[1]; resume == "" || resume == "0-0" {
		t.Fatalf("reconnect carried Last-Event-ID %q, want the last event handled", resume)
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("StreamSSE returned %v after cancel, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatal("StreamSSE did not return after cancel")
	}
}

func TestStreamSSEStopsOnRefusal(t *testing.T) {
	f := newFeed(t)
	for _, tc := range []struct {
		name   string
		opts   clients.SSEOptions
		status int
	}{
		{"bad token", clients.SSEOptions{Server: f.srv.URL, Token: "bad"}, http.StatusUnauthorized},
		{"unknown label", clients.SSEOptions{Server: f.srv.URL, Token: "good", Label: "nope"}, http.StatusNotFound},
		{"malformed cursor", clients.SSEOptions{Server: f.srv.URL, Token: "good", After: "last-tuesday"}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := clients.StreamSSE(ctx, tc.opts, func(clients.Event) error { return nil })
			var herr *clients.HTTPError
			if !errors.As(err, &herr) || herr.StatusCode != tc.status || herr.Message == "" {
				t.Fatalf("StreamSSE = %v, want an *HTTPError %d with the server's message", err, tc.status)
			}
			// Retrying could not help, so none is made (a retry waits 2 s).
			if d := time.Since(start); d > time.Second {
				t.Fatalf("took %s to give up", d)
			}
		})
	}
}

func TestStreamSSEHandlerErrorStops(t *testing.T) {
	f := newFeed(t)
	ids := f.appendEvents(t, 5)
	boom := errors.New("boom")
	var handled []string
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := clients.StreamSSE(ctx, clients.SSEOptions{Server: f.srv.URL, Token: "good", After: "0-0"}, func(e clients.Event) error {
		if len(handled) == 2 {
			return boom
		}
		handled = append(handled, e.ID)
		return nil
	})
	if !errors.Is(err, boom) || len(handled) != 2 || handled[1] != ids[1] {
		t.Fatalf("StreamSSE = %v after handling %v; want boom after %v", err, handled, ids[:2])
	}
}

// TestStreamSSEFollowsTheWire checks the client's reading of the SSE
// format on a scripted server: it honours retry:, takes an id without data
// (hookgate's starting cursor) as where to resume, skips comments, and
// keeps the event's JSON as sent.
func TestStreamSSEFollowsTheWire(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Last-Event-ID"))
		n := len(seen)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		switch n {
		case 1:
			fmt.Fprint(w, "retry: 10\nid: 7-0\n\n: hb\n\n")
		case 2:
			fmt.Fprint(w, "retry: 10\r\nid: 8-0\r\nevent: x\r\ndata: {\"id\":\"8-0\",\"label\":\"l\",\"future\":1}\r\n\r\n")
		default:
			http.Error(w, `{"error":"token revoked"}`, http.StatusUnauthorized)
		}
	}))
	defer srv.Close()

	var got []clients.Event
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := clients.StreamSSE(ctx, clients.SSEOptions{Server: srv.URL}, func(e clients.Event) error {
		got = append(got, e)
		return nil
	})
	var herr *clients.HTTPError
	if !errors.As(err, &herr) || herr.Message != "token revoked" {
		t.Fatalf("StreamSSE = %v, want the 401 with the server's message", err)
	}
	if len(seen) != 3 || seen[0] != "" || seen[1] != "7-0" || seen[2] != "8-0" {
		t.Fatalf("requests carried Last-Event-ID %q, want \"\", 7-0, 8-0", seen)
	}
	if len(got) != 1 || got[0].ID != "8-0" || got[0].Label != "l" || string(got[0].Raw) != `{"id":"8-0","label":"l","future":1}` {
		t.Fatalf("handled %+v", got)
	}
	// Two reconnects at the server's 10 ms, not the default 2 s.
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("took %s: retry: was not honoured", d)
	}
}
