package subscribe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge/store"
)

// streamParams are events/stream's parameters.
type streamParams struct {
	Meta      mcp.Meta        `json:"_meta,omitempty"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Cursor    *string         `json:"cursor,omitempty"`
	MaxAgeMs  *int64          `json:"maxAgeMs,omitempty"`
}

// streamNotice is the params of every notifications/events/* of a stream
// but the event itself.
type streamNotice struct {
	Cursor    string         `json:"cursor"`
	Truncated *bool          `json:"truncated,omitempty"`
	Meta      map[string]any `json:"_meta"`
}

// serveStream answers an events/stream request with an event stream that
// carries only this subscription's notifications: notifications/events/active
// first, then one notifications/events/event per matching occurrence and a
// notifications/events/heartbeat with the cursor after every quiet
// Heartbeat. It reads the log with a Follower from the requested cursor, so
// a client that reconnects with the last cursor it saw misses nothing. It
// ends when the client goes away (cancellation) or, with the final result,
// on Shutdown.
func (x *Events) serveStream(w http.ResponseWriter, r *http.Request, principal string, req rpcRequest) {
	modern, status, rerr := checkProtocol(r, req)
	if rerr != nil {
		writeRPCError(w, status, req.ID, rerr)
		return
	}
	if !modern && x.opts.HasSession != nil && !x.opts.HasSession(principal, r.Header.Get("Mcp-Session-Id")) {
		writeRPCError(w, http.StatusNotFound, req.ID, rpcError(jsonrpc.CodeInvalidRequest, "session not found", nil))
		return
	}
	if len(req.ID) == 0 || string(req.ID) == "null" {
		writeRPCError(w, http.StatusBadRequest, nil, rpcError(-32600, "events/stream is a request: it needs an id", nil))
		return
	}
	var p streamParams
	if err := json.Unmarshal(req.Params, &p); err != nil {
		writeRPCError(w, 0, req.ID, invalidParams("params", "%v", err))
		return
	}
	h := &eventsHandlers{x: x, principal: principal}
	reg, filter, _, err := h.resolve(r.Context(), p.Name, p.Arguments)
	if err != nil {
		writeRPCError(w, 0, req.ID, asRPCError(err))
		return
	}
	after, truncated, err := x.startAt(r.Context(), principal, reg, p.Cursor, p.MaxAgeMs)
	if err != nil {
		writeRPCError(w, 0, req.ID, asRPCError(err))
		return
	}

	if !x.enterStream() {
		writeRPCError(w, http.StatusServiceUnavailable, req.ID, rpcError(jsonrpc.CodeInternalError, "shutting down", nil))
		return
	}
	defer x.streams.Done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(x.stopping, cancel)()

	s := &eventStream{ctx: ctx, w: w, rc: http.NewResponseController(w), id: req.ID}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if err := s.send("notifications/events/active", streamNotice{Cursor: after.String(), Truncated: &truncated, Meta: s.meta()}); err != nil {
		return
	}
	f := &Follower{
		Log: x.opts.Log, Wake: x.opts.Wake, Principal: principal, Label: reg.Label, After: after,
		Heartbeat: x.opts.Heartbeat,
	}
	f.Idle = func() error {
		gone, err := x.eventGone(ctx, principal, reg.Label, reg.ID)
		if err != nil {
			return err
		}
		if gone {
			return errEventRemoved
		}
		return s.send("notifications/events/heartbeat", streamNotice{Cursor: f.After.String(), Meta: s.meta()})
	}
	err = f.Run(ctx, func(e store.Event) error {
		if !filter.match(e) {
			return nil
		}
		o, err := newOccurrence(e)
		if err != nil {
			return err
		}
		cursor := e.ID.String()
		o.Cursor = &cursor
		o.Meta[mcp.MetaKeySubscriptionID] = s.id
		return s.send("notifications/events/event", o)
	})
	if errors.Is(err, errEventRemoved) {
		// The webhook behind this event type was deleted: the subscription
		// is over, and the client is told why before the final result.
		_ = s.send("notifications/events/terminated", streamError{Error: x.errs.eventNotFound(reg.Label), Meta: s.meta()})
		_ = s.finish(modern, x.opts.Profile)
		return
	}
	if x.stopping.Err() == nil || r.Context().Err() != nil {
		// The client left, or the stream broke: a cancellation sends
		// nothing more.
		if err != nil && !errors.Is(err, context.Canceled) {
			x.opts.Logger.Warn("events/stream ended", "principal", principal, "name", reg.Label, "err", err)
		}
		return
	}
	_ = s.finish(modern, x.opts.Profile)
}

// errEventRemoved ends a stream whose event type was removed.
var errEventRemoved = errors.New("event type removed")

// streamError is the params of notifications/events/error and
// notifications/events/terminated.
type streamError struct {
	Error *jsonrpc.Error `json:"error"`
	Meta  map[string]any `json:"_meta"`
}

// eventStream writes one events/stream's messages.
type eventStream struct {
	ctx context.Context
	w   http.ResponseWriter
	rc  *http.ResponseController
	id  json.RawMessage // the request's JSON-RPC id, kept as sent (string or number)
}

func (s *eventStream) meta() map[string]any {
	return map[string]any{mcp.MetaKeySubscriptionID: s.id}
}

// send writes a notification. This stream has its own goroutine, so it
// keeps the reader's pace: a burst of large events is never cut as a
// backlog.
func (s *eventStream) send(method string, params any) error {
	if err := WaitForRoom(s.ctx, s.w); err != nil {
		return fmt.Errorf("write event stream: %w", err)
	}
	return s.write(rpcNotification{JSONRPC: "2.0", Method: method, Params: params})
}

func (s *eventStream) write(msg any) error {
	frame, err := sseFrame(msg)
	if err != nil {
		return err
	}
	if _, err := s.w.Write(frame); err != nil {
		return fmt.Errorf("write event stream: %w", err)
	}
	return s.rc.Flush()
}

// finish sends the stream's final result, on a planned end only. SEP-3415
// names the subscription in it; the design sketch's is an empty _meta.
// resultType is required of every 2026-07-28 result.
func (s *eventStream) finish(modern bool, profile EventsProfile) error {
	result := map[string]any{"_meta": map[string]any{}}
	if profile == ProfileSEP {
		result["_meta"] = s.meta()
	}
	if modern {
		result["resultType"] = "complete"
	}
	return s.write(rpcResponse{JSONRPC: "2.0", ID: s.id, Result: result})
}
