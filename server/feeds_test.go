package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// feedWait bounds each wait of the feed tests; none takes it unless broken.
const feedWait = 15 * time.Second

// feedStream reads GET /v1/stream in the background so a test can wait for
// each block (an sseEvent) with a deadline. Its reader takes lines of up to
// 8 MiB, so an event up to the ingress limit arrives whole.
type feedStream struct {
	resp   *http.Response
	blocks chan sseEvent
}

// openFeed opens the principal's whole feed, resuming after lastEventID
// when it is not empty.
func openFeed(t *testing.T, base, token, lastEventID string) *feedStream {
	t.Helper()
	return openFeedURL(t, base+"/v1/stream", token, lastEventID)
}

// openFeedURL opens the feed at url (with its query: after=, label=).
func openFeedURL(t *testing.T, url, token, lastEventID string) *feedStream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &feedStream{resp: resp, blocks: make(chan sseEvent, 16)}
	go func() {
		defer close(s.blocks)
		for ev := range sseEvents(resp.Body) {
			s.blocks <- ev
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return s
}

// nextEvent returns the next block that carries an event.
func (s *feedStream) nextEvent(t *testing.T) sseEvent {
	t.Helper()
	deadline := time.After(feedWait)
	for {
		select {
		case b, ok := <-s.blocks:
			if !ok {
				t.Fatal("stream ended")
			}
			if b.data != "" {
				return b
			}
		case <-deadline:
			t.Fatalf("no event on /v1/stream within %s", feedWait)
		}
	}
}

// waitEnd fails unless the stream ends within feedWait without another event.
func (s *feedStream) waitEnd(t *testing.T) {
	t.Helper()
	deadline := time.After(feedWait)
	for {
		select {
		case b, ok := <-s.blocks:
			if !ok {
				return
			}
			if b.data != "" {
				t.Fatalf("unexpected event %s", b.data)
			}
		case <-deadline:
			t.Fatal("stream still open")
		}
	}
}

// postGeneric posts a signed generic webhook to base's endpoint of the
// registration and returns the event ID.
func postGeneric(t *testing.T, base string, reg map[string]any, body string) string {
	t.Helper()
	url := base + "/hooks/" + reg["id"].(string)
	status, resp := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(reg["secret"].(string), []byte(body))}, "Content-Type": {"application/json"}}, []byte(body))
	id, _ := resp["id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("POST %s: %d %v", url, status, resp)
	}
	return id
}

// TestFeedSSEAcrossRestart reads an event on /v1/stream, restarts hookgate
// with the stream open, and resumes with Last-Event-ID on the new process:
// the events posted while the client was away and after come once each.
func TestFeedSSEAcrossRestart(t *testing.T) {
	g, token := startAsAlice(t)
	reg := mustTool(t, connect(t, g.url, token, ""), "register_webhook", map[string]any{"label": "orders"}).Structured

	s := openFeed(t, g.url, token, "")
	first := postGeneric(t, g.url, reg, `{"id":"evt_1","type":"order.created"}`)
	b := s.nextEvent(t)
	var ev testEvent
	if err := json.Unmarshal([]byte(b.data), &ev); err != nil || b.id != first || ev.ID != first || b.event != "order.created" ||
		ev.Label != "orders" || ev.ProviderEventID != "evt_1" || !ev.Verified {
		t.Fatalf("got block %+v, want event %s", b, first)
	}

	start := time.Now()
	g.stop() // with the stream open: it must end, not hold up the shutdown
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown with an open feed took %s", d)
	}
	s.waitEnd(t)

	g = startGateway(t, g.dataDir)
	second := postGeneric(t, g.url, reg, `{"id":"evt_2","type":"order.paid"}`)
	s = openFeed(t, g.url, token, first)
	third := postGeneric(t, g.url, reg, `{"id":"evt_3","type":"order.shipped"}`)
	for _, want := range []string{second, third} {
		if b := s.nextEvent(t); b.id != want {
			t.Fatalf("after restart got %s, want %s (then %s)", b.id, want, third)
		}
	}
}

func TestFeedWebSocketThroughBinary(t *testing.T) {
	g, token := startAsAlice(t)
	cs := connect(t, g.url, token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	first := postGeneric(t, g.url, reg, `{"id":"evt_1","type":"order.created"}`)

	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.url, "http")+"/v1/ws?after=0-0&label=orders",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("dial /v1/ws: %v", err)
	}
	defer c.CloseNow()
	second := postGeneric(t, g.url, reg, `{"id":"evt_2","type":"order.paid"}`)
	for _, want := range []string{first, second} {
		_, msg, err := c.Read(ctx)
		var ev testEvent
		if err != nil || json.Unmarshal(msg, &ev) != nil || ev.ID != want {
			t.Fatalf("read %s (%v), want event %s", msg, err, want)
		}
	}

	if err := c.Write(ctx, websocket.MessageText, []byte(`{"ack":"`+first+`"}`)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(msg), `"acked":"`+first+`"`) {
		t.Fatalf("ack reply %s (%v)", msg, err)
	}
	hooks := mustTool(t, cs, "list_webhooks", nil).Structured["webhooks"].([]any)
	if p := hooks[0].(map[string]any)["pending"]; p != 1.0 {
		t.Fatalf("pending after the ack = %v, want 1", p)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// TestFeedTail runs `hookgate tail` (token from the environment, as
// HOOKGATE_TOKEN) and reads its NDJSON; Ctrl-C ends it with status 0.
func TestFeedTail(t *testing.T) {
	g, token := startAsAlice(t)
	reg := mustTool(t, connect(t, g.url, token, ""), "register_webhook", map[string]any{"label": "orders"}).Structured
	first := postGeneric(t, g.url, reg, `{"id":"evt_1","type":"order.created"}`)

	cmd := exec.Command(binary, "tail", "--server", g.url, "--after", "0-0")
	cmd.Env = append(os.Environ(), "HOOKGATE_TOKEN="+token)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	second := ""
	for i, want := range []*string{&first, &second} {
		select {
		case line, ok := <-lines:
			var ev testEvent
			if !ok || json.Unmarshal([]byte(line), &ev) != nil || ev.ID != *want || ev.Label != "orders" {
				t.Fatalf("tail printed %q, want event %s as one JSON line; stderr: %s", line, *want, stderr)
			}
		case <-time.After(feedWait):
			t.Fatalf("tail printed nothing within %s; stderr: %s", feedWait, stderr)
		}
		if i == 0 { // the first came from the log; the second arrives live
			second = postGeneric(t, g.url, reg, `{"id":"evt_2","type":"order.paid"}`)
		}
	}
	if !strings.Contains(stderr.String(), "connected") {
		t.Errorf("tail's stderr lacks a connection status line: %s", stderr)
	}

	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		exited <- err // for the deferred cleanup
		if err != nil {
			t.Fatalf("tail after Ctrl-C: %v, want exit status 0; stderr: %s", err, stderr)
		}
	case <-time.After(feedWait):
		t.Fatal("tail still running after Ctrl-C")
	}
}

func TestFeedsRequireToken(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir)
	for _, tc := range []struct{ path, token string }{
		{"/v1/stream", ""},
		{"/v1/stream", "hg_notatoken"},
		{"/v1/ws", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, g.url+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with token %q: %d, want 401", tc.path, tc.token, resp.StatusCode)
		}
	}
}
