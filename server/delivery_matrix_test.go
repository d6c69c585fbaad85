package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/clients"
)

// matrixLoad is one shape of traffic: count events whose bodies are each
// exactly size bytes.
type matrixLoad struct {
	name        string
	count, size int
}

// The sizes and batches users send: single events up to the ingress limit
// (1 MiB by default), a burst of GitHub pushes, many small events, many
// medium ones.
var matrixLoads = []matrixLoad{
	{"1KB", 1, 1 << 10},
	{"100KB", 1, 100 << 10},
	{"600KB", 1, 600 << 10},
	{"max-body", 1, 1 << 20},
	{"50x12KB", 50, 12 << 10},
	{"1000x1KB", 1000, 1 << 10},
	{"200x60KB", 200, 60 << 10},
}

// matrixBody is a generic JSON body of exactly size bytes whose "id" (the
// provider event ID) names the event.
func matrixBody(load string, i, size int) []byte {
	head := fmt.Sprintf(`{"id":"%s-%d","type":"matrix.test","pad":"`, load, i)
	const tail = `"}`
	return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
}

// matrixWant is what every path must deliver: each body, by provider ID.
type matrixWant map[string][]byte

// received collects what one path delivered and checks each event against
// what was sent as it arrives.
type received struct {
	t    testing.TB
	path string
	want matrixWant

	mu   sync.Mutex
	got  map[string]bool
	full chan struct{} // closed once every wanted event arrived
}

func newReceived(t testing.TB, path string, want matrixWant) *received {
	return &received{t: t, path: path, want: want, got: make(map[string]bool), full: make(chan struct{})}
}

func (r *received) add(providerID string, payload []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	body, ok := r.want[providerID]
	switch {
	case !ok:
		r.t.Errorf("%s: unexpected event %q", r.path, providerID)
	case !bytes.Equal(payload, body):
		r.t.Errorf("%s: event %s: payload of %d bytes differs from the %d bytes sent", r.path, providerID, len(payload), len(body))
	}
	if r.got[providerID] {
		return // at-least-once allows a repeat
	}
	r.got[providerID] = true
	if len(r.got) == len(r.want) {
		close(r.full)
	}
}

// wait fails the test unless every event arrives within d.
func (r *received) wait(d time.Duration) {
	r.t.Helper()
	if r.done() {
		return
	}
	select {
	case <-r.full:
	case <-time.After(d):
		r.mu.Lock()
		defer r.mu.Unlock()
		r.t.Fatalf("%s: %d of %d events within %s", r.path, len(r.got), len(r.want), d)
	}
}

func (r *received) done() bool {
	select {
	case <-r.full:
		return true
	default:
		return false
	}
}

// matrixAgent is one principal's view: a session in each era.
type matrixAgent struct {
	token      string
	eras       map[string]*mcp.ClientSession // "2025-11-25" and "2026-07-28"
	hookURL    map[string]string             // label → ingress URL
	hookSecret map[string]string
}

var matrixEras = []string{"2025-11-25", "2026-07-28"}

func newMatrixAgent(t *testing.T, base, token string) *matrixAgent {
	a := &matrixAgent{token: token, eras: map[string]*mcp.ClientSession{}, hookURL: map[string]string{}, hookSecret: map[string]string{}}
	for _, era := range matrixEras {
		a.eras[era] = connect(t, base, token, era)
	}
	return a
}

func (a *matrixAgent) register(t *testing.T, label string) {
	r := mustTool(t, a.eras["2026-07-28"], "register_webhook", map[string]any{"label": label})
	a.hookURL[label], a.hookSecret[label] = r.Structured["url"].(string), r.Structured["secret"].(string)
}

// ingest POSTs every body of the load to the label's URL, signed, with a
// few senders at once, and requires a 200 for each.
func (a *matrixAgent) ingest(t *testing.T, label string, bodies [][]byte) {
	var wg sync.WaitGroup
	jobs := make(chan []byte)
	for range 4 {
		wg.Go(func() {
			for body := range jobs {
				status, resp := post(t, a.hookURL[label], http.Header{"X-Webhook-Signature": {signGeneric(a.hookSecret[label], body)}}, body)
				if status != http.StatusOK {
					t.Errorf("POST %d bytes to %s: %d %v", len(body), label, status, resp)
				}
			}
		})
	}
	for _, b := range bodies {
		jobs <- b
	}
	close(jobs)
	wg.Wait()
}

// pending is list_webhooks' pending count of the label. It reports
// failures as errors, so push goroutines can call it too.
func (a *matrixAgent) pending(label string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := a.eras["2026-07-28"].CallTool(ctx, &mcp.CallToolParams{Name: "list_webhooks", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		return 0, fmt.Errorf("list_webhooks: %v %v", err, res)
	}
	raw, _ := json.Marshal(res.StructuredContent)
	var list struct {
		Webhooks []struct {
			Label   string `json:"label"`
			Pending int    `json:"pending"`
		} `json:"webhooks"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return 0, fmt.Errorf("list_webhooks: %w", err)
	}
	for _, h := range list.Webhooks {
		if h.Label == label {
			return h.Pending, nil
		}
	}
	return 0, fmt.Errorf("no webhook %q", label)
}

// drained waits until the label has nothing pending, for at most d.
func (a *matrixAgent) drained(label string, d time.Duration) func() error {
	return func() error {
		deadline := time.Now().Add(d)
		for {
			n, err := a.pending(label)
			if err != nil || n == 0 {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d events still pending after %s", label, n, d)
			}
			time.Sleep(50 * time.Millisecond) // polling against a deadline
		}
	}
}

// maxMultiEventText bounds the text of a tool result that carries more
// than one event: the events get half the 512 KiB reply budget (they are
// sent twice), plus the JSON the budget estimates.
const maxMultiEventText = 300 << 10

// drainTool empties the principal's (or one label's) queue with a polling
// tool, acking each batch, the way a legacy agent loops. Every reply while
// events are pending carries at least one event.
func drainTool(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any, got *received, n int) {
	for calls := 0; ; calls++ {
		if calls > n+5 {
			t.Fatalf("%s: still not drained after %d calls", got.path, calls)
		}
		r := mustTool(t, cs, tool, args)
		var events []testEvent
		if tool == "poll_events" {
			if err := json.Unmarshal([]byte(r.Text), &events); err != nil {
				t.Fatalf("%s: text is not an event array: %v", got.path, err)
			}
		} else {
			events = decodeBatch(t, r.Text).Events
		}
		if structured, _ := r.Structured["events"].([]any); len(structured) != len(events) {
			t.Fatalf("%s: text has %d events, structuredContent %d", got.path, len(events), len(structured))
		}
		if len(events) > 1 && len(r.Text) > maxMultiEventText {
			t.Errorf("%s: a reply of %d events is %d bytes, past the byte budget", got.path, len(events), len(r.Text))
		}
		if len(events) == 0 {
			if got.done() {
				return
			}
			t.Fatalf("%s: empty reply (remaining %v) before every event arrived", got.path, r.Structured["remaining"])
		}
		ids := make([]any, 0, len(events))
		for _, e := range events {
			got.add(e.ProviderEventID, e.Payload)
			ids = append(ids, e.ID)
		}
		mustTool(t, cs, "ack_event", map[string]any{"event_ids": ids})
	}
}

// readResourcePages reads the label's resource page by page from the
// start: a page is bounded by bytes, and hasMore says another follows.
func readResourcePages(t *testing.T, cs *mcp.ClientSession, label string, got *received, n int) {
	after := "0-0"
	for pages := 0; ; pages++ {
		if pages > n+5 {
			t.Fatalf("%s: more than %d pages", got.path, pages)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "hookgate://webhooks/" + label + "?after=" + after})
		cancel()
		if err != nil {
			t.Fatalf("%s: read after %s: %v", got.path, after, err)
		}
		var page struct {
			Events  []testEvent `json:"events"`
			Cursor  string      `json:"cursor"`
			HasMore bool        `json:"hasMore"`
		}
		if err := json.Unmarshal([]byte(res.Contents[0].Text), &page); err != nil {
			t.Fatalf("%s: decode page: %v", got.path, err)
		}
		if page.HasMore && len(page.Events) == 0 {
			t.Fatalf("%s: an empty page says hasMore", got.path)
		}
		for _, e := range page.Events {
			got.add(e.ProviderEventID, e.Payload)
		}
		if !page.HasMore {
			return
		}
		after = page.Cursor
	}
}

// pollEvents reads the label through the Events extension's events/poll
// from the start, in the era of call.
func pollEvents(t *testing.T, call func(params map[string]any) (json.RawMessage, error), label string, got *received, n int) {
	cursor := "0-0"
	for polls := 0; ; polls++ {
		if polls > n+5 {
			t.Fatalf("%s: more than %d polls", got.path, polls)
		}
		raw, err := call(map[string]any{"name": label, "arguments": map[string]any{}, "cursor": cursor})
		if err != nil {
			t.Fatalf("%s: %v", got.path, err)
		}
		var page struct {
			Events []struct {
				Data testEvent `json:"data"`
			} `json:"events"`
			Cursor  string `json:"cursor"`
			HasMore bool   `json:"hasMore"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			t.Fatalf("%s: decode: %v", got.path, err)
		}
		for _, o := range page.Events {
			got.add(o.Data.ProviderEventID, o.Data.Payload)
		}
		if len(page.Events) == 0 && !page.HasMore {
			return
		}
		cursor = page.Cursor
	}
}

// runDriver runs a client-library driver until it has handed every event
// to its handler and then, when until is set, until that returns (the
// driver acked what it handled). It reports failures as errors, so it can
// run on its own goroutine.
func runDriver(d clients.Driver, got *received, until func() error) error {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() {
		stopped <- d.Run(ctx, func(_ context.Context, e clients.Event) error {
			got.add(e.ProviderEventID, e.Payload)
			return nil
		})
	}()
	defer func() {
		cancel()
		<-stopped
	}()
	select {
	case <-got.full:
	case err := <-stopped:
		return fmt.Errorf("%s: driver stopped: %v", got.path, err)
	case <-time.After(90 * time.Second):
		got.mu.Lock()
		defer got.mu.Unlock()
		return fmt.Errorf("%s: %d of %d events within 90s", got.path, len(got.got), len(got.want))
	}
	if until != nil {
		return until()
	}
	return nil
}

// TestEveryEventReachesTheAgent sends each load and reads it back through
// every path in both eras: the polling tools, resource reads, events/poll,
// the SSE and WebSocket feeds, resource subscriptions (2025) and listens
// (2026), and Events streams. Every event must arrive exactly as sent and
// end acked; nothing is dead-lettered, and no reply is empty while events
// wait.
func TestEveryEventReachesTheAgent(t *testing.T) {
	dir := t.TempDir()
	tokens := map[string]string{}
	for _, name := range []string{"matrix", "check-2025-11-25", "check-2026-07-28"} {
		tokens[name] = createToken(t, dir, name)
	}
	g := startGateway(t, dir)
	agent := newMatrixAgent(t, g.url, tokens["matrix"])
	checkers := map[string]*matrixAgent{}
	for _, era := range matrixEras {
		checkers[era] = newMatrixAgent(t, g.url, tokens["check-"+era])
	}

	for _, load := range matrixLoads {
		t.Run(load.name, func(t *testing.T) {
			want := matrixWant{}
			bodies := make([][]byte, load.count)
			for i := range bodies {
				bodies[i] = matrixBody(load.name, i, load.size)
				want[fmt.Sprintf("%s-%d", load.name, i)] = bodies[i]
			}
			cfg := func(token, label string) clients.Config {
				return clients.Config{Server: g.url, Token: token, Label: label}
			}

			// Push drivers first, so they are told of each event as it
			// arrives rather than reading a backlog.
			logLabel, subLabel, listenLabel := "log-"+load.name, "sub-"+load.name, "listen-"+load.name
			for _, l := range []string{logLabel, subLabel, listenLabel} {
				agent.register(t, l)
			}
			pushed := map[string]*received{
				"2025 resources/subscribe":  newReceived(t, "2025 resources/subscribe", want),
				"2026 subscriptions/listen": newReceived(t, "2026 subscriptions/listen", want),
			}
			var pushWG sync.WaitGroup
			pushWG.Go(func() {
				if err := runDriver(clients.NewSubscriber(cfg(agent.token, subLabel)), pushed["2025 resources/subscribe"], agent.drained(subLabel, time.Minute)); err != nil {
					t.Error(err)
				}
			})
			pushWG.Go(func() {
				if err := runDriver(clients.NewListener(cfg(agent.token, listenLabel)), pushed["2026 subscriptions/listen"], agent.drained(listenLabel, time.Minute)); err != nil {
					t.Error(err)
				}
			})

			for _, l := range []string{logLabel, subLabel, listenLabel} {
				agent.ingest(t, l, bodies)
			}
			for _, era := range matrixEras {
				for _, tool := range []string{"poll_events", "check_pending_events"} {
					label := tool + "-" + era + "-" + load.name
					a := agent
					if tool == "check_pending_events" {
						a = checkers[era] // it has no label: one principal each
					}
					a.register(t, label)
					a.ingest(t, label, bodies)
					got := newReceived(t, era+" "+tool, want)
					args := map[string]any{}
					if tool == "poll_events" {
						args = map[string]any{"label": label}
					}
					drainTool(t, a.eras[era], tool, args, got, load.count)
					got.wait(0)
					if n, err := a.pending(label); err != nil || n != 0 {
						t.Errorf("%s: %d events still pending after the loop (%v)", got.path, n, err)
					}
				}
			}

			// The log label, read without leasing by every path that reads
			// the log or the pending queue, then acked over WebSocket.
			for _, era := range matrixEras {
				got := newReceived(t, era+" resources/read", want)
				readResourcePages(t, agent.eras[era], logLabel, got, load.count)
				got.wait(0)
			}
			legacy := newRawSession(t, g.url, agent.token, "2025-11-25")
			for era, call := range map[string]func(map[string]any) (json.RawMessage, error){
				"2026-07-28": func(p map[string]any) (json.RawMessage, error) {
					status, msg := evRequest(t, g.url, agent.token, "events/poll", p)
					var res struct {
						Result json.RawMessage `json:"result"`
					}
					if err := json.Unmarshal(msg, &res); status != http.StatusOK || err != nil || res.Result == nil {
						return nil, fmt.Errorf("events/poll: HTTP %d %.200s", status, msg)
					}
					return res.Result, nil
				},
				"2025-11-25": func(p map[string]any) (json.RawMessage, error) {
					raw, rerr := legacy.call("events/poll", p)
					if rerr != nil {
						return nil, fmt.Errorf("events/poll: %+v", rerr)
					}
					return raw, nil
				},
			} {
				got := newReceived(t, era+" events/poll", want)
				pollEvents(t, call, logLabel, got, load.count)
				got.wait(0)
			}
			for name, d := range map[string]clients.Driver{
				"SSE /v1/stream":        clients.NewSSE(cfg(agent.token, logLabel)),
				"events/stream":         clients.NewEventsStream(cfg(agent.token, logLabel)),
				"events/poll (clients)": clients.NewEventsPoller(cfg(agent.token, logLabel)),
			} {
				if err := runDriver(d, newReceived(t, name, want), nil); err != nil {
					t.Error(err)
				}
			}
			if err := runDriver(clients.NewWebSocket(cfg(agent.token, logLabel)), newReceived(t, "WebSocket /v1/ws", want), agent.drained(logLabel, time.Minute)); err != nil {
				t.Error(err)
			}

			pushWG.Wait()
			assertNothingDropped(t, agent)
			for _, era := range matrixEras {
				assertNothingDropped(t, checkers[era])
			}
		})
	}
}

// assertNothingDropped fails if get_stats reports a dead letter or a drop
// for any of the principal's webhooks.
func assertNothingDropped(t *testing.T, a *matrixAgent) {
	r := mustTool(t, a.eras["2026-07-28"], "get_stats", nil)
	for _, w := range r.Structured["webhooks"].([]any) {
		w := w.(map[string]any)
		if rate, _ := w["dropRate"].(float64); rate != 0 {
			t.Errorf("%s: dropRate %v, want 0 (%v)", w["label"], rate, w)
		}
	}
}
