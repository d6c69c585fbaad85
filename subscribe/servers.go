package subscribe

import (
	"context"
	"log/slog"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge/store"
)

// MCPStore is what the MCP push side reads; store.Store satisfies it.
type MCPStore interface {
	Reader
	Get(ctx context.Context, principal string, id store.ID) (store.Event, error)
	ReadPending(ctx context.Context, principal string, q store.Query) ([]store.Event, error)
	RegistrationByLabel(ctx context.Context, principal, label string) (store.Registration, error)
	Registrations(ctx context.Context, principal string) ([]store.Registration, error)
}

// ServersOptions configures Servers.
type ServersOptions struct {
	Implementation *mcp.Implementation
	Instructions   string
	Log            MCPStore
	Wake           Waiter
	Logger         *slog.Logger
	// Metrics is told of subscriptions and notifications; nil means none.
	Metrics Metrics
	// Extensions are declared in every server's capabilities
	// (capabilities.extensions), keyed by extension identifier.
	Extensions map[string]any
	// Configure adds what every principal's server offers besides the
	// resources of this package: the tools, extensions and middleware.
	Configure func(principal string, s *mcp.Server)
}

// Servers hands each principal its own *mcp.Server. The SDK's
// ResourceUpdated notifies every session of one server that subscribed to a
// URI, and hookgate://events is the same URI for everyone; one server per
// principal is what keeps one principal's events from reaching another.
type Servers struct {
	opts ServersOptions

	mu      sync.Mutex
	servers map[string]*principalServer
}

// NewServers returns an empty registry; servers are made on first use.
func NewServers(opts ServersOptions) *Servers {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Metrics = metricsOrNop(opts.Metrics)
	return &Servers{opts: opts, servers: make(map[string]*principalServer)}
}

// ForRequest is the SDK handler's getServer: the server of the request's
// authenticated principal, or nil (the SDK answers 400) without one.
func (s *Servers) ForRequest(r *http.Request) *mcp.Server {
	ti := auth.TokenInfoFromContext(r.Context())
	if ti == nil || ti.UserID == "" {
		return nil
	}
	return s.serverOf(ti.UserID).server
}

// HasSession reports whether id names a live legacy (2025-era) session of
// the principal's server. Requests the SDK does not route itself check
// their Mcp-Session-Id with it, so they answer an unknown or expired
// session, or one of another principal, as the SDK does: 404.
func (s *Servers) HasSession(principal, id string) bool {
	s.mu.Lock()
	ps, ok := s.servers[principal]
	s.mu.Unlock()
	if !ok || id == "" {
		return false
	}
	for ss := range ps.server.Sessions() {
		if ss.ID() == id {
			return true
		}
	}
	return false
}

// serverOf returns the principal's server, making it on first use.
func (s *Servers) serverOf(principal string) *principalServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.servers[principal]
	if !ok {
		ps = newPrincipalServer(principal, s.opts)
		s.servers[principal] = ps
	}
	return ps
}

// Each calls f with every principal's server, for shutdown.
func (s *Servers) Each(f func(*mcp.Server)) {
	s.mu.Lock()
	all := make([]*principalServer, 0, len(s.servers))
	for _, ps := range s.servers {
		all = append(all, ps)
	}
	s.mu.Unlock()
	for _, ps := range all {
		f(ps.server)
	}
}

// principalServer is one principal's MCP server with its subscriptions and
// the notifier that turns new log entries into resource notifications.
type principalServer struct {
	principal string
	server    *mcp.Server
	opts      ServersOptions
	subs      *subscriptions
}

func newPrincipalServer(principal string, opts ServersOptions) *principalServer {
	ps := &principalServer{principal: principal, opts: opts}
	ps.subs = newSubscriptions(ps)
	ps.server = mcp.NewServer(opts.Implementation, &mcp.ServerOptions{
		Instructions: opts.Instructions,
		Logger:       opts.Logger,
		Capabilities: &mcp.ServerCapabilities{
			Tools:      &mcp.ToolCapabilities{ListChanged: false},
			Resources:  &mcp.ResourceCapabilities{Subscribe: true, ListChanged: false},
			Extensions: opts.Extensions,
		},
		SubscribeHandler:   ps.subs.subscribe,
		UnsubscribeHandler: ps.subs.unsubscribe,
	})
	if opts.Configure != nil {
		opts.Configure(principal, ps.server)
	}
	ps.addResources()
	return ps
}

// Close stops every principal's notifier; call it when the server stops.
func (s *Servers) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ps := range s.servers {
		ps.subs.close()
	}
}
