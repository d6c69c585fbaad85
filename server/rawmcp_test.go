package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawSession speaks legacy MCP over plain HTTP, so tests can see and cut
// what the SDK client would hide (SSE ids, stream cuts, Last-Event-ID).
type rawSession struct {
	t       *testing.T
	base    string
	token   string
	version string
	id      string // Mcp-Session-Id
	nextID  int
}

func (s *rawSession) header(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
		req.Header.Set("Mcp-Protocol-Version", s.version)
	}
}

// call sends one JSON-RPC request and returns its result or error object.
func (s *rawSession) call(method string, params any) (json.RawMessage, *rpcError) {
	s.t.Helper()
	s.nextID++
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": s.nextID, "method": method, "params": params})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/mcp", strings.NewReader(string(body)))
	s.header(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		s.id = id
	}
	var msg struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for ev := range sseEvents(resp.Body) {
			if strings.Contains(ev.data, `"id":`+fmt.Sprint(s.nextID)) {
				_ = json.Unmarshal([]byte(ev.data), &msg)
				break
			}
		}
	} else {
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			s.t.Fatalf("%s: HTTP %d %s", method, resp.StatusCode, raw)
		}
		_ = json.Unmarshal(raw, &msg)
	}
	return msg.Result, msg.Error
}

func (s *rawSession) notify(method string) {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/mcp", strings.NewReader(string(body)))
	s.header(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s: %v", method, err)
	}
	resp.Body.Close()
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// newRawSession initializes a legacy session.
func newRawSession(t *testing.T, base, token, version string) *rawSession {
	t.Helper()
	s := &rawSession{t: t, base: base, token: token, version: version}
	if _, rerr := s.call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "raw-test", "version": "1"},
	}); rerr != nil {
		t.Fatalf("initialize: %+v", rerr)
	}
	if s.id == "" {
		t.Fatal("initialize returned no Mcp-Session-Id")
	}
	s.notify("notifications/initialized")
	return s
}

// openGET opens the session's standalone stream, resuming after lastEventID
// when it is not empty. Cancel ctx to cut it.
func (s *rawSession) openGET(ctx context.Context, lastEventID string) *http.Response {
	s.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/mcp", nil)
	s.header(req)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("GET stream: %d %s", resp.StatusCode, raw)
	}
	return resp
}

// sseEvent is one Server-Sent Event; comment lines are kept in comments.
type sseEvent struct {
	id, event, data string
	comment         bool
}

// sseEvents parses an event stream until it ends.
func sseEvents(r io.Reader) func(func(sseEvent) bool) {
	return func(yield func(sseEvent) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) && !yield(ev) {
					return
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = true
			case strings.HasPrefix(line, "id:"):
				ev.id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
			case strings.HasPrefix(line, "event:"):
				ev.event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				ev.data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
			}
		}
	}
}

// updatedEventID returns the hookgate/eventId of a resources/updated
// notification, or "" for any other message.
func updatedEventID(data string) (uri, eventID string) {
	var msg struct {
		Method string `json:"method"`
		Params struct {
			URI  string         `json:"uri"`
			Meta map[string]any `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal([]byte(data), &msg) != nil || msg.Method != "notifications/resources/updated" {
		return "", ""
	}
	id, _ := msg.Params.Meta["hookgate/eventId"].(string)
	return msg.Params.URI, id
}

// withDeadline fails the test if f does not return in d.
func withDeadline(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: not done within %s", what, d)
	}
}

// iterPull turns a push iterator into next/stop, like iter.Pull.
func iterPull(seq func(func(sseEvent) bool)) (func() (sseEvent, bool), func()) {
	return iter.Pull(iter.Seq[sseEvent](seq))
}
