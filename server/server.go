// Package server wires hookgate together: configuration, the store, auth,
// the HTTP routes, background work and the process lifecycle. Business logic
// lives in bridge, compat and subscribe; this package only connects them.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
	"github.com/hookgate/hookgate/bridge/store/redis"
	"github.com/hookgate/hookgate/compat"
	"github.com/hookgate/hookgate/server/dashboard"
	"github.com/hookgate/hookgate/server/observe"
	"github.com/hookgate/hookgate/subscribe"
)

// Version is reported to MCP clients as the server version.
const Version = "0.1.0"

// replayBufferBytes bounds what legacy MCP sessions keep for Last-Event-ID
// replay of their streams, across all sessions of the process;
// replaySessionBytes bounds what any one session keeps, so a session that
// stalls uses up its own history and not the others'.
const (
	replayBufferBytes  = 64 << 20
	replaySessionBytes = 4 << 20
)

const instructions = "hookgate turns webhooks into events you can poll or subscribe to. register_webhook gives a URL for a provider; check_pending_events or poll_events return events leased to you; ack_event each one once handled. Subscribe to hookgate://webhooks/{label} or hookgate://events to be told of each new event as it arrives."

// DevPrincipal owns the development token printed on first start.
const DevPrincipal = "dev"

// Server is a running hookgate: one listener serving ingress, /mcp and the
// health routes over one store.
type Server struct {
	cfg         Config
	logger      *slog.Logger
	store       store.Store
	inbox       *bridge.Inbox
	mcp         *compat.Handler
	servers     *subscribe.Servers
	relay       wakeRelay         // wake-ups between replicas; nil on the embedded store
	events      *subscribe.Events // the MCP Events extension and its webhook delivery; nil with --events=false
	observer    *observe.Observer
	metrics     *prometheus.Registry
	metricsHTTP *http.Server    // only with --metrics-addr
	feeds       context.Context // ends on Shutdown: SSE and WebSocket feeds end
	endFeeds    context.CancelFunc
	sse         *subscribe.SSEHandler // its feeds outlive their requests; Shutdown waits
	http        *http.Server
	listener    net.Listener
	publicURL   string
	served      chan error
	stopBG      context.CancelFunc
	bg          sync.WaitGroup // background loops
}

// OpenStore opens the store the configuration names: Redis with --redis,
// else the embedded store in --data. created reports an embedded store made
// just now (an empty data directory); a Redis store never reports it, since
// other replicas may share it.
func OpenStore(ctx context.Context, cfg Config, logger *slog.Logger) (s store.Store, created bool, err error) {
	if cfg.Redis != "" {
		s, err = redis.Open(ctx, cfg.Redis, redis.Options{Logger: logger, WaitReplicas: cfg.RedisWaitReplicas})
		if err != nil {
			return nil, false, fmt.Errorf("open Redis store: %w", err)
		}
		return s, false, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	path := StorePath(cfg.DataDir)
	_, statErr := os.Stat(path)
	created = errors.Is(statErr, os.ErrNotExist)
	s, err = bolt.Open(path, bolt.Options{Logger: logger})
	if err != nil {
		return nil, false, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, created, nil
}

// StorePath is the file of the embedded store in dataDir.
func StorePath(dataDir string) string { return filepath.Join(dataDir, "hookgate.db") }

// StoreLocation names the store the configuration opens, for people: the
// Redis URL (its password hidden) with --redis, else the embedded store's file.
func StoreLocation(cfg Config) string {
	if cfg.Redis != "" {
		if u, err := url.Parse(cfg.Redis); err == nil {
			return u.Redacted()
		}
		return "Redis"
	}
	return StorePath(cfg.DataDir)
}

// Start opens the store, binds the listener, prints where to connect (and,
// on first start or with DevToken, a development token) to out, and serves
// in the background until Shutdown.
func Start(ctx context.Context, cfg Config, out io.Writer, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, created, err := OpenStore(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{cfg: cfg, logger: logger, listener: ln, served: make(chan error, 1)}
	s.metrics = prometheus.NewRegistry()
	var registerer prometheus.Registerer
	if cfg.Metrics {
		registerer = s.metrics
		s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.observer = observe.New(observe.Options{Store: st, Registerer: registerer})
	if cfg.Metrics {
		st = s.observer.InstrumentStore(st)
	}
	s.store = st
	s.feeds, s.endFeeds = context.WithCancel(context.Background())
	s.publicURL = cfg.PublicURL
	if s.publicURL == "" {
		s.publicURL = localURL(ln.Addr())
	}
	if err := s.printBanner(ctx, out, created || cfg.DevToken); err != nil {
		_ = ln.Close()
		_ = st.Close()
		return nil, err
	}
	if s.relay, err = newWakeRelay(cfg, logger); err != nil {
		_ = ln.Close()
		_ = st.Close()
		return nil, err
	}
	s.inbox = bridge.New(st, bridge.Options{
		Wakeups:   newWakeups(s.relay),
		PublicURL: s.publicURL,
		Lease:     cfg.Lease,
		MaxBody:   cfg.MaxBody,
		Tolerance: cfg.Tolerance,
		Logger:    logger,
		Observer:  s.observer,
	})
	// MCP Events extension: events/* on /mcp, and webhook subscriptions
	// delivered from the store by workers that run until Shutdown.
	if cfg.Events {
		s.events, err = subscribe.NewEvents(subscribe.EventsOptions{
			Log:                 st,
			Wake:                s.inbox.Wakeups(),
			Profile:             subscribe.EventsProfile(cfg.EventsProfile),
			AllowLocalCallbacks: cfg.EventsAllowLocalCallbacks,
			RetryDelay:          cfg.EventsRetryDelay,
			ClaimTTL:            cfg.EventsClaimTTL,
			Logger:              logger,
			Metrics:             s.observer,
			// s.servers is made below, before any request is served.
			HasSession: func(principal, id string) bool { return s.servers.HasSession(principal, id) },
		})
		if err == nil {
			if err = s.events.Start(ctx); err != nil {
				_ = s.events.Shutdown(context.Background())
			}
		}
		if err != nil {
			_ = ln.Close()
			_ = st.Close()
			return nil, err
		}
	}
	s.servers = subscribe.NewServers(subscribe.ServersOptions{
		Implementation: &mcp.Implementation{Name: "hookgate", Version: Version},
		Instructions:   instructions,
		Log:            st,
		Wake:           s.inbox.Wakeups(),
		Logger:         sdkLogger(logger), // given to the MCP SDK only
		Metrics:        s.observer,
		Extensions:     s.eventsExtensions(),
		Configure: func(principal string, m *mcp.Server) {
			compat.AddTools(m, s.inbox)
			s.observer.AddTool(m)
			m.AddReceivingMiddleware(s.mcp.EndListensOnShutdown)
			if s.events != nil {
				s.events.Configure(principal, m)
			}
		},
	})
	replay := compat.NewReplayStore(compat.ReplayOptions{PerSession: replaySessionBytes, Total: replayBufferBytes})
	s.mcp = compat.NewHandler(s.servers.ForRequest, compat.HandlerOptions{
		// Only INFO is lowered: compat's own lines are DEBUG or WARN.
		Logger:                     sdkLogger(logger),
		EventStore:                 replay,
		DisableLocalhostProtection: !isLoopbackURL(s.publicURL),
	})
	s.http = &http.Server{
		Handler:           withRequestID(s.routes()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.Metrics && cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			_ = ln.Close()
			_ = st.Close()
			return nil, fmt.Errorf("listen on --metrics-addr %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metricsHandler())
		s.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = s.metricsHTTP.Serve(mln) }()
		logger.Info("serving metrics", "addr", mln.Addr().String())
	}
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	s.stopBG = stopBG
	s.bg.Go(func() { s.compactLoop(bgCtx) })
	if s.relay != nil {
		s.bg.Go(func() { s.relay.Run(bgCtx, s.inbox.Wakeups()) })
	}
	s.bg.Go(func() {
		s.mcp.ReapIdleSessions(bgCtx, cfg.SessionIdle, min(cfg.SessionIdle/2, time.Minute), s.servers.Each)
	})
	go func() { s.served <- s.http.Serve(ln) }()
	logger.Info("serving", "addr", ln.Addr().String(), "public_url", s.publicURL, "data", cfg.DataDir, "store", StoreLocation(cfg))
	return s, nil
}

// Run serves until ctx is cancelled (SIGTERM in the binary), then shuts down
// gracefully.
func Run(ctx context.Context, cfg Config, out io.Writer, logger *slog.Logger) error {
	s, err := Start(ctx, cfg, out, logger)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-s.served:
		_ = s.Shutdown(context.Background())
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(shutdownCtx)
}

// URL returns the public base URL.
func (s *Server) URL() string { return s.publicURL }

// Addr returns the listener's address.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Store returns the server's store.
func (s *Server) Store() store.Store { return s.store }

// Shutdown stops accepting requests, ends MCP sessions, lets in-flight
// requests (ingress above all) finish until ctx ends, then closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.endFeeds()
	s.inbox.EndWaits()
	var eventsErr error
	if s.events != nil {
		eventsErr = s.events.Shutdown(ctx)
	}
	listenErr := s.mcp.Shutdown(ctx)
	s.servers.Each(compat.CloseSessions)
	httpErr := s.http.Shutdown(ctx)
	sseErr := s.sse.Wait(ctx) // SSE feeds run past their requests; see NewSSEHandler
	if s.metricsHTTP != nil {
		_ = s.metricsHTTP.Shutdown(ctx)
	}
	if httpErr != nil {
		httpErr = fmt.Errorf("stop http server: %w", httpErr)
		_ = s.http.Close()
	}
	s.servers.Close()
	s.stopBG()
	s.bg.Wait()
	if s.relay != nil {
		_ = s.relay.Close()
	}
	var storeErr error
	if err := s.store.Close(); err != nil {
		storeErr = fmt.Errorf("close store: %w", err)
	}
	return errors.Join(eventsErr, listenErr, httpErr, sseErr, storeErr)
}

func (s *Server) routes() http.Handler {
	authed := func(h http.Handler) http.Handler {
		if s.cfg.NoAuth {
			return noAuth(h)
		}
		return requireToken(s.store, h)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/{id}", s.inbox)
	mux.Handle("/mcp", authed(subscribe.GuardStreams(s.mcpHandler(), subscribe.GuardOptions{Metrics: s.observer, Logger: s.logger})))
	feeds := subscribe.FeedOptions{
		Log:       s.store,
		Wake:      s.inbox.Wakeups(),
		Principal: principalOf,
		Labels:    s.inbox.CheckLabel,
		Acker:     s.inbox,
		Stopping:  s.feeds,
		Metrics:   s.observer,
		Logger:    s.logger,
	}
	s.sse = subscribe.NewSSEHandler(feeds)
	mux.Handle("GET /v1/stream", authed(s.sse))
	mux.Handle("GET /v1/ws", authed(subscribe.NewWebSocketHandler(feeds)))
	mux.Handle("GET /v1/stats", authed(s.observer.StatsHandler(principalOf)))
	mux.Handle("GET /v1/webhooks", authed(webhooksHandler(s.inbox)))
	mux.Handle("GET /v1/events", authed(s.inbox.LogHandler(principalOf)))
	mux.Handle("POST /v1/requeue", authed(s.inbox.RequeueHandler(principalOf)))
	// The dashboard page and its assets are public; its data comes from the
	// authenticated routes above.
	page := dashboard.Handler()
	mux.Handle("GET /{$}", page)
	mux.Handle("GET "+dashboard.AssetPrefix, page)
	if s.cfg.Metrics && s.cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", s.metricsHandler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.inbox.Ready(r.Context()); err != nil {
			http.Error(w, "store not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	return mux
}

// metricsHandler serves the Prometheus exposition of the server's registry.
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)})
}

// mcpHandler serves /mcp: the MCP handler, behind the Events extension's
// unless --events=false turned the extension off.
func (s *Server) mcpHandler() http.Handler {
	if s.events == nil {
		return subscribe.EventsOff(s.mcp)
	}
	return s.events.Handler(s.mcp)
}

// eventsExtensions is what the Events extension adds to the capabilities
// every server declares; nothing when it is off.
func (s *Server) eventsExtensions() map[string]any {
	if s.events == nil {
		return nil
	}
	return s.events.Extensions()
}

// compactLoop deletes events past their retention until ctx ends, and
// tells the observer of the ones it deleted unacked: those are drops.
func (s *Server) compactLoop(ctx context.Context) {
	if s.cfg.CompactEvery <= 0 {
		return
	}
	tick := time.NewTicker(s.cfg.CompactEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			res, err := s.store.Compact(ctx)
			// What was deleted before an error is gone all the same.
			s.observer.Compacted(res)
			if err != nil {
				s.logger.Warn("compact store", "err", err)
			} else if res.Deleted > 0 {
				s.logger.Info("compacted store", "deleted_events", res.Deleted, "deleted_unacked", unacked(res))
			}
		}
	}
}

// unacked totals the events a compaction deleted while still pending.
func unacked(res store.CompactResult) int {
	n := 0
	for _, d := range res.Unacked {
		n += d.Events
	}
	return n
}

func (s *Server) printBanner(ctx context.Context, out io.Writer, withToken bool) error {
	fmt.Fprintf(out, "hookgate %s\n  Listening: %s\n  MCP URL: %s/mcp\n  Store:   %s\n", Version, localURL(s.listener.Addr()), s.publicURL, StoreLocation(s.cfg))
	switch {
	case s.cfg.NoAuth:
		fmt.Fprintf(out, "  Auth:    none (--no-auth): every request is principal %q\n", LocalPrincipal)
	case withToken:
		token, err := CreateDevToken(ctx, s.store, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  Token:   %s\n  (a development token for principal %q; it replaces the previous development token, which no longer works, and is not shown again — create lasting tokens with `hookgate token create --name NAME`)\n", token, DevPrincipal)
	default:
		fmt.Fprintf(out, "  Token:   use one from `hookgate token create --name NAME` (run while the server is stopped), or start with --dev-token\n")
	}
	return nil
}

// localURL turns a listener address into a URL a local client can use.
func localURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return true
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
