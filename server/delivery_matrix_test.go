package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
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

// matrixEvent is one webhook of a load: its provider event ID (sent as
// X-Webhook-Id, so the body may have any shape), its body, and whether the
// payload is delivered as the JSON sent (inline) or in the base64 form.
type matrixEvent struct {
	id     string
	body   []byte
	inline bool
}

// matrixLoad is one shape of traffic.
type matrixLoad struct {
	name   string
	events []matrixEvent
}

// padded is a load of count generic JSON bodies of exactly size bytes.
func padded(name string, count, size int) matrixLoad {
	l := matrixLoad{name: name}
	for i := range count {
		head := fmt.Sprintf(`{"id":"%s-%d","type":"matrix.test","pad":"`, name, i)
		const tail = `"}`
		body := []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
		l.events = append(l.events, matrixEvent{id: fmt.Sprintf("%s-%d", name, i), body: body, inline: true})
	}
	return l
}

// githubPushes is a load of count GitHub push bodies of about 50 KB each,
// shaped as GitHub sends them: nested objects, a list of commits whose
// messages hold non-ASCII text, quotes, newlines and the "<email>" of
// co-author trailers, written without HTML escaping as GitHub does.
func githubPushes(name string, count int) matrixLoad {
	l := matrixLoad{name: name}
	for i := range count {
		type person struct {
			Name     string `json:"name"`
			Email    string `json:"email"`
			Username string `json:"username"`
		}
		type commit struct {
			ID        string   `json:"id"`
			TreeID    string   `json:"tree_id"`
			Distinct  bool     `json:"distinct"`
			Message   string   `json:"message"`
			Timestamp string   `json:"timestamp"`
			URL       string   `json:"url"`
			Author    person   `json:"author"`
			Committer person   `json:"committer"`
			Added     []string `json:"added"`
			Removed   []string `json:"removed"`
			Modified  []string `json:"modified"`
		}
		push := map[string]any{
			"ref": "refs/heads/main", "before": strings.Repeat("a", 40), "after": strings.Repeat("b", 40),
			"repository": map[string]any{"id": 123456789, "full_name": "octo-org/hello-world", "private": false,
				"owner": map[string]any{"login": "octo-org", "id": 9919, "type": "Organization"}, "topics": []string{"agents", "webhooks"}},
			"pusher": map[string]any{"name": "mona", "email": "mona@example.com"},
			"forced": false, "compare": "https://github.com/octo-org/hello-world/compare/aaaa...bbbb",
		}
		var commits []commit
		for c := 0; ; c++ {
			commits = append(commits, commit{
				ID: fmt.Sprintf("%040x", c), TreeID: fmt.Sprintf("%040x", c+1), Distinct: true,
				Message:   fmt.Sprintf("Fix ünïcödé handling in \"parser\" #%d (修正) 🚀\n\nDetails: a < b && c > d\n\nCo-authored-by: Octo Cat <octocat@example.com>", c),
				Timestamp: "2026-12-08T04:40:00+01:00", URL: "https://github.com/octo-org/hello-world/commit/" + fmt.Sprintf("%040x", c),
				Author: person{"Mona Lisa Octocat", "mona@example.com", "mona"}, Committer: person{"GitHub", "noreply@github.com", "web-flow"},
				Added: []string{"src/new_file.go"}, Removed: []string{}, Modified: []string{"README.md", "src/parser/parser.go", "src/parser/parser_test.go"},
			})
			if len(commits)*700 > 50<<10 {
				break
			}
		}
		push["commits"], push["head_commit"] = commits, commits[len(commits)-1]
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(push)
		l.events = append(l.events, matrixEvent{id: fmt.Sprintf("%s-%d", name, i), body: bytes.TrimSpace(buf.Bytes()), inline: true})
	}
	return l
}

// oddJSON is a load of bodies at the edges of what a sender may POST:
// scalars and arrays at the top, escapes of every kind, numbers at the
// edges of float64, duplicate keys, white space around, the deepest nesting
// kept as JSON, and bodies delivered in the base64 form (nested past the
// bound, a number past float64, not UTF-8, not JSON).
func oddJSON(name string) matrixLoad {
	deep := func(d int) string { return strings.Repeat("[", d) + strings.Repeat("]", d) }
	bodies := []struct {
		body   string
		inline bool
	}{
		{`[1,"two",{"three":3.0}]`, true},
		{`"just a string"`, true},
		{`-0.5e-7`, true},
		{`null`, true},
		{`{}`, true},
		{`{"s":"é中文🙂 \" \\ \/ \b\f\n\r\t \u0000 \ud83d\ude00 \u00e9","html":"<b>&amp;</b>","sep":"  "}`, true},
		{`{"big":123456789012345678901234567890,"tiny":-1e-400,"max":1.7976931348623157e308}`, true},
		{`{"huge":1e400}`, false},
		{`{"a":1,"a":2}`, true},
		{" \n\t{\"ws\":true}\r\n ", true},
		{deep(512), true},
		{deep(513), false},
		{deep(10_000), false},
		{"{\"a\":\"\xff\xfe\"}", false},
		{"{\"nul\":\"a\x00b\"}", false},
		{"hello, world", false},
	}
	l := matrixLoad{name: name}
	for i, b := range bodies {
		l.events = append(l.events, matrixEvent{id: fmt.Sprintf("%s-%d", name, i), body: []byte(b.body), inline: b.inline})
	}
	return l
}

// The sizes, shapes and batches users send: single events up to the
// ingress limit (1 MiB by default), GitHub pushes, a batch at poll_events'
// default limit (50), many small events, many medium ones, and odd JSON.
var matrixLoads = []matrixLoad{
	padded("1KB", 1, 1<<10),
	padded("100KB", 1, 100<<10),
	padded("600KB", 1, 600<<10),
	padded("max-body", 1, 1<<20),
	githubPushes("github-push-20x50KB", 20),
	padded("50x12KB", 50, 12<<10),
	padded("1000x1KB", 1000, 1<<10),
	padded("200x60KB", 200, 60<<10),
	oddJSON("odd-json"),
}

// htmlEscaped is JSON as Go's encoding/json writes it back out, which the
// MCP SDK and every encoder of a JSON-RPC message do: the same text with
// <, >, & and U+2028, U+2029 (which only stand inside strings) escaped as
// \u003c, \u003e, \u0026, \u2028, \u2029. The value is the same.
func htmlEscaped(b []byte) []byte {
	var out bytes.Buffer
	json.HTMLEscape(&out, b)
	return out.Bytes()
}

// matrixWant is what every path must deliver, by provider event ID.
type matrixWant map[string]matrixEvent

// deliveredAs checks that payload is ev as the contract delivers it: the
// body as sent (white space around it trimmed) for JSON, else the base64
// form holding the exact bytes.
func deliveredAs(payload []byte, ev matrixEvent) error {
	if ev.inline {
		want := bytes.TrimSpace(ev.body)
		if !bytes.Equal(payload, want) && !bytes.Equal(payload, htmlEscaped(want)) {
			return fmt.Errorf("payload %.120q differs from the %d bytes sent %.120q", payload, len(want), want)
		}
		return nil
	}
	var form struct {
		Base64 *string `json:"base64"`
	}
	if err := json.Unmarshal(payload, &form); err != nil || form.Base64 == nil {
		return fmt.Errorf("payload %.120q is not the base64 form", payload)
	}
	if raw, err := base64.StdEncoding.DecodeString(*form.Base64); err != nil || !bytes.Equal(raw, ev.body) {
		return fmt.Errorf("base64 form does not hold the %d bytes sent", len(ev.body))
	}
	return nil
}

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
	ev, ok := r.want[providerID]
	if !ok {
		r.t.Errorf("%s: unexpected event %q", r.path, providerID)
	} else if err := deliveredAs(payload, ev); err != nil {
		r.t.Errorf("%s: event %s: %v", r.path, providerID, err)
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

// ingest POSTs every event of the load to the label's URL, signed, with
// its ID in X-Webhook-Id, with a few senders at once, and requires a 200
// for each.
func (a *matrixAgent) ingest(t *testing.T, label string, events []matrixEvent) {
	var wg sync.WaitGroup
	jobs := make(chan matrixEvent)
	for range 4 {
		wg.Go(func() {
			for ev := range jobs {
				status, resp := post(t, a.hookURL[label], http.Header{
					"X-Webhook-Signature": {signGeneric(a.hookSecret[label], ev.body)},
					"X-Webhook-Id":        {ev.id},
				}, ev.body)
				if status != http.StatusOK {
					t.Errorf("POST %d bytes to %s: %d %v", len(ev.body), label, status, resp)
				}
			}
		})
	}
	for _, ev := range events {
		jobs <- ev
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

// drained waits until the label has nothing pending, for at most d, or
// until ctx ends.
func (a *matrixAgent) drained(label string, d time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		deadline := time.Now().Add(d)
		for ctx.Err() == nil {
			n, err := a.pending(label)
			if err != nil || n == 0 {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d events still pending after %s", label, n, d)
			}
			time.Sleep(50 * time.Millisecond) // polling against a deadline
		}
		return nil
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
// run on its own goroutine, and stops quietly when ctx (the test's) ends.
func runDriver(testCtx context.Context, d clients.Driver, got *received, until func(context.Context) error) error {
	ctx, cancel := context.WithCancel(testCtx)
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
	case <-testCtx.Done():
		return nil // the test failed elsewhere and is ending
	case err := <-stopped:
		return fmt.Errorf("%s: driver stopped: %v", got.path, err)
	case <-time.After(90 * time.Second):
		got.mu.Lock()
		defer got.mu.Unlock()
		return fmt.Errorf("%s: %d of %d events within 90s", got.path, len(got.got), len(got.want))
	}
	if until != nil {
		return until(testCtx)
	}
	return nil
}

// TestEveryEventReachesTheAgent sends each load and reads it back through
// every path in both eras: the polling tools, resource reads, events/poll,
// the log API that replay reads, the SSE and WebSocket feeds, resource
// subscriptions (2025) and listens (2026), and Events streams. Every event
// must arrive as sent (see deliveredAs) and end acked; nothing is
// dead-lettered, and no reply is empty while events wait.
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
			for _, ev := range load.events {
				want[ev.id] = ev
			}
			n := len(load.events)
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
			t.Cleanup(pushWG.Wait) // after a failure, t.Context() stops them
			pushWG.Go(func() {
				if err := runDriver(t.Context(), clients.NewSubscriber(cfg(agent.token, subLabel)), pushed["2025 resources/subscribe"], agent.drained(subLabel, time.Minute)); err != nil {
					t.Error(err)
				}
			})
			pushWG.Go(func() {
				if err := runDriver(t.Context(), clients.NewListener(cfg(agent.token, listenLabel)), pushed["2026 subscriptions/listen"], agent.drained(listenLabel, time.Minute)); err != nil {
					t.Error(err)
				}
			})

			for _, l := range []string{logLabel, subLabel, listenLabel} {
				agent.ingest(t, l, load.events)
			}
			for _, era := range matrixEras {
				for _, tool := range []string{"poll_events", "check_pending_events"} {
					label := tool + "-" + era + "-" + load.name
					a := agent
					if tool == "check_pending_events" {
						a = checkers[era] // it has no label: one principal each
					}
					a.register(t, label)
					a.ingest(t, label, load.events)
					got := newReceived(t, era+" "+tool, want)
					args := map[string]any{}
					if tool == "poll_events" {
						args = map[string]any{"label": label}
					}
					drainTool(t, a.eras[era], tool, args, got, n)
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
				readResourcePages(t, agent.eras[era], logLabel, got, n)
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
				pollEvents(t, call, logLabel, got, n)
				got.wait(0)
			}
			replayed := newReceived(t, "GET /v1/events (replay)", want)
			if err := clients.ReadLog(t.Context(), clients.LogQuery{Server: g.url, Token: agent.token, Label: logLabel}, func(e clients.Event) error {
				replayed.add(e.ProviderEventID, e.Payload)
				return nil
			}); err != nil {
				t.Fatalf("replay: %v", err)
			}
			replayed.wait(0)
			for name, d := range map[string]clients.Driver{
				"SSE /v1/stream":        clients.NewSSE(cfg(agent.token, logLabel)),
				"events/stream":         clients.NewEventsStream(cfg(agent.token, logLabel)),
				"events/poll (clients)": clients.NewEventsPoller(cfg(agent.token, logLabel)),
			} {
				if err := runDriver(t.Context(), d, newReceived(t, name, want), nil); err != nil {
					t.Error(err)
				}
			}
			if err := runDriver(t.Context(), clients.NewWebSocket(cfg(agent.token, logLabel)), newReceived(t, "WebSocket /v1/ws", want), agent.drained(logLabel, time.Minute)); err != nil {
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
