package bridge_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
)

// logEnv is an Inbox on a real bbolt file (fsync off: these tests append
// tens of thousands of events) with the replay routes served on loopback.
// The caller's principal is the X-Principal header.
type logEnv struct {
	store store.Store
	inbox *bridge.Inbox
	srv   *httptest.Server
	regs  map[string]store.Registration
}

func newLogEnv(t *testing.T) *logEnv {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &logEnv{store: st, inbox: bridge.New(st, bridge.Options{}), regs: map[string]store.Registration{}}
	who := func(r *http.Request) string { return r.Header.Get("X-Principal") }
	mux := http.NewServeMux()
	mux.Handle("GET /v1/events", e.inbox.LogHandler(who))
	mux.Handle("POST /v1/requeue", e.inbox.RequeueHandler(who))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// add appends an event of the given label and type for principal p.
func (e *logEnv) add(t *testing.T, p, label, typ string) store.ID {
	t.Helper()
	reg, ok := e.regs[p+"/"+label]
	if !ok {
		var err error
		reg, err = e.inbox.Register(context.Background(), p, bridge.RegisterRequest{Label: label})
		if err != nil {
			t.Fatal(err)
		}
		e.regs[p+"/"+label] = reg
	}
	res, err := e.store.Append(context.Background(), store.NewEvent{
		Principal: p, RegistrationID: reg.ID, Label: label, Source: "generic", Type: typ,
		ReceivedAt: time.Now().UTC(), Verified: true, Payload: json.RawMessage(`{"n":1}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.ID
}

func (e *logEnv) read(t *testing.T, p string, q bridge.LogQuery) bridge.LogPage {
	t.Helper()
	page, err := e.inbox.ReadLog(context.Background(), p, q)
	if err != nil {
		t.Fatalf("ReadLog(%+v): %v", q, err)
	}
	return page
}

// get calls GET /v1/events?query as principal p.
func (e *logEnv) get(t *testing.T, p, query string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/events?"+query, nil)
	if p != "" {
		req.Header.Set("X-Principal", p)
	}
	return do(t, req)
}

// requeue calls POST /v1/requeue with body as principal p.
func (e *logEnv) requeue(t *testing.T, p, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/requeue", strings.NewReader(body))
	if p != "" {
		req.Header.Set("X-Principal", p)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func pageIDs(p bridge.LogPage) []store.ID {
	out := make([]store.ID, len(p.Events))
	for i, e := range p.Events {
		out[i] = e.ID
	}
	return out
}

// TestReadLogFilters: the whole log, acked and dead events included, with
// after exclusive, until inclusive, and label and type filters.
func TestReadLogFilters(t *testing.T) {
	e := newLogEnv(t)
	ctx := context.Background()
	a1 := e.add(t, "alice", "orders", "order.created")
	b1 := e.add(t, "alice", "billing", "invoice.paid")
	a2 := e.add(t, "alice", "orders", "order.shipped")
	b2 := e.add(t, "alice", "billing", "invoice.failed")
	e.add(t, "bob", "orders", "order.created")
	a3 := e.add(t, "alice", "orders", "order.created")
	if _, err := e.inbox.Ack(ctx, "alice", []string{a1.String(), b1.String()}); err != nil {
		t.Fatal(err)
	}
	all := []store.ID{a1, b1, a2, b2, a3}

	cases := []struct {
		name string
		q    bridge.LogQuery
		want []store.ID
	}{
		{"everything, acked included", bridge.LogQuery{}, all},
		{"after is exclusive", bridge.LogQuery{After: b1}, all[2:]},
		{"until is inclusive", bridge.LogQuery{Until: a2}, all[:3]},
		{"after and until", bridge.LogQuery{After: a1, Until: b2}, all[1:4]},
		{"label", bridge.LogQuery{Label: "orders"}, []store.ID{a1, a2, a3}},
		{"exact type", bridge.LogQuery{Type: "order.created"}, []store.ID{a1, a3}},
		{"type prefix", bridge.LogQuery{Type: "invoice.*"}, []store.ID{b1, b2}},
		{"label and type", bridge.LogQuery{Label: "billing", Type: "invoice.failed"}, []store.ID{b2}},
		{"unknown label", bridge.LogQuery{Label: "nope"}, nil},
	}
	for _, c := range cases {
		page := e.read(t, "alice", c.q)
		if got := pageIDs(page); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if page.More {
			t.Errorf("%s: more is set on the last page", c.name)
		}
	}
}

// TestReadLogPages: paging with the returned cursor reads every event
// once, in order, and more is false exactly on the last page; a type
// filter's cursor moves past what it skipped.
func TestReadLogPages(t *testing.T) {
	e := newLogEnv(t)
	var all, odd []store.ID
	for i := range 2500 {
		typ := "even"
		if i%2 == 1 {
			typ = "odd"
		}
		id := e.add(t, "alice", "orders", typ)
		all = append(all, id)
		if typ == "odd" {
			odd = append(odd, id)
		}
	}
	for _, c := range []struct {
		typ   string
		want  []store.ID
		pages int
	}{{"", all, 3}, {"odd", odd, 2}} {
		var got []store.ID
		q := bridge.LogQuery{Type: c.typ, Limit: 1000}
		pages := 0
		for {
			page := e.read(t, "alice", q)
			pages++
			got = append(got, pageIDs(page)...)
			if !page.More {
				break
			}
			q.After = page.Cursor
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("type %q: paged %d events, want %d in order", c.typ, len(got), len(c.want))
		}
		if pages != c.pages {
			t.Errorf("type %q: %d pages, want %d", c.typ, pages, c.pages)
		}
	}
}

// TestReadLogScanBound: a filter that matches nothing answers after a
// bounded scan with more set and a cursor past what it scanned.
func TestReadLogScanBound(t *testing.T) {
	e := newLogEnv(t)
	var last store.ID
	for range 11_000 {
		last = e.add(t, "alice", "orders", "t")
	}
	page := e.read(t, "alice", bridge.LogQuery{Type: "never"})
	if len(page.Events) != 0 || !page.More || page.Cursor.IsZero() || page.Cursor == last {
		t.Fatalf("first page: %d events, more %v, cursor %s; want none, more, a cursor before %s", len(page.Events), page.More, page.Cursor, last)
	}
	page = e.read(t, "alice", bridge.LogQuery{Type: "never", After: page.Cursor})
	if len(page.Events) != 0 || page.More || page.Cursor != last {
		t.Fatalf("second page: %d events, more %v, cursor %s; want none, done, cursor %s", len(page.Events), page.More, page.Cursor, last)
	}
}

func TestLogHandler(t *testing.T) {
	e := newLogEnv(t)
	a := e.add(t, "alice", "orders", "order.created")
	b := e.add(t, "alice", "orders", "order.paid")

	status, body := e.get(t, "alice", "after="+a.String())
	if status != http.StatusOK {
		t.Fatalf("GET: %d %s", status, body)
	}
	var page struct {
		Events []map[string]any `json:"events"`
		Cursor string           `json:"cursor"`
		More   *bool            `json:"more"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if len(page.Events) != 1 || page.Events[0]["id"] != b.String() || page.Events[0]["type"] != "order.paid" ||
		page.Cursor != b.String() || page.More == nil || *page.More {
		t.Errorf("page = %s, want event %s alone, cursor %s, more false", body, b, b)
	}

	status, body = e.get(t, "bob", "")
	if status != http.StatusOK || !strings.Contains(body, `"events":[]`) {
		t.Errorf("another principal's log: %d %s, want 200 with an empty list", status, body)
	}
	for _, c := range []struct {
		who, query string
		status     int
	}{
		{"", "", http.StatusUnauthorized},
		{"alice", "after=yesterday", http.StatusBadRequest},
		{"alice", "until=1-x", http.StatusBadRequest},
		{"alice", "limit=0", http.StatusBadRequest},
	} {
		status, body := e.get(t, c.who, c.query)
		if status != c.status || !strings.Contains(body, `"error"`) {
			t.Errorf("GET ?%s as %q: %d %s, want %d with an error", c.query, c.who, status, body, c.status)
		}
	}
}

func TestRequeueHandler(t *testing.T) {
	e := newLogEnv(t)
	ctx := context.Background()
	a := e.add(t, "alice", "orders", "t")
	b := e.add(t, "alice", "orders", "t")
	if _, err := e.inbox.Ack(ctx, "alice", []string{a.String(), b.String()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who, body string
		status    int
	}{
		{"", `{"ids":["` + a.String() + `"]}`, http.StatusUnauthorized},
		{"alice", `{"ids":[]}`, http.StatusBadRequest},
		{"alice", `not json`, http.StatusBadRequest},
		{"alice", `{"ids":["x-1"]}`, http.StatusBadRequest},
		{"alice", `{"ids":["` + a.String() + `","1-7"]}`, http.StatusNotFound},
		{"bob", `{"ids":["` + a.String() + `"]}`, http.StatusNotFound},
	} {
		status, body := e.requeue(t, c.who, c.body)
		if status != c.status || !strings.Contains(body, `"error"`) {
			t.Errorf("requeue %s as %q: %d %s, want %d with an error", c.body, c.who, status, body, c.status)
		}
	}
	if n, _ := e.inbox.Pending(ctx, "alice", ""); n != 0 {
		t.Fatalf("refused requeues made %d events pending", n)
	}

	status, body := e.requeue(t, "alice", `{"ids":["`+a.String()+`","`+b.String()+`","`+a.String()+`"]}`)
	if status != http.StatusOK || strings.TrimSpace(body) != `{"requeued":2}` {
		t.Fatalf("requeue: %d %s, want 200 {\"requeued\":2}", status, body)
	}
	res, err := e.inbox.Lease(ctx, "alice", bridge.LeaseRequest{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := []store.ID{}; len(res.Events) != 2 || res.Events[0].ID != a || res.Events[1].ID != b {
		for _, ev := range res.Events {
			got = append(got, ev.ID)
		}
		t.Errorf("lease after requeue = %v, want [%s %s]", got, a, b)
	}
	status, body = e.requeue(t, "alice", `{"ids":["`+a.String()+`"]}`)
	if status != http.StatusOK || strings.TrimSpace(body) != `{"requeued":0}` {
		t.Errorf("requeue of a pending event: %d %s, want {\"requeued\":0}", status, body)
	}
}
