package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/bridge/store"
)

// Options configures Open.
type Options struct {
	// Now is the clock for ID assignment, leases and retention; nil means
	// time.Now. Tests set it to drive time by hand. Redis's own clock is
	// never used, so every hookgate replica must keep its clock in sync.
	Now func() time.Time

	// Logger receives compaction summaries and bookkeeping failures; nil
	// discards them.
	Logger *slog.Logger

	// WaitReplicas, if positive, makes every call that stores events,
	// registrations, tokens or subscriptions, and Ping, wait after its
	// write until that many replicas acknowledge it (Redis WAIT), so that
	// a successful Append survives the loss of the primary. A call whose
	// write is not acknowledged in time fails with an error wrapping
	// store.ErrUnavailable; the write itself stays on the primary, so a
	// retried Append of an event with a provider ID is reported as a
	// duplicate rather than stored twice. Lease state (Lease, Ack, Nack)
	// and Compact do not wait: see Lease.
	WaitReplicas int

	// WaitTimeout bounds each wait for replicas; <= 0 means two seconds.
	// A replica that has just synced can take a second to acknowledge its
	// first write, so shorter waits fail writes right after a resync.
	WaitTimeout time.Duration

	// KeyPrefix starts every key the store uses, so that several stores
	// (tests, deployments) can share one Redis; "" means DefaultKeyPrefix.
	// It must not contain braces, which would defeat the hash tags.
	KeyPrefix string
}

// Client settings that Open uses unless the URL sets them (dial_timeout,
// read_timeout, write_timeout, max_retries). The timeouts are short because
// a webhook provider waits on the answer and a 503 it can retry is better
// than a hung request.
const (
	defaultDialTimeout = 2 * time.Second
	defaultIOTimeout   = 3 * time.Second
	defaultWaitTimeout = 2 * time.Second
	clientName         = "hookgate"
)

var _ store.Store = (*redisStore)(nil)

// redisStore implements store.Store on one Redis.
type redisStore struct {
	rdb          *goredis.Client
	keys         keys
	scripts      scripts
	subScripts   subscriptionScripts
	now          func() time.Time
	log          *slog.Logger
	waitReplicas int
	waitTimeout  time.Duration

	// gate lets Close wait for the calls in flight.
	gate store.Gate
}

// scripts are the store's Lua scripts. Each is sent by EVALSHA and sent
// again in full when Redis answers NOSCRIPT, as it does after a restart.
type scripts struct {
	append, lease, ack, nack, requeue, pending, read, get *goredis.Script
	putRegistration, registrationByLabel, registrations   *goredis.Script
	compact                                               *goredis.Script
}

func newScripts() scripts {
	return scripts{
		append:              goredis.NewScript(appendLua),
		lease:               goredis.NewScript(leaseLua),
		ack:                 goredis.NewScript(ackLua),
		nack:                goredis.NewScript(nackLua),
		requeue:             goredis.NewScript(requeueLua),
		pending:             goredis.NewScript(pendingLua),
		read:                goredis.NewScript(readLua),
		get:                 goredis.NewScript(getLua),
		putRegistration:     goredis.NewScript(putRegistrationLua),
		registrationByLabel: goredis.NewScript(registrationByLabelLua),
		registrations:       goredis.NewScript(registrationsLua),
		compact:             goredis.NewScript(compactLua),
	}
}

// Open connects to the Redis at rawURL (redis://, rediss:// or unix://, as
// go-redis parses them) and checks that it answers, so that a wrong address
// or password fails at startup; an unreachable Redis gives an error wrapping
// store.ErrUnavailable. After Open, the store rides out Redis outages on its
// own: calls fail with store.ErrUnavailable while Redis is away and work
// again once it is back.
func Open(ctx context.Context, rawURL string, opts Options) (store.Store, error) {
	k, err := newKeys(opts.KeyPrefix)
	if err != nil {
		return nil, fmt.Errorf("open redis store: %w", err)
	}
	if opts.WaitReplicas < 0 {
		return nil, errors.New("open redis store: WaitReplicas must not be negative")
	}
	ro, err := clientOptions(rawURL)
	if err != nil {
		// The URL may hold a password: name the problem, not the URL.
		return nil, fmt.Errorf("open redis store: %w", err)
	}
	s := &redisStore{
		rdb:          goredis.NewClient(ro),
		keys:         k,
		scripts:      newScripts(),
		subScripts:   newSubscriptionScripts(),
		now:          opts.Now,
		log:          opts.Logger,
		waitReplicas: opts.WaitReplicas,
		waitTimeout:  opts.WaitTimeout,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.waitTimeout <= 0 {
		s.waitTimeout = defaultWaitTimeout
	}
	// A plain PING, not Ping: missing replicas should fail readiness, not
	// keep hookgate from starting.
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.rdb.Close()
		return nil, fail(ctx, "open redis store", err)
	}
	return s, nil
}

// clientOptions parses rawURL and fills in the settings the URL leaves out.
// defaultPoolSize is the least number of connections a store keeps to
// Redis when the URL does not say (pool_size=).
const defaultPoolSize = 128

func clientOptions(rawURL string) (*goredis.Options, error) {
	o, err := goredis.ParseURL(rawURL)
	if err != nil {
		// A *url.Error quotes the URL, password and all.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("parse redis URL: %w", err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err // ParseURL took it, so this cannot happen
	}
	q := u.Query()
	if !q.Has("dial_timeout") {
		o.DialTimeout = defaultDialTimeout
	}
	if !q.Has("read_timeout") {
		o.ReadTimeout = defaultIOTimeout
	}
	if !q.Has("write_timeout") {
		o.WriteTimeout = defaultIOTimeout
	}
	// A command whose reply was lost may have run. Retrying an append
	// blindly could store an event without a provider ID twice, so the
	// client does not retry: the call fails with ErrUnavailable and the
	// provider retries the webhook, which deduplication absorbs.
	if !q.Has("max_retries") {
		o.MaxRetries = -1
	}
	// One dial per attempt: go-redis would otherwise redial five times
	// before reporting a Redis that is down.
	o.DialerRetries = 1
	// A webhook's append waits for its fsync (appendfsync always), and Redis
	// fsyncs once per batch of the commands it has read: the more appends
	// in flight, the more share one fsync. go-redis's default pool (10 per
	// CPU) caps that batch well below the concurrent webhooks a gateway
	// sees.
	if !q.Has("pool_size") {
		o.PoolSize = max(o.PoolSize, defaultPoolSize)
	}
	// Let the caller's deadline bound each call, not only the timeouts.
	o.ContextTimeoutEnabled = true
	if o.ClientName == "" {
		o.ClientName = clientName
	}
	return o, nil
}

// Close waits for calls in flight and closes the connections. Calls after
// Close fail with store.ErrUnavailable; closing twice is not an error.
func (s *redisStore) Close() error {
	if !s.gate.Close() {
		return nil
	}
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("close redis store: %w", err)
	}
	return nil
}

// Ping writes a key, so that it fails not only when Redis is unreachable
// but also when Redis refuses writes (a read-only replica after failover,
// maxmemory reached, a failed save, too few replicas), and waits for
// replicas as every write does.
func (s *redisStore) Ping(ctx context.Context) error {
	const what = "ping redis store"
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	err := s.write(ctx, func(c goredis.Cmdable) error {
		return c.Set(ctx, s.keys.global(keyPing), s.now().UTC().Format(time.RFC3339Nano), 0).Err()
	})
	if err != nil {
		return fail(ctx, what, err)
	}
	return nil
}

// write runs fn, which changes data through c. With WaitReplicas set, fn
// gets one connection of its own and write then waits on it (WAIT covers
// the writes made on the connection that sends it) until enough replicas
// have the change. An error from fn is returned as is.
func (s *redisStore) write(ctx context.Context, fn func(c goredis.Cmdable) error) error {
	if s.waitReplicas <= 0 {
		return fn(s.rdb)
	}
	conn := s.rdb.Conn()
	defer conn.Close()
	if err := fn(conn); err != nil {
		return err
	}
	n, err := conn.Wait(ctx, s.waitReplicas, s.waitTimeout).Result()
	if err != nil {
		return fmt.Errorf("wait for replicas: %w", err)
	}
	if int(n) < s.waitReplicas {
		return fmt.Errorf("%w: written on the primary but acknowledged by %d of %d replicas within %v",
			store.ErrUnavailable, n, s.waitReplicas, s.waitTimeout)
	}
	return nil
}

// run runs a script against the keys of principal.
func (s *redisStore) run(ctx context.Context, c goredis.Scripter, sc *goredis.Script, principal string, args ...any) *goredis.Cmd {
	return sc.Run(ctx, c, []string{s.keys.log(principal)}, args...)
}

// nowMS is the clock in Unix milliseconds, never negative.
func (s *redisStore) nowMS() int64 {
	return max(s.now().UnixMilli(), 0)
}
