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
	listens    sync.WaitGroup
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
			Stateless:                  true,
			Logger:                     opts.Logger,
			DisableLocalhostProtection: opts.DisableLocalhostProtection,
		}),
		closing:    closing,
		endListens: endListens,
	}
}

// ServeHTTP dispatches by protocol version.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Mcp-Protocol-Version") < statelessFrom {
		defer h.activity.track(r)()
		h.stateful.ServeHTTP(w, r)
		return
	}
	if r.Header.Get("Mcp-Method") == "subscriptions/listen" {
		h.listens.Add(1)
		defer h.listens.Done()
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
// ends, for each to have sent its final result. Call it before closing
// sessions and the HTTP server, which would cut the listens instead.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.endListens()
	done := make(chan struct{})
	go func() { h.listens.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("end listens: %w", ctx.Err())
	}
}

// CloseSessions ends every open session of s, so that an http.Server
// shutdown is not held up by their long-lived streams (the SDK has no
// shutdown hook of its own).
func CloseSessions(s *mcp.Server) {
	for ss := range s.Sessions() {
		_ = ss.Close()
	}
}

func principalFromContext(ctx context.Context) string {
	if ti := auth.TokenInfoFromContext(ctx); ti != nil {
		return ti.UserID
	}
	return ""
}
