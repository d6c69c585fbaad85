package clients

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Protocol versions the MCP drivers ask for: "" lets the SDK negotiate the
// newest (2026-07-28 against hookgate); legacyVersion forces the 2025
// initialize handshake and its session GET stream.
const (
	latestVersion = ""
	legacyVersion = "2025-11-25"
)

// mcpSession is one SDK client session and what the driver learns from
// below the SDK: new notifications, a stream (re)opening, a listen ending.
type mcpSession struct {
	cs    *mcp.ClientSession
	watch *streamWatch
	// updated gets a token for each resources/updated, coalesced: the
	// driver reads from its cursor, so one token covers many events.
	updated chan struct{}
	// acked gets a token for each subscriptions/acknowledged (2026).
	acked chan struct{}
	// closed is closed when the session has ended.
	closed chan struct{}
	tools  map[string]*mcp.Tool
}

// connectMCP opens a session with cfg's MCP endpoint, asking for version.
func connectMCP(ctx context.Context, cfg Config, version string) (*mcpSession, error) {
	endpoint, err := cfg.mcpEndpoint()
	if err != nil {
		return nil, err
	}
	s := &mcpSession{
		watch:   &streamWatch{opened: make(chan struct{}, 1), ended: make(chan struct{}, 1)},
		updated: make(chan struct{}, 1),
		acked:   make(chan struct{}, 1),
		closed:  make(chan struct{}),
	}
	s.watch.base = cfg.HTTPClient.Transport
	if s.watch.base == nil {
		s.watch.base = http.DefaultTransport
	}
	s.watch.token = cfg.Token
	client := mcp.NewClient(&mcp.Implementation{Name: "hookgate-clients", Version: "1"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) {
			signal(s.updated) // runs on the SDK's read loop: never block here
		},
	})
	// The MCP Events extension's events/poll, for the events driver.
	if err := mcp.AddSendingCustomMethod[*eventsPollParams, *eventsPollResult](client, "events/poll"); err != nil {
		return nil, fmt.Errorf("set up events/poll: %w", err)
	}
	client.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "notifications/subscriptions/acknowledged" {
				signal(s.acked)
			}
			return next(ctx, method, req)
		}
	})
	httpClient := *cfg.HTTPClient
	httpClient.Transport = s.watch
	s.cs, err = client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &httpClient,
		MaxRetries: 10,
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		if refused := s.watch.refusal(); refused != nil {
			err = &stopError{fmt.Errorf("connect to %s: %w", endpoint, refused)}
		}
		return nil, fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	go func() { _ = s.cs.Wait(); close(s.closed) }()
	s.tools = make(map[string]*mcp.Tool)
	for tool, err := range s.cs.Tools(ctx, nil) {
		if err != nil {
			_ = s.cs.Close()
			return nil, fmt.Errorf("list tools of %s: %w", endpoint, err)
		}
		s.tools[tool.Name] = tool
	}
	return s, nil
}

func (s *mcpSession) close() { _ = s.cs.Close() }

// signal puts a token in c unless one is waiting already.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// callTool calls a tool and returns its result's JSON: the structured
// content when the server sends one, else the text content. A tool error
// is returned as a *refusalError carrying the server's text, so callers
// can tell it from a call that got no answer.
func (s *mcpSession) callTool(ctx context.Context, name string, args map[string]any) (json.RawMessage, error) {
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", name, err)
	}
	text := ""
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			text += t.Text
		}
	}
	if res.IsError {
		return nil, &refusalError{msg: fmt.Sprintf("call %s: tool error: %s", name, text)}
	}
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			return nil, fmt.Errorf("call %s: %w", name, err)
		}
		return b, nil
	}
	return json.RawMessage(text), nil
}

// decodeEvents reads the events of a check_pending_events, poll_events or
// resources/read answer: a bare array, or an object with "events".
func decodeEvents(raw json.RawMessage) ([]Event, error) {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	var list []json.RawMessage
	if len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("decode events: %w", err)
		}
	} else {
		var obj struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("decode events: %w", err)
		}
		list = obj.Events
	}
	return decodeEventList(list)
}

// decodeEventList decodes each event of a list.
func decodeEventList(list []json.RawMessage) ([]Event, error) {
	events := make([]Event, 0, len(list))
	for _, item := range list {
		e, err := decodeEvent(item)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, nil
}

// hasProperty reports whether a tool's input schema names the argument.
func hasProperty(tool *mcp.Tool, name string) bool {
	if tool == nil {
		return false
	}
	b, err := json.Marshal(tool.InputSchema)
	if err != nil {
		return false
	}
	var schema struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(b, &schema)
	_, ok := schema.Properties[name]
	return ok
}

// ackTool acks events with ack_event: all at once when the tool takes
// event_ids (hookgate does), else one call per event, as the plain
// three-tool pattern expects.
func (s *mcpSession) ackTool(ctx context.Context, ids []string) error {
	tool := s.tools["ack_event"]
	if tool == nil {
		return nil // a server without acks: the checkpoint is the progress
	}
	if len(ids) > 1 && hasProperty(tool, "event_ids") {
		_, err := s.callTool(ctx, "ack_event", map[string]any{"event_ids": ids})
		return err
	}
	for _, id := range ids {
		if _, err := s.callTool(ctx, "ack_event", map[string]any{"event_id": id}); err != nil {
			return err
		}
	}
	return nil
}

// streamWatch is the HTTP transport under the SDK. It adds the bearer
// token and watches the long-lived responses the SDK does not report on:
// a GET stream opening (after which the driver catches up, since what was
// sent while it was down may be lost), and a subscriptions/listen response
// ending, which the SDK never notices (a cut listen silently drops the
// subscription; see the SDK digest, G5).
type streamWatch struct {
	base  http.RoundTripper
	token string
	// opened gets a token when a GET stream or a listen starts.
	opened chan struct{}
	// ended gets a token when a listen response ends for any reason.
	ended chan struct{}
	// listens counts the listen responses currently open.
	listens atomic.Int64
	// refused is the last 401 or 403 the server answered: a bad token,
	// which no retry fixes.
	refused atomic.Int64
}

// refusal returns an *HTTPError if the server refused the credentials.
func (w *streamWatch) refusal() error {
	if code := int(w.refused.Load()); code != 0 {
		return &HTTPError{StatusCode: code, Message: "the server refused the token"}
	}
	return nil
}

func (w *streamWatch) RoundTrip(req *http.Request) (*http.Response, error) {
	if w.token != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := w.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		w.refused.Store(int64(resp.StatusCode))
	}
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "text/event-stream" {
		return resp, nil
	}
	switch {
	case req.Header.Get("Mcp-Method") == "subscriptions/listen":
		w.listens.Add(1)
		resp.Body = &watchedBody{ReadCloser: resp.Body, end: func() {
			w.listens.Add(-1)
			signal(w.ended)
		}}
		signal(w.opened)
	case req.Method == http.MethodGet:
		signal(w.opened)
	}
	return resp, nil
}

// watchedBody calls end once, when the body first fails or is closed.
type watchedBody struct {
	io.ReadCloser
	once sync.Once
	end  func()
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.end)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.once.Do(b.end)
	return b.ReadCloser.Close()
}

// errNoEventTools means the server offers neither poll tool.
var errNoEventTools = errors.New("the server offers neither poll_events nor check_pending_events")

// sessionSlot holds a driver's current MCP session: the one its feed uses
// and its acks go over, replaced on reconnect.
type sessionSlot struct {
	mu sync.Mutex
	s  *mcpSession // nil between sessions
}

// setSession replaces the current session, closing the old one.
func (h *sessionSlot) setSession(s *mcpSession) {
	h.mu.Lock()
	old := h.s
	h.s = s
	h.mu.Unlock()
	if old != nil && old != s {
		old.close()
	}
}

// current is the session to ack on, or nil.
func (h *sessionSlot) current() *mcpSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.s
}
