package compat

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// statelessFrom is the first protocol version the SDK serves only from a
// stateless handler. Versions are dates, so they order as strings.
const statelessFrom = "2026-07-28"

// HandlerOptions configures the /mcp handler.
type HandlerOptions struct {
	Logger *slog.Logger
	// EventStore keeps what legacy sessions were sent, so a client that
	// reconnects its GET stream with Last-Event-ID gets what it missed. It
	// is never given to the stateless handler: 2026-07-28 streams carry no
	// event IDs.
	EventStore mcp.EventStore
	// DisableLocalhostProtection lets a same-host reverse proxy forward
	// requests with the public Host header to a loopback listener.
	DisableLocalhostProtection bool
}

// Handler serves every MCP protocol version at one URL: 2026-07-28 requests
// (by their MCP-Protocol-Version header) go to a stateless SDK handler, all
// others, including an initialize without the header, to a stateful one.
// Both take their server from the same getServer.
type Handler struct {
	stateful  http.Handler
	stateless http.Handler
	// closing ends with Shutdown: open 2026 listens then end gracefully.
	closing    context.Context
	endListens context.CancelFunc
	calls      sync.WaitGroup // POSTs being answered
	activity   *sessionActivity
	logger     *slog.Logger
}

// NewHandler returns the /mcp handler.
func NewHandler(getServer func(*http.Request) *mcp.Server, opts HandlerOptions) *Handler {
	closing, endListens := context.WithCancel(context.Background())
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{
		activity: newSessionActivity(),
		logger:   opts.Logger,
		stateful: mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
			Logger:                     opts.Logger,
			EventStore:                 opts.EventStore,
			DisableLocalhostProtection: opts.DisableLocalhostProtection,
		}),
		stateless: mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
			Stateless: true,
			// A 2026 client that goes away has no session to come back to:
			// end its call (a poll_events long poll above all) with the
			// request, rather than lease events to nobody until it times out.
			PropagateRequestCancellation: true,
			Logger:                       opts.Logger,
			DisableLocalhostProtection:   opts.DisableLocalhostProtection,
		}),
		closing:    closing,
		endListens: endListens,
	}
}

// ServeHTTP dispatches by protocol version.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		// Every call (a 2026 listen included) travels on a POST and is
		// answered on it; Shutdown waits for them to be answered.
		h.calls.Add(1)
		defer h.calls.Done()
	}
	if r.Header.Get("Mcp-Protocol-Version") < statelessFrom {
		defer h.activity.track(r)()
		h.stateful.ServeHTTP(w, r)
		return
	}
	h.stateless.ServeHTTP(w, r)
}

// EndListensOnShutdown is a receiving middleware for every server behind
// the handler. The SDK answers a listen with its final result (resultType
// "complete") when the listen handler's context ends while the HTTP stream
// is still open; this ties that context, and only it, to Shutdown, so a
// client can tell a planned end from a cut. (Ending the HTTP request's
// context instead makes the SDK drop the stream without a result.)
func (h *Handler) EndListensOnShutdown(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method != "subscriptions/listen" {
			return next(ctx, method, req)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(h.closing, cancel)()
		return next(ctx, method, req)
	}
}

// Shutdown ends every open 2026 listen gracefully and waits, until ctx
// ends, for every call in flight to have been answered: each listen's final
// result, and the answer of any other call, such as a long poll the caller
// has ended first (bridge.Inbox.EndWaits). Call it before closing sessions
// and the HTTP server, which would cut those answers off instead.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.endListens()
	done := make(chan struct{})
	go func() { h.calls.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("answer calls in flight: %w", ctx.Err())
	}
}

// CloseSessions ends every open legacy session of s, so that an
// http.Server shutdown is not held up by their long-lived streams (the SDK
// has no shutdown hook of its own). The per-request sessions of 2026-07-28
// (no session ID) are left to finish with their requests, which the
// shutdown waits for: closing one would drop the answer it is writing.
func CloseSessions(s *mcp.Server) {
	for ss := range s.Sessions() {
		if ss.ID() != "" {
			_ = ss.Close()
		}
	}
}

func principalFromContext(ctx context.Context) string {
	if ti := auth.TokenInfoFromContext(ctx); ti != nil {
		return ti.UserID
	}
	return ""
}
