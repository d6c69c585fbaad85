// Package bridge is hookgate's webhook side: it verifies and stores what
// providers POST, owns the registrations that name their endpoints, and
// implements the poll, lease and ack semantics every polling path shares.
//
// It knows nothing of MCP sessions or streams; those read the same log
// through package store and wait on Wakeups.
package bridge

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// Options configures an Inbox. The zero value of each field means its default.
type Options struct {
	// PublicURL is the base URL providers reach hookgate at; registration
	// URLs are PublicURL + "/hooks/" + ID. Twilio and Square sign it.
	PublicURL string
	// Lease is how long a polled event stays leased; default 5 minutes.
	Lease time.Duration
	// MaxBody caps a webhook body; default 1 MiB.
	MaxBody int64
	// Tolerance is the timestamp window of schemes that sign a time; default 5 minutes.
	Tolerance time.Duration
	// Now is the clock used for signature timestamps and receivedAt; default time.Now.
	Now func() time.Time
	// Logger receives one debug line per ingress outcome and warnings on
	// store failures; default discards.
	Logger *slog.Logger
	// Wakeups is notified after every append; default a private one.
	Wakeups *Wakeups
	// Observer is told of every webhook, lease, ack and nack; default none.
	Observer Observer
	// Recheck is how often a waiting long poll looks at the store again
	// without a wake-up, because an expiring lease or a nack's delay wakes
	// nobody; default 1 second.
	Recheck time.Duration
}

// DefaultMaxBody is the default webhook body limit.
const DefaultMaxBody = 1 << 20

// Inbox is the webhook side of hookgate over one store.
type Inbox struct {
	store    store.Store
	opts     Options
	wake     *Wakeups
	logger   *slog.Logger
	observer Observer

	// stopWaits closes when EndWaits is called: long polls then answer
	// with what they have instead of holding a shutdown for up to MaxWait.
	stopWaits chan struct{}
	stopOnce  sync.Once
}

// New returns an Inbox on s.
func New(s store.Store, opts Options) *Inbox {
	if opts.Lease <= 0 {
		opts.Lease = store.DefaultLease
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Tolerance <= 0 {
		opts.Tolerance = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Recheck <= 0 {
		opts.Recheck = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Wakeups == nil {
		opts.Wakeups = NewWakeups()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	return &Inbox{store: s, opts: opts, wake: opts.Wakeups, logger: opts.Logger, observer: opts.Observer, stopWaits: make(chan struct{})}
}

// EndWaits makes every long poll, waiting now or later, answer at once with
// what is pending (usually nothing), as a graceful shutdown needs: the
// agent polls again, elsewhere or after the restart, and loses nothing.
func (in *Inbox) EndWaits() { in.stopOnce.Do(func() { close(in.stopWaits) }) }

// Store returns the log the inbox writes to.
func (in *Inbox) Store() store.Store { return in.store }

// Wakeups returns the waiters notified after each append.
func (in *Inbox) Wakeups() *Wakeups { return in.wake }

// HookURL returns the public URL of a registration's endpoint.
func (in *Inbox) HookURL(registrationID string) string {
	return in.opts.PublicURL + "/hooks/" + registrationID
}

// Ready reports whether the store is reachable.
func (in *Inbox) Ready(ctx context.Context) error { return in.store.Ping(ctx) }
