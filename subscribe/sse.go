package subscribe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// sseRetry is the reconnect delay an SSE client is told to use: short,
// because a reconnect costs nothing but a read from the client's cursor.
const sseRetry = 2 * time.Second

// FeedOptions configures the SSE and WebSocket feeds. Both are cursors over
// the log: the cursor lives in the client (Last-Event-ID, after=), so a cut
// feed loses nothing and a stalled one holds up no one but itself.
type FeedOptions struct {
	// Log is the durable log the feeds read.
	Log Reader
	// Wake tells a caught-up feed that the log has grown; *bridge.Wakeups.
	Wake Waiter
	// Principal returns the authenticated caller of a request; "" is
	// answered 401.
	Principal func(*http.Request) string
	// Labels returns nil if the principal has a live registration with
	// that label. An error wrapping store.ErrNotFound is answered 404 with
	// a message naming the label, any other error 503. Nil accepts every
	// label.
	Labels func(ctx context.Context, principal, label string) error
	// Acker takes the acks a WebSocket client sends; nil refuses them.
	Acker Acker
	// Heartbeat is how often an idle feed proves it is alive (an SSE
	// comment, a WebSocket ping); 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// WriteTimeout bounds every write; a reader that stops reading is cut
	// after it; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Now is the clock a feed without a cursor starts from; nil means
	// time.Now. It must agree with the store's clock, which dates the IDs.
	Now func() time.Time
	// Stopping, when it ends, ends every feed. A graceful shutdown needs
	// it: http.Server.Shutdown waits for SSE streams over HTTP/2, which
	// never go idle, and neither waits for nor closes WebSockets and SSE
	// streams over HTTP/1.x, whose connections the handlers take over.
	// Clients resume from their cursor. Nil never ends.
	Stopping context.Context
	// Metrics is told of SSE feeds opened and ended, events pushed and
	// streams cut by the write timeout (path "sse", era "http"); nil means
	// none.
	Metrics Metrics
	// Logger receives a debug line when a feed ends and a warning when the
	// log cannot be read; nil discards.
	Logger *slog.Logger
}

func (o FeedOptions) withDefaults() FeedOptions {
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Metrics = metricsOrNop(o.Metrics)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// feedRequest is a checked request for a feed: whose events, which label,
// and the cursor to follow from.
type feedRequest struct {
	principal string
	label     string
	after     store.ID
}

// parseFeedRequest checks the caller, label and cursor of a feed request.
// The cursor is lastEventID if set, else the after= query, else "now". On
// failure it has answered the request with a JSON error and returns false.
func (o FeedOptions) parseFeedRequest(w http.ResponseWriter, r *http.Request, lastEventID string) (feedRequest, bool) {
	fr := feedRequest{principal: o.Principal(r), label: r.URL.Query().Get("label")}
	if fr.principal == "" {
		writeJSONError(w, http.StatusUnauthorized, "authentication required: send Authorization: Bearer <token>")
		return fr, false
	}
	name, text := "Last-Event-ID", lastEventID
	if text == "" {
		name, text = "after", r.URL.Query().Get("after")
	}
	if text == "" {
		fr.after = Since(o.Now())
	} else {
		id, err := store.ParseID(text)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("%s %q is not an event ID: want <unix-ms>-<seq>, or 0-0 for the oldest retained event", name, text))
			return fr, false
		}
		fr.after = id
	}
	if fr.label != "" && o.Labels != nil {
		if err := o.Labels(r.Context(), fr.principal, fr.label); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no webhook labelled %q", fr.label))
				return fr, false
			}
			o.Logger.Warn("feed: look up label", "principal", fr.principal, "label", fr.label, "err", err)
			writeJSONError(w, http.StatusServiceUnavailable, "store unavailable, retry later")
			return fr, false
		}
	}
	return fr, true
}

// feedContext returns a context that ends with the request or when the
// server shuts down.
// It registers a callback rather than starting a goroutine: with thousands
// of idle feeds, a goroutine each is a measurable share of their memory.
func (o FeedOptions) feedContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	if o.Stopping == nil {
		return ctx, cancel
	}
	stop := context.AfterFunc(o.Stopping, cancel)
	return ctx, func() { stop(); cancel() }
}

// shuttingDown reports whether Stopping has ended.
func (o FeedOptions) shuttingDown() bool {
	return o.Stopping != nil && o.Stopping.Err() != nil
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// NewSSEHandler returns the handler of GET /v1/stream: the caller's events
// as Server-Sent Events, one per event, in ID order. The SSE id of each is
// the event ID, so a client that reconnects with Last-Event-ID (as every
// EventSource does) resumes exactly where it stopped. Without Last-Event-ID
// or after= the feed starts from now; label= filters.
//
// Over HTTP/1.x the handler takes the connection over from net/http once
// the request is checked, and the feed outlives ServeHTTP (see sseConn):
// http.Server.Shutdown neither waits for nor closes such feeds, so end
// FeedOptions.Stopping on shutdown and then call Wait.
func NewSSEHandler(opts FeedOptions) *SSEHandler {
	return &SSEHandler{opts: opts.withDefaults()}
}

// SSEHandler serves GET /v1/stream; see NewSSEHandler.
type SSEHandler struct {
	opts  FeedOptions
	feeds sync.WaitGroup // taken-over feeds still running
}

// Wait waits until every feed running on a taken-over connection has
// ended and closed its connection, or ctx ends. Feeds end with
// FeedOptions.Stopping (or their clients); a server calls Wait after
// ending Stopping so that nothing reads the log once it closes it.
func (h *SSEHandler) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		h.feeds.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for sse feeds: %w", ctx.Err())
	}
}

// ServeHTTP checks the request and streams the feed (see NewSSEHandler).
func (h *SSEHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fr, ok := h.opts.parseFeedRequest(w, r, r.Header.Get("Last-Event-ID"))
	if !ok {
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the stream

	// An HTTP/1.x connection is taken over (see sseConn) and the feed runs
	// on a goroutine of its own, so that returning here releases all that
	// net/http holds for a request. Anything else (HTTP/2, a writer that
	// hides its connection) is served through w, on this goroutine.
	//
	// The feed is counted before the connection is taken over: from then
	// on http.Server.Shutdown no longer waits for this request, and Wait
	// must not miss the feed it is about to start.
	h.feeds.Add(1)
	conn, err := hijackSSE(w, r, h.opts.WriteTimeout)
	if err != nil {
		h.feeds.Done()
	}
	switch {
	case err == nil:
		// Nothing in net/http reads the connection any more, so the
		// request's context would not end when the client leaves: watch
		// ends the feed instead.
		parent := h.opts.Stopping
		if parent == nil {
			parent = context.Background()
		}
		ctx, cancel := context.WithCancel(parent)
		conn.watch(cancel)
		go func() {
			defer h.feeds.Done()
			defer cancel()
			h.run(ctx, conn, fr)
		}()
	case errors.Is(err, http.ErrNotSupported):
		ctx, cancel := h.opts.feedContext(r.Context())
		defer cancel()
		h.run(ctx, h.respond(w, fr), fr)
	default:
		// Hijack failed after net/http gave the connection up: nothing can
		// be written to w any more.
		h.opts.Logger.Warn("sse feed: take over connection", "principal", fr.principal, "err", err)
	}
}

// run is one feed, from its preamble until ctx ends or a write fails; it
// finishes out.
func (h *SSEHandler) run(ctx context.Context, out sseOut, fr feedRequest) {
	m := h.opts.Metrics
	m.Subscribed("sse", "http", 1)
	defer m.Subscribed("sse", "http", -1)
	defer out.finish()
	s := &sseStream{out: out}
	// The preamble's id is the starting cursor: an EventSource keeps it as
	// its last event ID, so a reconnect before the first event resumes from
	// where this stream started, not from a later "now".
	err := out.send([]byte("retry: " + strconv.FormatInt(sseRetry.Milliseconds(), 10) + "\nid: " + fr.after.String() + "\n\n"))
	if err == nil {
		f := &Follower{
			Log:       h.opts.Log,
			Wake:      h.opts.Wake,
			Principal: fr.principal,
			Label:     fr.label,
			After:     fr.after,
			Heartbeat: h.opts.Heartbeat,
			Idle:      out.heartbeat,
		}
		err = f.Run(ctx, func(e store.Event) error {
			if err := s.sendEvent(e); err != nil {
				return err
			}
			m.Pushed("sse")
			return nil
		})
		fr.after = f.After
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		m.Cut("sse") // a reader that stopped reading
	}
	logFeedEnd(h.opts.Logger, "sse", fr, err, ctx.Err() != nil)
}

// respond starts the stream as an ordinary response on w, whose headers
// ServeHTTP has set.
func (h *SSEHandler) respond(w http.ResponseWriter, fr feedRequest) *sseResponse {
	w.WriteHeader(http.StatusOK)
	s := &sseResponse{w: w, rc: http.NewResponseController(w), timeout: h.opts.WriteTimeout}
	if err := s.rc.SetWriteDeadline(time.Time{}); errors.Is(err, http.ErrNotSupported) {
		// A middleware hides the connection; the stream still works, but a
		// reader that stops reading holds this handler until TCP gives up.
		h.opts.Logger.Warn("sse feed: response writer cannot set write deadlines; stalled readers will not be cut", "principal", fr.principal)
		s.noDeadline = true
	}
	return s
}

// logFeedEnd logs why a feed ended: a debug line for the ordinary ends (the
// client left, the server stops, a reader too slow was cut), a warning when
// the log could not be read.
func logFeedEnd(logger *slog.Logger, kind string, fr feedRequest, err error, ctxDone bool) {
	level := slog.LevelDebug
	var writeErr *feedWriteError
	if !ctxDone && !errors.As(err, &writeErr) {
		level = slog.LevelWarn
	}
	logger.Log(context.Background(), level, kind+" feed ended",
		"principal", fr.principal, "label", fr.label, "after", fr.after.String(), "err", err)
}

// feedWriteError marks a failure to write to the client, as opposed to a
// failure to read the log.
type feedWriteError struct{ err error }

func (e *feedWriteError) Error() string { return "write to subscriber: " + e.err.Error() }
func (e *feedWriteError) Unwrap() error { return e.err }

// sseOut is where an SSE stream's bytes go: an ordinary response
// (sseResponse) or a connection taken over from net/http (sseConn).
type sseOut interface {
	// send writes b at once, under the write timeout, so that a client
	// that stops reading fails the write instead of blocking it.
	send(b []byte) error
	// heartbeat proves to the client, and to proxies in between, that an
	// idle stream is alive; Follower.Idle.
	heartbeat() error
	// finish releases the stream once the feed has ended.
	finish()
}

// sseHeartbeat is the comment an idle stream sends every
// FeedOptions.Heartbeat.
const sseHeartbeat = ": hb\n\n"

// sseStream encodes events for an sseOut.
type sseStream struct {
	out sseOut
	buf []byte
}

func (s *sseStream) sendEvent(e store.Event) error {
	data, err := json.Marshal(e) // one line: JSON escapes CR and LF in strings
	if err != nil {
		return fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	b := append(s.buf[:0], "id: "...)
	b = append(b, e.ID.String()...)
	b = append(b, "\nevent: "...)
	b = append(b, sseEventName(e.Type)...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	s.buf = b
	return s.out.send(b)
}

// sseResponse writes one SSE response through its http.ResponseWriter,
// each write under its own deadline.
type sseResponse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	// noDeadline: the writer cannot take deadlines (see respond).
	noDeadline bool
	broken     bool // a write failed; the connection is unusable
}

func (s *sseResponse) send(b []byte) error {
	var err error
	if !s.noDeadline {
		err = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	}
	if err == nil {
		_, err = s.w.Write(b)
	}
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		s.broken = true
		return &feedWriteError{err}
	}
	return nil
}

func (s *sseResponse) heartbeat() error { return s.send([]byte(sseHeartbeat)) }

// finish clears the write deadline of a healthy connection, so a later
// response on the kept-alive connection is not cut by a stale one. A broken
// one keeps its past deadline: net/http's final flush then fails at once
// instead of blocking on a reader that has stopped.
func (s *sseResponse) finish() {
	if !s.broken && !s.noDeadline {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
}

// sseEventName is the SSE event field of an event type. Types come from
// providers; a line break in one would end the field early and let a sender
// forge SSE fields, so line breaks are dropped.
func sseEventName(eventType string) string {
	name := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, eventType)
	if name == "" {
		return "event"
	}
	return name
}
