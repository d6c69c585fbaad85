package compat

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// statelessFrom is the first protocol version the SDK serves only from a
// stateless handler. Versions are dates, so they order as strings.
const statelessFrom = "2026-07-28"

// HandlerOptions configures the /mcp handler.
type HandlerOptions struct {
	Logger *slog.Logger
	// SessionTimeout closes a legacy session idle this long; 0 never does.
	SessionTimeout time.Duration
	// DisableLocalhostProtection lets a same-host reverse proxy forward
	// requests with the public Host header to a loopback listener.
	DisableLocalhostProtection bool
}

// Handler serves every MCP protocol version at one URL: 2026-07-28 requests
// (by their MCP-Protocol-Version header) go to a stateless SDK handler, all
// others, including an initialize without the header, to a stateful one.
// Both serve the same *mcp.Server.
type Handler struct {
	server    *mcp.Server
	stateful  http.Handler
	stateless http.Handler
}

// NewHandler returns the /mcp handler for s.
func NewHandler(s *mcp.Server, opts HandlerOptions) *Handler {
	getServer := func(*http.Request) *mcp.Server { return s }
	return &Handler{
		server: s,
		stateful: mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
			Logger:                     opts.Logger,
			SessionTimeout:             opts.SessionTimeout,
			DisableLocalhostProtection: opts.DisableLocalhostProtection,
		}),
		stateless: mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
			Stateless:                  true,
			Logger:                     opts.Logger,
			DisableLocalhostProtection: opts.DisableLocalhostProtection,
		}),
	}
}

// ServeHTTP dispatches by protocol version.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Mcp-Protocol-Version") >= statelessFrom {
		h.stateless.ServeHTTP(w, r)
		return
	}
	h.stateful.ServeHTTP(w, r)
}

// CloseSessions ends every open session, so that an http.Server shutdown is
// not held up by their long-lived streams (the SDK has no shutdown hook).
func (h *Handler) CloseSessions() {
	for ss := range h.server.Sessions() {
		_ = ss.Close()
	}
}

func principalFromContext(ctx context.Context) string {
	if ti := auth.TokenInfoFromContext(ctx); ti != nil {
		return ti.UserID
	}
	return ""
}
