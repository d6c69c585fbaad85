package clients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MCP Events extension defaults.
const (
	eventsWaitMs      = 10_000 // events/poll long-poll wait, where the server honours it
	eventsStreamIdle  = 90 * time.Second
	beginningOfStream = "0-0"
)

// NewEventsPoller returns a Driver for the MCP Events extension's
// events/poll: it polls the event named Config.Label (required: hookgate
// names each webhook's events by its label) from the checkpoint's cursor,
// or from the oldest retained event on a first run. The extension has no
// acks; the checkpoint is the only progress, so keep it (Config.Checkpoint)
// somewhere that survives the program.
func NewEventsPoller(cfg Config) Driver { return &eventsDriver{cfg: cfg} }

// NewEventsStream is NewEventsPoller over events/stream: one long-lived
// POST whose event stream carries each occurrence as it is stored; a cut
// stream is reopened from the cursor.
func NewEventsStream(cfg Config) Driver { return &eventsDriver{cfg: cfg, stream: true} }

type eventsDriver struct {
	cfg    Config
	stream bool
}

// eventsPollParams are events/poll's parameters.
type eventsPollParams struct {
	mcp.ParamsBase
	Name      string  `json:"name"`
	Cursor    *string `json:"cursor,omitempty"`
	MaxEvents int     `json:"maxEvents,omitempty"`
	TimeoutMs int64   `json:"timeoutMs,omitempty"`
}

// eventsPollResult is events/poll's result.
type eventsPollResult struct {
	mcp.ResultBase
	Events     []occurrence `json:"events"`
	Cursor     string       `json:"cursor"`
	HasMore    bool         `json:"hasMore"`
	NextPollMs int          `json:"nextPollMs"`
}

// occurrence is an EventOccurrence; hookgate puts the whole event in data.
type occurrence struct {
	EventID string          `json:"eventId"`
	Data    json.RawMessage `json:"data"`
	Cursor  string          `json:"cursor"`
	Meta    map[string]any  `json:"_meta"`
}

// event decodes the hookgate event an occurrence carries.
func (o occurrence) event() (Event, error) {
	e, err := decodeEvent(o.Data)
	if err != nil {
		return Event{}, fmt.Errorf("occurrence %s: %w", o.EventID, err)
	}
	return e, nil
}

// Run implements Driver.
func (d *eventsDriver) Run(ctx context.Context, h Handler) error {
	cfg := d.cfg.withDefaults()
	endpoint, err := cfg.mcpEndpoint()
	if err != nil {
		return err
	}
	if cfg.Label == "" {
		return errors.New("clients: the MCP Events drivers need Config.Label, the event name")
	}
	return runWith(ctx, cfg, h, noAcks{}, func(ctx context.Context, r *runner, resume string) error {
		cursor := resume
		if cursor == "" {
			cursor = beginningOfStream
		}
		var s *mcpSession
		defer func() {
			if s != nil {
				s.close()
			}
		}()
		dropSession := func() {
			if s != nil {
				s.close()
				s = nil
			}
		}
		return keepTrying(ctx, cfg.Logger, "events", func() []any { return []any{"cursor", cursor} }, dropSession, func() (bool, error) {
			var err error
			if d.stream {
				err = d.streamOnce(ctx, cfg, endpoint, &cursor, r)
			} else {
				if s == nil {
					s, err = connectMCP(ctx, cfg, latestVersion)
				}
				if err == nil {
					err = d.pollOnce(ctx, s, cfg, &cursor, r)
				}
			}
			return err == nil, err
		})
	})
}

// pollOnce makes one events/poll and offers what it returns.
func (d *eventsDriver) pollOnce(ctx context.Context, s *mcpSession, cfg Config, cursor *string, r *runner) error {
	free, err := r.space(ctx)
	if err != nil {
		return err
	}
	started := time.Now()
	c := *cursor
	res, err := mcp.CallCustomMethod[*eventsPollParams, *eventsPollResult](ctx, s.cs, "events/poll",
		&eventsPollParams{Name: cfg.Label, Cursor: &c, MaxEvents: min(free, pageSize), TimeoutMs: eventsWaitMs})
	if err != nil {
		// A request the server refuses (an unknown event name: NotFound,
		// whose code differs between the extension's profiles; bad
		// params) would be refused again; a transport error is retried.
		var rpcErr *jsonrpc.Error
		if errors.As(err, &rpcErr) && (rpcErr.Code == jsonrpc.CodeInvalidParams || rpcErr.Message == "NotFound" || rpcErr.Message == "Forbidden") {
			return &stopError{fmt.Errorf("events/poll %s: %w", cfg.Label, err)}
		}
		return fmt.Errorf("events/poll %s: %w", cfg.Label, err)
	}
	for _, o := range res.Events {
		e, err := o.event()
		if err != nil {
			return &stopError{err}
		}
		if err := r.offer(ctx, e); err != nil {
			return err
		}
	}
	if res.Cursor != "" {
		*cursor = res.Cursor
	}
	if len(res.Events) == 0 && !res.HasMore {
		// A server that ignores timeoutMs answers at once: wait as told.
		wait := time.Duration(max(res.NextPollMs, 100))*time.Millisecond - time.Since(started)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
	return nil
}

// streamOnce opens one events/stream and offers its events until it ends.
// It speaks JSON-RPC over HTTP itself: the SDK has no way to read the
// notifications of a custom method's response stream.
func (d *eventsDriver) streamOnce(ctx context.Context, cfg Config, endpoint string, cursor *string, r *runner) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": 1, "method": "events/stream",
		"params": map[string]any{
			"name": cfg.Label, "cursor": *cursor,
			"_meta": map[string]any{
				mcp.MetaKeyProtocolVersion:    "2026-07-28",
				mcp.MetaKeyClientCapabilities: map[string]any{},
				mcp.MetaKeyClientInfo:         map[string]any{"name": "hookgate-clients", "version": "1"},
			},
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build events/stream request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "events/stream")
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("events/stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		herr := responseError(resp)
		if herr.permanent() {
			return &stopError{fmt.Errorf("events/stream: %w", herr)}
		}
		return herr
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		// The server answered at once: an error, or a final result.
		msg, err := io.ReadAll(io.LimitReader(resp.Body, maxEventSize))
		if err != nil {
			return fmt.Errorf("events/stream: %w", err)
		}
		return d.streamMessage(ctx, msg, cursor, r)
	}
	idle := time.AfterFunc(eventsStreamIdle, cancel)
	defer idle.Stop()
	sc := bufio.NewScanner(&idleReader{r: resp.Body, timer: idle, timeout: eventsStreamIdle})
	sc.Buffer(make([]byte, 0, 64<<10), maxEventSize)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) != 0 {
			if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				data = append(data, bytes.TrimPrefix(v, []byte(" "))...)
			}
			continue
		}
		if len(data) == 0 {
			continue
		}
		msg := data
		data = nil
		if err := d.streamMessage(ctx, msg, cursor, r); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("events/stream: %w", err)
	}
	return errors.New("events/stream ended")
}

// streamMessage handles one JSON-RPC message of an events/stream.
func (d *eventsDriver) streamMessage(ctx context.Context, msg []byte, cursor *string, r *runner) error {
	var m struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		return fmt.Errorf("events/stream: %w", err)
	}
	switch {
	case m.Error != nil:
		err := fmt.Errorf("events/stream: error %d: %s", m.Error.Code, m.Error.Message)
		if m.Error.Code == jsonrpc.CodeInvalidParams || m.Error.Message == "NotFound" || m.Error.Message == "Forbidden" {
			return &stopError{err} // refused: a retry would be refused again
		}
		return err
	case m.Method == "notifications/events/event":
		var o occurrence
		if err := json.Unmarshal(m.Params, &o); err != nil {
			return &stopError{fmt.Errorf("events/stream: %w", err)}
		}
		e, err := o.event()
		if err != nil {
			return &stopError{err}
		}
		if err := r.offer(ctx, e); err != nil {
			return err
		}
		*cursor = e.ID
	case m.Method == "notifications/events/heartbeat":
		// The cursor of a heartbeat is past events the filter skipped; it
		// is safe to resume from once every offered event is behind it.
	case m.Method == "":
		return errors.New("events/stream: the server ended the stream")
	}
	return nil
}
