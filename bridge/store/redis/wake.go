package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// keyWake is the pub/sub channel, after the key prefix, that carries
// wake-ups between replicas. Pub/sub channels are not keys: they live in no
// slot, and on a Cluster a PUBLISH reaches the subscribers of every node.
const keyWake = "wake"

// Relay timings. A subscription that has heard nothing for relayPing is
// pinged; one that does not answer within another relayPing is replaced, so
// a Redis that hangs without closing the connection (a network partition, a
// stopped process) is noticed. Failed publishes and subscriptions are
// retried from relayBackoff, doubling up to relayMaxBackoff.
const (
	relayPing       = 5 * time.Second
	relayBackoff    = 100 * time.Millisecond
	relayMaxBackoff = 2 * time.Second
)

// DefaultRecheck is how often a Relay wakes every local waiter anyway,
// unless RelayOptions.Recheck says otherwise.
const DefaultRecheck = 5 * time.Second

// A Waker is what a Relay wakes on this replica; *bridge.Wakeups satisfies
// it.
type Waker interface {
	// NotifyLocal wakes the waiters of principal, whose log another
	// replica has appended to.
	NotifyLocal(principal string)
	// NotifyAll wakes every waiter, for when wake-ups may have been lost.
	NotifyAll()
}

// RelayOptions configures NewRelay.
type RelayOptions struct {
	// KeyPrefix is the store's key prefix (Options.KeyPrefix): replicas
	// relay wake-ups to each other only if they use the same one. ""
	// means DefaultKeyPrefix.
	KeyPrefix string

	// Logger receives one line when the relay loses Redis and one when it
	// is back; nil discards them.
	Logger *slog.Logger

	// Recheck is how often every local waiter is woken even without a
	// wake-up, as a safety net for wake-ups lost with no sign of it, such
	// as those of a replica that crashed between an append and its
	// publish; <= 0 means DefaultRecheck. A waiter woken for nothing reads
	// its cursor once and finds nothing new.
	Recheck time.Duration
}

// Relay carries wake-ups between the hookgate replicas that share one
// Redis: Publish, after an append has committed, sends the principal on a
// pub/sub channel, and Run, on every replica, wakes that principal's local
// waiters when it arrives.
//
// The log stays the source of truth, so pub/sub's at-most-once delivery is
// enough: a wake-up that is lost costs latency, never an event. Losses are
// bounded anyway. A publish that fails is retried until it goes through.
// When the subscription is (re)established, after Redis was away or the
// connection broke, Run wakes every local waiter once, since whatever was
// published meanwhile is lost; and every Recheck it does so regardless.
type Relay struct {
	rdb     *goredis.Client
	channel string
	origin  string // this relay's tag: its own wake-ups coming back are ignored
	log     *slog.Logger
	recheck time.Duration

	mu    sync.Mutex
	dirty map[string]struct{} // principals to publish
	kick  chan struct{}       // has a value when dirty may be non-empty
}

// NewRelay returns a relay for the Redis at rawURL (a URL as Open takes).
// It holds no connection until Run, so a relay that is never run needs no
// Close.
func NewRelay(rawURL string, opts RelayOptions) (*Relay, error) {
	k, err := newKeys(opts.KeyPrefix)
	if err != nil {
		return nil, fmt.Errorf("new redis wake-up relay: %w", err)
	}
	ro, err := clientOptions(rawURL)
	if err != nil {
		return nil, fmt.Errorf("new redis wake-up relay: %w", err)
	}
	var tag [8]byte
	_, _ = rand.Read(tag[:]) // never fails
	r := &Relay{
		rdb:     goredis.NewClient(ro),
		channel: k.global(keyWake),
		origin:  hex.EncodeToString(tag[:]),
		log:     opts.Logger,
		recheck: opts.Recheck,
		dirty:   make(map[string]struct{}),
		kick:    make(chan struct{}, 1),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.recheck <= 0 {
		r.recheck = DefaultRecheck
	}
	return r, nil
}

// Publish queues a wake-up for principal and returns at once; Run sends it.
// Wake-ups queued for the same principal before Run gets to them are sent
// as one.
func (r *Relay) Publish(principal string) {
	r.mu.Lock()
	r.dirty[principal] = struct{}{}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run publishes queued wake-ups and delivers the other replicas' to to,
// until ctx ends. It rides out Redis outages on its own.
func (r *Relay) Run(ctx context.Context, to Waker) {
	var wg sync.WaitGroup
	wg.Go(func() { r.publishLoop(ctx) })
	wg.Go(func() { r.recheckLoop(ctx, to) })
	r.subscribeLoop(ctx, to)
	wg.Wait()
}

// Close closes the relay's connections; call it after Run has returned.
func (r *Relay) Close() error {
	if err := r.rdb.Close(); err != nil {
		return fmt.Errorf("close redis wake-up relay: %w", err)
	}
	return nil
}

// take empties the queue of principals to publish.
func (r *Relay) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.dirty))
	for p := range r.dirty {
		out = append(out, p)
	}
	clear(r.dirty)
	return out
}

// publishLoop sends queued wake-ups, one pipeline per batch, so that under
// load one round trip carries the wake-ups of many appends.
func (r *Relay) publishLoop(ctx context.Context) {
	backoff := relayBackoff
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		for {
			batch := r.take()
			if len(batch) == 0 {
				break
			}
			_, err := r.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, principal := range batch {
					p.Publish(ctx, r.channel, r.origin+" "+principal)
				}
				return nil
			})
			if err == nil {
				if failing {
					r.log.Info("redis wake-up relay: publishing again")
				}
				failing, backoff = false, relayBackoff
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if !failing {
				r.log.Warn("redis wake-up relay: publish failed; retrying", "err", err)
				failing = true
			}
			for _, p := range batch {
				r.Publish(p)
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, relayMaxBackoff)
		}
	}
}

// subscribeLoop receives wake-ups until ctx ends, resubscribing whenever
// the connection is lost, and wakes every local waiter on each
// (re)subscription.
func (r *Relay) subscribeLoop(ctx context.Context, to Waker) {
	// A receive does not end with ctx: closing the subscription does.
	var mu sync.Mutex
	ps := r.rdb.Subscribe(ctx, r.channel)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		_ = ps.Close()
	})
	defer func() {
		stop()
		mu.Lock()
		defer mu.Unlock()
		_ = ps.Close() // again, if ctx closed it: ErrClosed, ignored
	}()
	resubscribe := func() {
		mu.Lock()
		defer mu.Unlock()
		_ = ps.Close()
		ps = r.rdb.Subscribe(ctx, r.channel)
	}
	backoff := relayBackoff
	pinged, down := false, false
	for {
		msg, err := ps.ReceiveTimeout(ctx, relayPing)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					pinged = true
					_ = ps.Ping(ctx) // the PONG, or its absence, is the next receive
					continue
				}
				// No answer to the ping: the connection is dead but not
				// closed. Start over on a new one.
				r.log.Warn("redis wake-up relay: subscription unresponsive; reconnecting")
				resubscribe()
				pinged, down = false, true
				continue
			}
			// go-redis redials on the next receive; wait a little first.
			if !down {
				r.log.Warn("redis wake-up relay: subscription lost; wake-ups from other replicas wait until it is back", "err", err)
				down = true
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, relayMaxBackoff)
			continue
		}
		pinged, backoff = false, relayBackoff
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if down {
				r.log.Info("redis wake-up relay: subscribed again")
				down = false
			}
			// Whatever was published while not subscribed is lost: every
			// waiter reads its cursor again.
			to.NotifyAll()
		case *goredis.Message:
			origin, principal, ok := strings.Cut(m.Payload, " ")
			if ok && origin != r.origin {
				to.NotifyLocal(principal)
			}
		}
	}
}

// recheckLoop wakes every local waiter every r.recheck until ctx ends.
func (r *Relay) recheckLoop(ctx context.Context, to Waker) {
	t := time.NewTicker(r.recheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			to.NotifyAll()
		}
	}
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
