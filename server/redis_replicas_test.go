package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/internal/redistest"
)

// replicaWait bounds each wait of the replica tests; none takes it unless
// broken.
const replicaWait = 30 * time.Second

// alternating POSTs signed generic webhooks for one registration to several
// replicas in turn, as a load balancer would spread them, and behaves like a
// provider: a replica it cannot reach is skipped for the next, and a 503 is
// retried until it is accepted.
type alternating struct {
	t       *testing.T
	bases   []string
	regID   string
	secret  string
	ok      atomic.Int64 // events accepted so far
	refused atomic.Int64 // 503 answers seen
}

// post sends events from..from+n-1 with workers in parallel and returns the
// IDs answered, sorted and without repeats (a retry after a lost answer is
// a duplicate of the same event).
func (p *alternating) post(from, n, workers int) []string {
	var mu sync.Mutex
	seen := map[string]bool{}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				if id, err := p.one(i); err != nil {
					p.t.Error(err)
				} else {
					mu.Lock()
					seen[id] = true
					mu.Unlock()
				}
			}
		})
	}
	for i := from; i < from+n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	return ids
}

// one delivers event i, retrying until it is accepted or replicaWait passes.
func (p *alternating) one(i int) (string, error) {
	body := fmt.Appendf(nil, `{"id":"ev-%d","type":"replica.test"}`, i)
	deadline := time.Now().Add(replicaWait)
	for try := 0; ; try++ {
		base := p.bases[(i+try)%len(p.bases)]
		req, _ := http.NewRequest(http.MethodPost, base+"/hooks/"+p.regID, strings.NewReader(string(body)))
		req.Header.Set("X-Webhook-Signature", signGeneric(p.secret, body))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var out struct {
				ID string `json:"id"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK && out.ID != "":
				p.ok.Add(1)
				return out.ID, nil
			case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
				p.refused.Add(1)
			default:
				return "", fmt.Errorf("POST ev-%d to %s: %d, Retry-After %q", i, base, resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("POST ev-%d: not accepted within %v (last error %v)", i, replicaWait, err)
		}
		time.Sleep(20 * time.Millisecond) // a provider's retry delay, bounded by the deadline
	}
}

// waitCount polls n until it reaches want or replicaWait passes.
func waitCount(t *testing.T, what string, n *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(replicaWait)
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d within %v, want %d", what, n.Load(), replicaWait, want)
		}
		time.Sleep(5 * time.Millisecond) // polling against a deadline
	}
}

// readLog reads the principal's whole log through GET /v1/events.
func readLog(t *testing.T, base, token string) []testEvent {
	t.Helper()
	var all []testEvent
	after := "0-0"
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/events?limit=1000&after="+after, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /v1/events: %v", err)
		}
		var page struct {
			Events []testEvent `json:"events"`
			Cursor string      `json:"cursor"`
			More   bool        `json:"more"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/events: %d, %v", resp.StatusCode, err)
		}
		all = append(all, page.Events...)
		if !page.More {
			return all
		}
		after = page.Cursor
	}
}

// TestReplicasShareOneRedis: two replicas on one Redis take 2,000 events
// POSTed alternately to both. An SSE client on replica A and a 2026-07-28
// listener (the SDK client) on replica B each receive all of them in ID
// order, so appends on either replica wake subscribers on the other. A is
// killed mid-stream: its SSE client resumes on B with Last-Event-ID and
// misses nothing, while the provider fails over to B.
func TestReplicasShareOneRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.AppendOnly())
	a := startGateway(t, t.TempDir(), "--redis", rs.URL(), "--dev-token", "--redis-wake-recheck", "1h")
	b := startGateway(t, t.TempDir(), "--redis", rs.URL(), "--redis-wake-recheck", "1h")
	token := a.token
	reg := mustTool(t, connect(t, a.url, token, ""), "register_webhook", map[string]any{"label": "orders"}).Structured
	uri := reg["resourceUri"].(string)

	feed := openFeed(t, a.url, token, "")
	listener := subscriber(t, b.url, token, "", uri)

	// Events POSTed to A alone reach B's listener: B's only way to learn of
	// them is the relay, since its safety re-check is an hour away.
	onlyA := &alternating{t: t, bases: []string{a.url}, regID: reg["id"].(string), secret: reg["secret"].(string)}
	warmup := onlyA.post(0, 20, 2)
	assertInOrder(t, "listener on B, events POSTed to A", listener.waitFor(t, len(warmup), replicaWait), warmup)

	p := &alternating{t: t, bases: []string{a.url, b.url}, regID: reg["id"].(string), secret: reg["secret"].(string)}
	posted := make(chan []string, 1)
	go func() { posted <- slices.Concat(warmup, p.post(100, 2000, 8)) }()

	var got []string
	for len(got) < 600 {
		got = append(got, feed.nextEvent(t).id)
	}
	a.kill()
	// Whatever A wrote before it died, then the end of the stream.
	withDeadline(t, replicaWait, "the stream from the killed replica to end", func() {
		for blk := range feed.blocks {
			if blk.data != "" {
				got = append(got, blk.id)
			}
		}
	})
	want := <-posted
	if len(want) != 2020 {
		t.Fatalf("%d distinct events accepted, want 2020", len(want))
	}
	resumed := openFeed(t, b.url, token, got[len(got)-1])
	for len(got) < len(want) {
		got = append(got, resumed.nextEvent(t).id)
	}
	assertInOrder(t, "SSE client on A, then B after Last-Event-ID", got, want)
	assertInOrder(t, "2026-07-28 listener on B", listener.waitFor(t, len(want), replicaWait), want)
}

// TestReplicasRedisRestartMidLoad: Redis (with AOF) is killed while events
// are POSTed to two replicas. Meanwhile ingress answers 503 with
// Retry-After, and an MCP tool call fails with an error naming the
// unavailable store; after the restart every POST is accepted on retry, and
// every event that got a 2xx is in the log exactly once. (The MCP
// request fails at authentication, which needs the store: 503 with
// Retry-After and "store unavailable" in the body; the SDK client reports
// it as "Service Unavailable".)
func TestReplicasRedisRestartMidLoad(t *testing.T) {
	rs := redistest.Start(t, redistest.AppendOnly())
	a := startGateway(t, t.TempDir(), "--redis", rs.URL(), "--dev-token")
	b := startGateway(t, t.TempDir(), "--redis", rs.URL())
	token := a.token
	reg := mustTool(t, connect(t, a.url, token, ""), "register_webhook", map[string]any{"label": "orders"}).Structured
	down := connect(t, b.url, token, "")

	p := &alternating{t: t, bases: []string{a.url, b.url}, regID: reg["id"].(string), secret: reg["secret"].(string)}
	const n = 600
	posted := make(chan []string, 1)
	go func() { posted <- p.post(0, n, 8) }()

	waitCount(t, "events accepted before the kill", &p.ok, 150)
	rs.Kill()
	waitCount(t, "503 answers while Redis is down", &p.refused, 1)
	ctx, cancel := context.WithTimeout(context.Background(), replicaWait)
	_, err := callToolErr(ctx, down, "poll_events")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "Service Unavailable") {
		t.Errorf("poll_events with Redis down: %v; want the SDK's Service Unavailable", err)
	}
	req, _ := http.NewRequest(http.MethodPost, b.url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(raw), "store unavailable") {
			t.Errorf("MCP request with Redis down: %d, Retry-After %q, %s; want 503 naming the store", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
		}
	}
	rs.Restart()

	want := <-posted
	if len(want) != n {
		t.Fatalf("%d distinct events accepted, want %d", len(want), n)
	}
	events := readLog(t, b.url, token)
	var ids []string
	byProvider := map[string]int{}
	for _, e := range events {
		ids = append(ids, e.ID)
		byProvider[e.ProviderEventID]++
	}
	assertInOrder(t, "log after the restart", ids, want)
	for i := range n {
		if c := byProvider[fmt.Sprintf("ev-%d", i)]; c != 1 {
			t.Errorf("ev-%d stored %d times, want once", i, c)
		}
	}
	t.Logf("%d POSTs answered 503 while Redis was down, all accepted on retry", p.refused.Load())
}

// TestReplicasRedisRestartEmpty: Redis restarted without persistence loses
// everything, tokens and registrations included. Both replicas carry on
// without a restart of their own: a new token and registration work, events
// POSTed to either replica are accepted with IDs above every ID handed out
// before, and an SSE client on B receives those POSTed to A.
func TestReplicasRedisRestartEmpty(t *testing.T) {
	rs := redistest.Start(t)
	a := startGateway(t, t.TempDir(), "--redis", rs.URL(), "--dev-token")
	b := startGateway(t, t.TempDir(), "--redis", rs.URL())
	reg := mustTool(t, connect(t, a.url, a.token, ""), "register_webhook", map[string]any{"label": "orders"}).Structured
	p := &alternating{t: t, bases: []string{a.url, b.url}, regID: reg["id"].(string), secret: reg["secret"].(string)}
	before := p.post(0, 20, 4)
	lastBefore := before[len(before)-1]

	rs.Kill()
	rs.Restart()

	out, err := exec.Command(binary, "token", "create", "--name", "dev", "--redis", rs.URL()).Output()
	if err != nil {
		t.Fatalf("token create --redis: %v", err)
	}
	token := strings.TrimSpace(string(out))
	waitReady(t, a.url)
	waitReady(t, b.url)
	reg = mustTool(t, connect(t, b.url, token, ""), "register_webhook", map[string]any{"label": "orders"}).Structured
	feed := openFeed(t, b.url, token, "")
	p = &alternating{t: t, bases: []string{a.url, b.url}, regID: reg["id"].(string), secret: reg["secret"].(string)}
	after := p.post(100, 20, 4)
	if !idBefore(lastBefore, after[0]) {
		t.Errorf("first ID after the empty restart %s is not above the last before it, %s", after[0], lastBefore)
	}
	var got []string
	for len(got) < len(after) {
		got = append(got, feed.nextEvent(t).id)
	}
	assertInOrder(t, "SSE client on B after the empty restart", got, after)
}

// TestLegacySessionOnWrongReplica: a 2025-11-25 session lives in the replica
// that created it. When the load balancer sends it to the other replica,
// the SDK answers 404 for the unknown Mcp-Session-Id; the client
// re-initializes there, re-subscribes, and catches up from its cursor with
// resources/read ?after=, so it misses none of the events POSTed meanwhile.
func TestLegacySessionOnWrongReplica(t *testing.T) {
	rs := redistest.Start(t)
	a := startGateway(t, t.TempDir(), "--redis", rs.URL(), "--dev-token")
	b := startGateway(t, t.TempDir(), "--redis", rs.URL())
	token := a.token
	reg := mustTool(t, connect(t, a.url, token, ""), "register_webhook", map[string]any{"label": "orders"}).Structured
	uri := reg["resourceUri"].(string)
	p := &alternating{t: t, bases: []string{a.url, b.url}, regID: reg["id"].(string), secret: reg["secret"].(string)}

	s := newRawSession(t, a.url, token, "2025-11-25")
	if _, rerr := s.call("resources/subscribe", map[string]any{"uri": uri}); rerr != nil {
		t.Fatalf("subscribe: %+v", rerr)
	}
	stream := s.openGET(t.Context(), "")
	first := p.post(0, 10, 2)
	var got []string
	withDeadline(t, replicaWait, "notifications on A", func() {
		for ev := range sseEvents(stream.Body) {
			if _, id := updatedEventID(ev.data); id != "" {
				if got = append(got, id); len(got) == len(first) {
					return
				}
			}
		}
	})
	stream.Body.Close()
	cursor := got[len(got)-1]

	// The load balancer now sends the session to B, which never saw it.
	req, _ := http.NewRequest(http.MethodPost, b.url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":99,"method":"resources/list","params":{}}`))
	s.header(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("session of A used on B: HTTP %d, want 404", resp.StatusCode)
	}
	missed := p.post(10, 10, 2) // while the client is between sessions

	// Recovery: a new session on B, subscribed again, then read from the cursor.
	s = newRawSession(t, b.url, token, "2025-11-25")
	if _, rerr := s.call("resources/subscribe", map[string]any{"uri": uri}); rerr != nil {
		t.Fatalf("subscribe on B: %+v", rerr)
	}
	stream = s.openGET(t.Context(), "")
	defer stream.Body.Close()
	for {
		res, rerr := s.call("resources/read", map[string]any{"uri": uri + "?after=" + cursor})
		if rerr != nil {
			t.Fatalf("resources/read after=%s: %+v", cursor, rerr)
		}
		var read struct {
			Contents []struct {
				Text string `json:"text"`
			} `json:"contents"`
		}
		var page struct {
			Events []testEvent `json:"events"`
			Cursor string      `json:"cursor"`
		}
		if err := json.Unmarshal(res, &read); err != nil || len(read.Contents) != 1 || json.Unmarshal([]byte(read.Contents[0].Text), &page) != nil {
			t.Fatalf("resources/read: %s", res)
		}
		if len(page.Events) == 0 {
			break
		}
		for _, e := range page.Events {
			got = append(got, e.ID)
		}
		cursor = page.Cursor
	}
	later := p.post(20, 10, 2)
	want := slices.Concat(first, missed, later)
	slices.SortFunc(want, compareIDs)
	withDeadline(t, replicaWait, "notifications on B", func() {
		for ev := range sseEvents(stream.Body) {
			_, id := updatedEventID(ev.data)
			if id == "" || !idBefore(cursor, id) {
				continue // read already, or announced before the read
			}
			if cursor, got = id, append(got, id); len(got) >= len(want) {
				return
			}
		}
	})
	assertInOrder(t, "legacy client across replicas", got, want)
}

// callToolErr calls a tool and returns the SDK's error, or the tool's.
func callToolErr(ctx context.Context, cs *mcp.ClientSession, name string) (*mcp.CallToolResult, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name})
	if err == nil && res.IsError {
		var text []string
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text = append(text, tc.Text)
			}
		}
		err = errors.New(strings.Join(text, " "))
	}
	return res, err
}
