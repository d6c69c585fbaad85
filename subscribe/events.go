package subscribe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge/store"
)

// EventsExtension is the identifier of the MCP Events extension (SEP-3415)
// in capabilities.extensions.
const EventsExtension = "io.modelcontextprotocol/events"

// EventsProfile picks between the texts of the MCP Events extension where
// they disagree: error-code numbers, unsubscribe of an unknown subscription,
// the stream's final result, long polls and control envelopes.
type EventsProfile string

// The profiles. ProfileChatGPT follows the design sketch and what ChatGPT
// documents (codes -32011..-32015, idempotent unsubscribe, no gap or
// terminated envelopes); ProfileSEP follows SEP-3415 (codes -32023..-32027,
// NotFound for an unknown unsubscribe, terminated envelopes).
const (
	ProfileChatGPT EventsProfile = "chatgpt"
	ProfileSEP     EventsProfile = "sep"
)

// ParseEventsProfile returns the profile named s; "" means ProfileChatGPT.
func ParseEventsProfile(s string) (EventsProfile, error) {
	switch EventsProfile(s) {
	case "", ProfileChatGPT:
		return ProfileChatGPT, nil
	case ProfileSEP:
		return ProfileSEP, nil
	}
	return "", fmt.Errorf("events profile %q: want chatgpt or sep", s)
}

// EventsStore is what the Events extension reads and writes; store.Store
// satisfies it. Webhook subscriptions live in the store, so they survive
// restarts, and every delivery path reads the one log.
type EventsStore interface {
	Reader
	RegistrationByLabel(ctx context.Context, principal, label string) (store.Registration, error)
	Registrations(ctx context.Context, principal string) ([]store.Registration, error)
	PutSubscription(ctx context.Context, s store.Subscription) error
	DeleteSubscription(ctx context.Context, principal, id string) error
	Subscriptions(ctx context.Context) ([]store.Subscription, error)
	ClaimSubscription(ctx context.Context, principal, id, owner string, ttl time.Duration) (store.Subscription, bool, error)
	SaveSubscriptionCursor(ctx context.Context, principal, id, owner string, cursor store.ID) error
}

// EventsOptions configures Events. Zero durations and counts mean the
// defaults given on each field.
type EventsOptions struct {
	Log  EventsStore
	Wake Waiter
	// Profile defaults to ProfileChatGPT.
	Profile EventsProfile
	// AllowLocalCallbacks accepts http:// and loopback callback URLs, for
	// tests and local use. Private and other non-public addresses are
	// refused either way.
	AllowLocalCallbacks bool
	// Resolver looks callback hosts up; default net.DefaultResolver.
	Resolver Resolver
	// Dial connects to a callback address that has passed the address
	// checks; default a net.Dialer. Tests pass one that refuses anything
	// off loopback, so a regression in the checks fails a test instead of
	// sending traffic to a real network.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// TLS configures callback connections (tests add a root CA); default
	// the system roots.
	TLS *tls.Config
	// Now is the clock of TTLs, timestamps and cursors "from now"; it must
	// agree with the store's ID clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics is told the result of every webhook delivery attempt; nil
	// means none is told.
	Metrics CallbackMetrics
	// HasSession reports whether a legacy request's Mcp-Session-Id names a
	// live session of the principal (Servers.HasSession); an events/stream
	// on any other answers 404 so the client re-initializes. Nil accepts
	// every non-empty ID.
	HasSession func(principal, id string) bool

	// Heartbeat is the quiet time after which an events/stream gets a
	// heartbeat; default 15 s (the extension asks for at most 30 s).
	Heartbeat time.Duration
	// PageSize is the number of descriptors per events/list page; default 50.
	PageSize int
	// CallbackTimeout bounds each callback request (challenge or
	// delivery); default 10 s.
	CallbackTimeout time.Duration
	// RetryDelay is the wait before the first retry of a failed delivery;
	// each later one waits five times longer. Default 1 s: with
	// MaxAttempts 6 a failing event is abandoned about 13 minutes after
	// its first attempt, the window the extension suggests.
	RetryDelay  time.Duration
	MaxAttempts int
	// DefaultTTL, MinTTL and MaxTTL bound a webhook subscription's grant;
	// defaults 24 h, 1 min and 7 days.
	DefaultTTL, MinTTL, MaxTTL time.Duration
	// SecretGrace is how long a replaced secret still signs deliveries
	// beside the new one; default 1 h.
	SecretGrace time.Duration
	// VerifyFor is how long a challenge passed for (principal, URL) covers
	// further subscriptions to that URL; default 24 h.
	VerifyFor time.Duration
	// MaxSubscriptions caps a principal's webhook subscriptions; default 100.
	MaxSubscriptions int
	// ClaimTTL is how long a replica's claim on delivering a webhook
	// subscription lasts unless renewed; default 15 s. Each replica renews
	// its claims and takes over free or expired ones every ClaimTTL/3, so a
	// replica that dies without Shutdown has its subscriptions taken over
	// within about ClaimTTL plus ClaimTTL/3.
	ClaimTTL time.Duration
}

func (o *EventsOptions) setDefaults() {
	if o.Profile == "" {
		o.Profile = ProfileChatGPT
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = nopCallbackMetrics{}
	}
	setDefault(&o.Heartbeat, DefaultHeartbeat)
	setDefault(&o.PageSize, 50)
	setDefault(&o.CallbackTimeout, 10*time.Second)
	setDefault(&o.RetryDelay, time.Second)
	setDefault(&o.MaxAttempts, 6)
	setDefault(&o.DefaultTTL, 24*time.Hour)
	setDefault(&o.MinTTL, time.Minute)
	setDefault(&o.MaxTTL, 7*24*time.Hour)
	setDefault(&o.SecretGrace, time.Hour)
	setDefault(&o.VerifyFor, 24*time.Hour)
	setDefault(&o.MaxSubscriptions, 100)
	setDefault(&o.ClaimTTL, 15*time.Second)
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Events is hookgate's side of the MCP Events extension: events/list,
// events/poll, events/stream and webhook subscriptions. Every event type is
// one of a principal's registrations; every occurrence is read from the log
// by cursor, and a webhook subscription, with its delivery cursor, is kept
// in the store, so a restart resumes delivery where it stopped.
//
// Wire it in three places: Extensions and Configure on every principal's
// *mcp.Server, Handler around the /mcp handler (events/stream and
// list_changed are served there, since the SDK sends no custom
// notifications), and Start/Shutdown with the process.
type Events struct {
	opts     EventsOptions
	errs     errorProfile
	callback *callbackClient
	changes  *changeHub

	// stopping ends with Shutdown: streams end with their final result and
	// delivery workers stop between events.
	stopping context.Context
	stop     context.CancelFunc

	mu      sync.Mutex
	closed  bool // no stream starts once Shutdown began
	streams sync.WaitGroup

	webhooks *webhooks
}

// NewEvents returns the extension; call Start before serving.
func NewEvents(opts EventsOptions) (*Events, error) {
	if opts.Log == nil || opts.Wake == nil {
		return nil, errors.New("events: Log and Wake are required")
	}
	profile, err := ParseEventsProfile(string(opts.Profile))
	if err != nil {
		return nil, err
	}
	opts.Profile = profile
	opts.setDefaults()
	x := &Events{opts: opts, errs: errorProfileFor(profile), changes: newChangeHub()}
	x.callback = newCallbackClient(opts.Resolver, opts.Dial, opts.TLS, opts.AllowLocalCallbacks, opts.CallbackTimeout)
	x.stopping, x.stop = context.WithCancel(context.Background())
	x.webhooks = newWebhooks(x)
	return x, nil
}

// Extensions is the capabilities.extensions entry for ServersOptions.
func (x *Events) Extensions() map[string]any {
	return map[string]any{EventsExtension: x.capability()}
}

// capability is the settings object of both the extension entry and the
// top-level "events" key: the catalog changes when registrations do, and
// clients are told.
func (x *Events) capability() map[string]any {
	return map[string]any{"listChanged": true}
}

// Configure adds the extension's methods to one principal's server: the
// events/* requests the SDK can route, the top-level "events" capability
// its fixed capability struct cannot carry, and the watch on
// register_webhook and delete_webhook that drives list_changed.
func (x *Events) Configure(principal string, s *mcp.Server) {
	h := &eventsHandlers{x: x, principal: principal}
	// The method names are not standard MCP methods, so registration
	// cannot fail.
	_ = mcp.AddReceivingCustomMethod(s, "events/list", h.list)
	_ = mcp.AddReceivingCustomMethod(s, "events/poll", h.poll)
	_ = mcp.AddReceivingCustomMethod(s, "events/subscribe", h.subscribe)
	_ = mcp.AddReceivingCustomMethod(s, "events/unsubscribe", h.unsubscribe)
	s.AddReceivingMiddleware(x.advertise, h.watchRegistrations)
}

// Start resumes delivery of every stored webhook subscription that no other
// replica delivers (see ClaimTTL); expired ones are deleted. ctx bounds only
// the loading; from then on a supervisor keeps claiming until Shutdown.
func (x *Events) Start(ctx context.Context) error {
	return x.webhooks.start(ctx)
}

// Shutdown ends every events/stream with its final result and stops the
// delivery workers; an attempt in flight finishes (within CallbackTimeout)
// and its cursor is saved, so a graceful restart delivers nothing twice,
// and then each claim is released, so another replica takes over at once.
// It waits until ctx ends.
func (x *Events) Shutdown(ctx context.Context) error {
	x.mu.Lock()
	x.closed = true
	x.mu.Unlock()
	x.webhooks.mu.Lock() // workers are launched under it, never after stop
	x.stop()
	x.webhooks.mu.Unlock()
	done := make(chan struct{})
	go func() {
		x.streams.Wait()
		x.webhooks.wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop events: %w", ctx.Err())
	}
}

// enterStream counts a stream Shutdown waits for, unless Shutdown has
// begun.
func (x *Events) enterStream() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return false
	}
	x.streams.Add(1)
	return true
}

// eventsHandlers serves the events/* requests of one principal's server.
type eventsHandlers struct {
	x         *Events
	principal string
}
