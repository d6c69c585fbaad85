package subscribe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Stream defaults. Proxies commonly cut connections idle for 30-60 s, so a
// heartbeat every 15 s keeps a quiet stream open. A reader that cannot take
// a write within 10 s, or falls 1 MiB of notifications behind, is cut and
// resumes from its cursor when it returns. The buffer measures a backlog,
// not a message: a single message, and every reply to a request, is queued
// whatever its size.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultStreamBuffer = 1 << 20
)

// errStreamBehind is what the SDK's write gets once a reader has fallen
// further behind than the stream's buffer.
var errStreamBehind = errors.New("subscriber fell behind: stream cut, resume with Last-Event-ID")

// GuardOptions configures GuardStreams; zero values mean the defaults.
type GuardOptions struct {
	Heartbeat    time.Duration
	WriteTimeout time.Duration
	Buffer       int // bytes a stream may queue before it is cut
	// Metrics is told of every stream cut (path "mcp"); nil means none.
	Metrics Metrics
	// Logger records every cut and every write that failed; nil means none.
	Logger *slog.Logger
}

// GuardStreams wraps the SDK's MCP handler so that a Server-Sent Events
// response never makes the SDK wait on the network. The SDK writes each
// notification synchronously, in sequence, from the goroutine that calls
// ResourceUpdated: one subscriber that stops reading would hold up every
// other subscriber of the same server. Here each SSE response gets a bounded
// queue drained by its own goroutine with a deadline on every write; a
// reader that falls behind the queue is cut (and resumes from its cursor),
// and the notifier moves on at once. Each SSE response also gets
// X-Accel-Buffering: no and a comment line after a quiet heartbeat, so
// proxies neither buffer it nor cut it for idleness. Other responses pass
// through unchanged.
//
// Only notifications count as falling behind. A reply to a request (the
// answer of a POST, however large: a batch of events can be megabytes) is
// always queued, because it is the one message its request exists for and
// each request has one; a reader that does not take it is still cut by the
// write deadline.
func GuardStreams(h http.Handler, opts GuardOptions) http.Handler {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultStreamBuffer
	}
	opts.Metrics = metricsOrNop(opts.Metrics)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		g := &guardedWriter{w: w, rc: http.NewResponseController(w), opts: opts, ctx: ctx, cut: cancel, wake: make(chan struct{}, 1), taken: make(chan struct{}, 1), stopped: make(chan struct{})}
		defer g.finish()
		h.ServeHTTP(g, r.WithContext(ctx))
	})
}

// guardedWriter is a ResponseWriter that, once the response turns out to be
// an event stream, queues writes for its pump goroutine instead of making
// them.
type guardedWriter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	opts GuardOptions
	ctx  context.Context    // the request's, for log lines
	cut  context.CancelFunc // ends the handler's request: how a stuck stream is let go

	wake    chan struct{} // a write is queued
	taken   chan struct{} // the pump took what was queued
	stopped chan struct{} // the pump has drained and exited

	mu          sync.Mutex
	wroteHeader bool
	streaming   bool
	queue       []byte
	broken      error
	finishing   bool
}

func (g *guardedWriter) Header() http.Header { return g.w.Header() }

func (g *guardedWriter) WriteHeader(code int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writeHeaderLocked(code)
}

func (g *guardedWriter) writeHeaderLocked(code int) {
	if g.wroteHeader {
		return
	}
	g.wroteHeader = true
	if code == http.StatusOK && strings.HasPrefix(g.w.Header().Get("Content-Type"), "text/event-stream") {
		g.streaming = true
		g.w.Header().Set("X-Accel-Buffering", "no")
		g.w.WriteHeader(code)
		go g.pump()
		return
	}
	g.w.WriteHeader(code)
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writeHeaderLocked(http.StatusOK)
	if !g.streaming {
		return g.w.Write(p)
	}
	if g.broken != nil {
		return 0, g.broken
	}
	if len(g.queue) > 0 && len(g.queue)+len(p) > g.opts.Buffer && !isReply(p) {
		g.broken = errStreamBehind
		g.opts.Metrics.Cut("mcp")
		g.opts.Logger.WarnContext(g.ctx, "mcp stream cut: the reader fell behind", "queued", len(g.queue), "buffer", g.opts.Buffer)
		g.cut()
		return 0, g.broken
	}
	g.queue = append(g.queue, p...)
	g.signal()
	return len(p), nil
}

// FlushError lets http.ResponseController flush through the wrapper. A
// stream is flushed by its pump after every batch, so there is nothing to do
// for one here.
func (g *guardedWriter) FlushError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.streaming {
		return g.broken
	}
	return g.rc.Flush()
}

// Flush implements http.Flusher for callers that use it directly.
func (g *guardedWriter) Flush() { _ = g.FlushError() }

// Unwrap exposes the underlying writer to http.ResponseController for
// everything this wrapper does not intercept.
func (g *guardedWriter) Unwrap() http.ResponseWriter { return g.w }

// waitForRoom blocks until nothing is queued, the stream broke, or ctx
// ends. A writer with a goroutine of its own (an events/stream) calls it
// before each message, so it is slowed to the reader's pace instead of
// being cut for a backlog; the write deadline still cuts a reader that
// stops.
func (g *guardedWriter) waitForRoom(ctx context.Context) error {
	for {
		g.mu.Lock()
		idle, broken := !g.streaming || len(g.queue) == 0, g.broken
		g.mu.Unlock()
		if broken != nil {
			return broken
		}
		if idle {
			return nil
		}
		select {
		case <-g.taken:
		case <-g.stopped:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitForRoom lets a writer that may block pace itself to its reader: if w
// is (or wraps) a stream of GuardStreams, it waits until that stream has
// taken everything queued so far, so the next message never counts as a
// backlog. On any other writer it returns at once.
func WaitForRoom(ctx context.Context, w http.ResponseWriter) error {
	for {
		switch v := w.(type) {
		case *guardedWriter:
			return v.waitForRoom(ctx)
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
}

func (g *guardedWriter) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// pump writes what is queued, with a deadline on each write, and a
// heartbeat comment when the stream has been quiet.
func (g *guardedWriter) pump() {
	defer close(g.stopped)
	heartbeat := time.NewTimer(g.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-g.wake:
		case <-heartbeat.C:
			g.mu.Lock()
			if len(g.queue) == 0 {
				g.queue = append(g.queue, ": hb\n\n"...)
			}
			g.mu.Unlock()
		}
		g.mu.Lock()
		batch, finishing := g.queue, g.finishing
		g.queue = nil
		g.mu.Unlock()
		select {
		case g.taken <- struct{}{}:
		default:
		}
		if len(batch) > 0 {
			if err := g.send(batch); err != nil {
				g.mu.Lock()
				g.broken = err
				g.mu.Unlock()
				// A reader that left is not a cut; one that stopped
				// reading until the deadline is.
				if errors.Is(err, os.ErrDeadlineExceeded) {
					g.opts.Metrics.Cut("mcp")
					g.opts.Logger.WarnContext(g.ctx, "mcp stream cut: a write did not complete in time", "bytes", len(batch), "timeout", g.opts.WriteTimeout)
				} else {
					g.opts.Logger.DebugContext(g.ctx, "mcp stream ended: write failed", "bytes", len(batch), "err", err)
				}
				g.cut()
				return
			}
			heartbeat.Reset(g.opts.Heartbeat)
		}
		if finishing {
			g.mu.Lock()
			drained := len(g.queue) == 0
			g.mu.Unlock()
			if drained {
				return
			}
		}
	}
}

func (g *guardedWriter) send(b []byte) error {
	_ = g.rc.SetWriteDeadline(time.Now().Add(g.opts.WriteTimeout))
	if _, err := g.w.Write(b); err != nil {
		return err
	}
	return g.rc.Flush()
}

// finish runs when the handler returns: what the SDK queued last (often the
// final response of a POST stream) must reach the client before the
// response ends. Then the deadline is cleared, so a kept-alive connection's
// next response is not cut by a stale one.
func (g *guardedWriter) finish() {
	g.mu.Lock()
	streaming := g.streaming
	g.finishing = true
	g.mu.Unlock()
	if streaming {
		g.signal()
		<-g.stopped
	}
	_ = g.rc.SetWriteDeadline(time.Time{})
}

// isReply reports whether p, one Server-Sent Event as the SDK writes it, is
// a JSON-RPC response: it has an id and no method. It reads the whole
// message, so it is asked only when a write would overflow the buffer.
func isReply(p []byte) bool {
	_, data, ok := bytes.Cut(p, []byte("data: "))
	if !ok {
		return false
	}
	data, _, _ = bytes.Cut(data, []byte("\n"))
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if err := json.Unmarshal(data, &msg); err != nil {
		return false
	}
	return len(msg.ID) > 0 && !bytes.Equal(msg.ID, []byte("null")) && msg.Method == ""
}
