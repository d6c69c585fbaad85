package subscribe

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// listChangedMethod tells a client to call events/list again.
const listChangedMethod = "notifications/events/list_changed"

// changeHub holds, per principal, the streams that want list_changed: the
// GET streams of legacy sessions and the 2026-07-28 listens that opted in.
// It is soft state, as list_changed is a hint: a client that missed one
// lists again when it reconnects.
type changeHub struct {
	mu        sync.Mutex
	listeners map[string]map[*changeListener]struct{}
}

// changeListener is one stream; send writes the notification to it.
type changeListener struct {
	send func()
}

func newChangeHub() *changeHub {
	return &changeHub{listeners: make(map[string]map[*changeListener]struct{})}
}

func (h *changeHub) add(principal string, l *changeListener) (remove func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.listeners[principal]
	if set == nil {
		set = make(map[*changeListener]struct{})
		h.listeners[principal] = set
	}
	set[l] = struct{}{}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.listeners[principal], l)
		if len(h.listeners[principal]) == 0 {
			delete(h.listeners, principal)
		}
	}
}

// notify tells every stream of principal that its catalog changed.
func (h *changeHub) notify(principal string) {
	h.mu.Lock()
	all := make([]*changeListener, 0, len(h.listeners[principal]))
	for l := range h.listeners[principal] {
		all = append(all, l)
	}
	h.mu.Unlock()
	for _, l := range all {
		l.send()
	}
}

// watchRegistrations is a receiving middleware that notices a
// register_webhook or delete_webhook that added or removed one of the
// principal's event types, sends list_changed, and has the principal's
// webhook subscriptions check at once that their type still exists.
// (Changing a secret or provider leaves the catalog as it was.)
func (h *eventsHandlers) watchRegistrations(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method != "tools/call" {
			return next(ctx, method, req)
		}
		params, _ := req.GetParams().(*mcp.CallToolParamsRaw)
		if params == nil || (params.Name != "register_webhook" && params.Name != "delete_webhook") {
			return next(ctx, method, req)
		}
		before, beforeErr := h.labels(ctx)
		res, err := next(ctx, method, req)
		if after, afterErr := h.labels(ctx); beforeErr == nil && afterErr == nil && !slices.Equal(before, after) {
			h.x.changes.notify(h.principal)
			h.x.webhooks.recheck(h.principal)
		}
		return res, err
	}
}

func (h *eventsHandlers) labels(ctx context.Context) ([]string, error) {
	regs, err := h.x.opts.Log.Registrations(ctx, h.principal)
	if err != nil {
		return nil, err
	}
	labels := make([]string, len(regs))
	for i, r := range regs {
		labels[i] = r.Label
	}
	slices.Sort(labels)
	return labels, nil
}

// serveLegacyStream passes a GET (a legacy session's standalone stream) to
// next, and once next has opened the event stream, lets list_changed be
// written into it between the SDK's own messages.
func (x *Events) serveLegacyStream(w http.ResponseWriter, r *http.Request, principal string, next http.Handler) {
	sw := &sharedStream{ResponseWriter: w}
	sw.listener = &changeListener{send: func() {
		frame, err := sseFrame(rpcNotification{JSONRPC: "2.0", Method: listChangedMethod, Params: map[string]any{}})
		if err == nil {
			sw.inject(frame)
		}
	}}
	defer x.changes.add(principal, sw.listener)()
	next.ServeHTTP(sw, r)
	sw.close()
}

// sharedStream is a ResponseWriter the SDK writes its stream to while
// list_changed frames are injected. The SDK writes each event in one
// Write; the mutex keeps an injected frame from landing inside one.
type sharedStream struct {
	http.ResponseWriter
	listener *changeListener

	mu          sync.Mutex
	wroteHeader bool
	streaming   bool // the SDK answered 200 text/event-stream
	closed      bool
}

func (s *sharedStream) WriteHeader(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeHeaderLocked(code)
}

func (s *sharedStream) writeHeaderLocked(code int) {
	if s.wroteHeader {
		return
	}
	s.wroteHeader = true
	s.streaming = code == http.StatusOK && strings.HasPrefix(s.Header().Get("Content-Type"), "text/event-stream")
	s.ResponseWriter.WriteHeader(code)
}

func (s *sharedStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeHeaderLocked(http.StatusOK)
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *sharedStream) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *sharedStream) inject(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.streaming || s.closed {
		return
	}
	if _, err := s.ResponseWriter.Write(frame); err == nil {
		_ = http.NewResponseController(s.ResponseWriter).Flush()
	}
}

func (s *sharedStream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

// listenFilter is the part of a subscriptions/listen's params Handler
// reads.
type listenFilter struct {
	Meta          mcp.Meta `json:"_meta"`
	Notifications struct {
		EventsListChanged     bool     `json:"eventsListChanged"`
		ResourceSubscriptions []string `json:"resourceSubscriptions"`
	} `json:"notifications"`
}

// wantsEventsListChanged reports whether a listen asks for the extension's
// list_changed and nothing hookgate's SDK server serves: that listen is
// served here. A listen that also subscribes to resources goes to the SDK,
// which does not echo eventsListChanged in its acknowledgement, telling the
// client it is not honoured on that stream.
func wantsEventsListChanged(req rpcRequest) bool {
	var p listenFilter
	if json.Unmarshal(req.Params, &p) != nil {
		return false
	}
	return p.Notifications.EventsListChanged && len(p.Notifications.ResourceSubscriptions) == 0
}

// serveListen serves a 2026-07-28 subscriptions/listen that opted in to
// eventsListChanged: the acknowledgement echoes the opt-in (the server
// declares listChanged:true), list_changed arrives with the listen's
// subscriptionId, and on Shutdown the listen ends with its result.
func (x *Events) serveListen(w http.ResponseWriter, r *http.Request, principal string, req rpcRequest, next http.Handler) {
	modern, status, rerr := checkProtocol(r, req)
	if !modern {
		next.ServeHTTP(w, r) // a legacy "listen" is not a 2026 listen: let the SDK refuse it
		return
	}
	if rerr != nil {
		writeRPCError(w, status, req.ID, rerr)
		return
	}
	if !x.enterStream() {
		writeRPCError(w, http.StatusServiceUnavailable, req.ID, rpcError(jsonrpc.CodeInternalError, "shutting down", nil))
		return
	}
	defer x.streams.Done()
	s := &eventStream{w: w, rc: http.NewResponseController(w), id: req.ID}
	var mu sync.Mutex // list_changed comes from other goroutines
	send := func(method string, params any) error {
		mu.Lock()
		defer mu.Unlock()
		return s.send(method, params)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	err := send("notifications/subscriptions/acknowledged", map[string]any{
		"notifications": map[string]any{"eventsListChanged": true},
		"_meta":         s.meta(),
	})
	if err != nil {
		return
	}
	remove := x.changes.add(principal, &changeListener{send: func() {
		_ = send(listChangedMethod, map[string]any{"_meta": s.meta()})
	}})
	defer remove()
	select {
	case <-r.Context().Done():
		return
	case <-x.stopping.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	_ = s.write(rpcResponse{JSONRPC: "2.0", ID: s.id, Result: map[string]any{"resultType": "complete", "_meta": s.meta()}})
}
