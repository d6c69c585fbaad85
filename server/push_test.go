package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// notifyLog records the hookgate/eventId of every resources/updated a
// client receives for one URI.
type notifyLog struct {
	uri  string
	mu   sync.Mutex
	ids  []string
	meta []mcp.Meta
}

func (c *notifyLog) handler(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
	if req.Params.URI != c.uri {
		return
	}
	id, _ := req.Params.Meta["hookgate/eventId"].(string)
	c.mu.Lock()
	c.ids = append(c.ids, id)
	c.meta = append(c.meta, req.Params.Meta)
	c.mu.Unlock()
}

func (c *notifyLog) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

// waitFor polls until the notifyLog holds n IDs or the deadline passes.
func (c *notifyLog) waitFor(t *testing.T, n int, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ids := c.snapshot(); len(ids) >= n {
			return ids
		}
		time.Sleep(10 * time.Millisecond) // polling against a deadline
	}
	ids := c.snapshot()
	t.Fatalf("%s: %d notifications within %s, want %d", c.uri, len(ids), d, n)
	return nil
}

// subscriber connects an SDK client of the given era that collects
// notifications for uri; for 2026-07-28 it waits for the listen's ack.
func subscriber(t *testing.T, base, token, version, uri string) *notifyLog {
	t.Helper()
	c := &notifyLog{uri: uri}
	acked := make(chan struct{}, 1)
	client := mcp.NewClient(&mcp.Implementation{Name: "push-test", Version: "1"}, &mcp.ClientOptions{ResourceUpdatedHandler: c.handler})
	client.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "notifications/subscriptions/acknowledged" {
				select {
				case acked <- struct{}{}:
				default:
				}
			}
			return next(ctx, method, req)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   base + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{token: token, base: http.DefaultTransport}},
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect %s: %v", version, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
		t.Fatalf("subscribe %s (%s): %v", uri, version, err)
	}
	if version == "" {
		select {
		case <-acked:
		case <-ctx.Done():
			t.Fatalf("2026 listen for %s never acknowledged", uri)
		}
	}
	return c
}

// postMany POSTs n signed generic webhooks with workers in parallel and
// returns the IDs hookgate answered, sorted.
func postMany(t *testing.T, url, secret string, from, n, workers int, bodyPad int) []string {
	t.Helper()
	var mu sync.Mutex
	var ids []string
	jobs := make(chan int)
	var wg sync.WaitGroup
	pad := strings.Repeat("x", bodyPad)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				body := fmt.Appendf(nil, `{"id":"ev-%d","type":"push.test","pad":%q}`, i, pad)
				status, resp := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(secret, body)}}, body)
				if status != http.StatusOK {
					t.Errorf("POST %d: %d", i, status)
					continue
				}
				mu.Lock()
				ids = append(ids, resp["id"].(string))
				mu.Unlock()
			}
		})
	}
	for i := from; i < from+n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	slices.SortFunc(ids, compareIDs)
	return ids
}

func compareIDs(a, b string) int {
	switch {
	case a == b:
		return 0
	case idBefore(a, b):
		return -1
	}
	return 1
}

// assertInOrder checks got is exactly want (sorted), in ID order.
func assertInOrder(t *testing.T, who string, got, want []string) {
	t.Helper()
	if !slices.IsSortedFunc(got, compareIDs) {
		t.Errorf("%s: notifications out of ID order", who)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %d notifications, want exactly the %d posted (first mismatch shown): %v", who, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d got %s want %s", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d vs %d", len(got), len(want))
}

// TestPushEveryEraGetsEveryEvent: a 2025-11-25 subscriber (resources/subscribe
// and the GET stream) and a 2026-07-28 listener subscribed to the same label
// both receive each of 1,000 events POSTed in a burst, once, in ID order,
// with the event inline in _meta.
func TestPushEveryEraGetsEveryEvent(t *testing.T) {
	g := startGateway(t, t.TempDir())
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	uri := reg["resourceUri"].(string)

	legacy := subscriber(t, g.url, g.token, "2025-11-25", uri)
	older := subscriber(t, g.url, g.token, "2025-06-18", uri)
	modern := subscriber(t, g.url, g.token, "", uri)
	all := subscriber(t, g.url, g.token, "2025-11-25", "hookgate://events")

	want := postMany(t, reg["url"].(string), reg["secret"].(string), 0, 1000, 16, 0)
	for name, c := range map[string]*notifyLog{"2025-11-25": legacy, "2025-06-18": older, "2026-07-28": modern, "hookgate://events": all} {
		assertInOrder(t, name, c.waitFor(t, len(want), 60*time.Second), want)
	}
	var inline struct {
		ID    string          `json:"id"`
		Label string          `json:"label"`
		Data  json.RawMessage `json:"payload"`
	}
	raw, _ := json.Marshal(modern.meta[0]["hookgate/event"])
	if err := json.Unmarshal(raw, &inline); err != nil || inline.ID != want[0] || inline.Label != "orders" {
		t.Fatalf("_meta hookgate/event = %s, want the event %s", raw, want[0])
	}
}

// TestLegacyStreamResumesWithLastEventID cuts a legacy session's GET stream
// after 300 notifications while webhooks keep arriving, reconnects with
// Last-Event-ID, and gets the rest exactly once.
func TestLegacyStreamResumesWithLastEventID(t *testing.T) {
	g := startGateway(t, t.TempDir())
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	uri := reg["resourceUri"].(string)
	url, secret := reg["url"].(string), reg["secret"].(string)

	s := newRawSession(t, g.url, g.token, "2025-11-25")
	if _, rerr := s.call("resources/subscribe", map[string]any{"uri": uri}); rerr != nil {
		t.Fatalf("subscribe: %+v", rerr)
	}
	ctx, cut := context.WithCancel(context.Background())
	resp := s.openGET(ctx, "")

	posted := make(chan []string, 1)
	go func() { posted <- postMany(t, url, secret, 0, 1000, 8, 0) }()

	var got []string
	var lastID string
	withDeadline(t, 60*time.Second, "first 300 notifications", func() {
		for ev := range sseEvents(resp.Body) {
			if _, id := updatedEventID(ev.data); id != "" {
				got = append(got, id)
				lastID = ev.id
				if len(got) == 300 {
					return
				}
			}
		}
	})
	cut()
	resp.Body.Close()
	if lastID == "" {
		t.Fatal("notifications carry no SSE id: nothing to resume from")
	}
	want := <-posted // every POST answered while the stream was down

	resp = s.openGET(context.Background(), lastID)
	defer resp.Body.Close()
	withDeadline(t, 60*time.Second, "the rest after Last-Event-ID", func() {
		for ev := range sseEvents(resp.Body) {
			if _, id := updatedEventID(ev.data); id != "" {
				got = append(got, id)
				if len(got) >= len(want) {
					return
				}
			}
		}
	})
	assertInOrder(t, "resumed legacy stream", got, want)
}

// TestStuckSubscriberDoesNotHoldUpOthers: a session whose GET stream is never
// read while 1,000 large events arrive is cut, and a healthy subscriber of
// the same principal still gets every event.
func TestStuckSubscriberDoesNotHoldUpOthers(t *testing.T) {
	g := startGateway(t, t.TempDir())
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "big"}).Structured
	uri := reg["resourceUri"].(string)

	stuck := newRawSession(t, g.url, g.token, "2025-11-25")
	if _, rerr := stuck.call("resources/subscribe", map[string]any{"uri": uri}); rerr != nil {
		t.Fatalf("subscribe: %+v", rerr)
	}
	stuckResp := stuck.openGET(context.Background(), "") // never read until the end
	defer stuckResp.Body.Close()
	healthy := subscriber(t, g.url, g.token, "2025-11-25", uri)

	// 1,000 events of ~8 KiB, inlined in each notification: ~8 MiB, far more
	// than the stuck stream's buffer and socket can hold.
	want := postMany(t, reg["url"].(string), reg["secret"].(string), 0, 1000, 8, 8<<10)
	assertInOrder(t, "healthy subscriber", healthy.waitFor(t, len(want), 60*time.Second), want)

	// The stuck stream was cut: reading it now reaches its end, short of
	// everything that was sent.
	var seen int
	withDeadline(t, 30*time.Second, "reading the cut stream to its end", func() {
		for ev := range sseEvents(stuckResp.Body) {
			if _, id := updatedEventID(ev.data); id != "" {
				seen++
			}
		}
	})
	if seen >= len(want) {
		t.Fatalf("the stuck stream delivered all %d notifications; it should have been cut", seen)
	}
}
