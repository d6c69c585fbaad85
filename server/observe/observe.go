// Package observe turns what hookgate does into the numbers operators and
// agents watch: Prometheus metrics at /metrics, and per-registration stats
// over a recent window (the get_stats tool and GET /v1/stats). Above all it
// answers four questions per registration: how late events reach us
// (delivery latency), how long agents take to act on them (processing
// latency), how many are dropped (dead-lettered, or deleted by retention
// while still unacked), and how often agents succeed (acks against nacks
// and lease expiries).
//
// Stats live in this process's memory: behind several replicas each
// reports what it saw.
package observe

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
)

// Store is what the observer reads: an event's label when an ack or nack
// names an event this process did not lease, and the registrations,
// pending counts and oldest pending events that stats and metrics report. store.Store satisfies it.
type Store interface {
	Get(ctx context.Context, principal string, id store.ID) (store.Event, error)
	Pending(ctx context.Context, principal, label string) (int, error)
	ReadPending(ctx context.Context, principal string, q store.Query) ([]store.Event, error)
	Registrations(ctx context.Context, principal string) ([]store.Registration, error)
}

// Options configures an Observer.
type Options struct {
	Store Store
	// Registerer receives the metrics; nil means metrics are off: none are
	// kept or exported, and the request paths do no metric work (stats
	// still work).
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Observer implements bridge.Observer. It also tracks the leases it saw
// handed out, because a lease that runs out tells nobody: it is counted as
// expired when it is found past its time without an ack.
type Observer struct {
	store   Store
	now     func() time.Time
	metrics recorder // nopMetrics when metrics are off

	mu      sync.Mutex
	windows map[regKey]*window
	leases  map[string]map[store.ID]lease // by principal
	swept   time.Time
}

// regKey names a registration by what a principal calls it.
type regKey struct{ principal, label string }

type lease struct {
	label string
	until time.Time
}

// sweepEvery bounds how often leases are scanned for expiry on the hot path.
const sweepEvery = time.Second

// New returns an Observer.
func New(opts Options) *Observer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	o := &Observer{
		store:   opts.Store,
		now:     opts.Now,
		metrics: nopMetrics{},
		windows: make(map[regKey]*window),
		leases:  make(map[string]map[store.ID]lease),
	}
	if opts.Registerer != nil {
		o.metrics = newPromMetrics(opts.Registerer, func() { o.sweep(true) })
		if opts.Store != nil {
			opts.Registerer.MustRegister(newQueueCollector(o))
		}
	}
	return o
}

// window returns the counts of a registration, creating them on first use.
func (o *Observer) window(k regKey) *window {
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.windows[k]
	if !ok {
		w = &window{}
		o.windows[k] = w
	}
	return w
}

// Webhook implements bridge.Observer.
func (o *Observer) Webhook(r bridge.WebhookReport) {
	o.metrics.ingress(r)
	if r.Principal == "" {
		return // unknown registration: nothing to attribute it to
	}
	o.window(regKey{r.Principal, r.Label}).record(r.ReceivedAt, func(c *counts) {
		switch r.Outcome {
		case bridge.OutcomeAccepted:
			c.Accepted++
			if !r.EventTime.IsZero() {
				c.delivery[latencyBucket(r.ReceivedAt.Sub(r.EventTime))]++
			}
		case bridge.OutcomeDuplicate:
			c.Duplicates++
		case bridge.OutcomeBadSignature:
			c.BadSignatures++
		case bridge.OutcomeStale:
			c.Stale++
		case bridge.OutcomeTooLarge:
			c.TooLarge++
		}
	})
}

// Leased implements bridge.Observer. An event leased again while this
// process still holds its previous lease (not yet swept) had that lease run
// out without an ack, or the store would not have handed it out again: it
// counts as expired before the new lease replaces it.
func (o *Observer) Leased(principal string, events []store.Event, until time.Time) {
	now := o.now()
	var expired []expiry
	o.mu.Lock()
	held := o.leases[principal]
	if held == nil {
		held = make(map[store.ID]lease)
		o.leases[principal] = held
	}
	for _, e := range events {
		if l, ok := held[e.ID]; ok {
			expired = append(expired, expiry{regKey{principal, l.label}, earliest(l.until, now)})
		}
		held[e.ID] = lease{label: e.Label, until: until}
	}
	o.mu.Unlock()
	o.expire(expired)
	o.sweep(false)
}

// DeadLettered implements bridge.Observer: events the store moved to the
// dead-letter list when their last lease ran out, found by a later lease.
func (o *Observer) DeadLettered(d store.Dropped) {
	if d.Events <= 0 {
		return
	}
	o.metrics.deadLettered(d.Principal, d.Label, d.Events)
	o.window(regKey{d.Principal, d.Label}).record(o.now(), func(c *counts) { c.DeadLettered += d.Events })
}

// Compacted reports a store compaction: the events it deleted while they
// were still pending are drops, since no agent acked them and none ever
// will.
func (o *Observer) Compacted(res store.CompactResult) {
	now := o.now()
	for _, d := range res.Unacked {
		if d.Events <= 0 {
			continue
		}
		o.metrics.expiredUnacked(d.Principal, d.Label, d.Events)
		o.window(regKey{d.Principal, d.Label}).record(now, func(c *counts) { c.ExpiredUnacked += d.Events })
	}
}

// Acked implements bridge.Observer. Each newly acked event counts once, with
// its processing latency: from the commit time its ID carries to now.
func (o *Observer) Acked(principal string, ids []store.ID, newly int) {
	now := o.now()
	o.sweep(false)
	labels, untracked := o.release(principal, ids)
	// Acks of events never leased here (push clients, another replica):
	// count them only when every one named was newly acked, since the
	// store does not say which ones were.
	if len(untracked) > 0 && newly-len(labels) == len(untracked) {
		for _, id := range untracked {
			if e, err := o.getEvent(principal, id); err == nil {
				labels[id] = e.Label
			}
		}
	}
	for id, label := range labels {
		took := now.Sub(time.UnixMilli(int64(id.MS)))
		o.metrics.acked(principal, label, took)
		o.window(regKey{principal, label}).record(now, func(c *counts) {
			c.Acked++
			c.processing[latencyBucket(took)]++
		})
	}
}

// Nacked implements bridge.Observer.
func (o *Observer) Nacked(principal string, id store.ID, dead bool) {
	now := o.now()
	labels, untracked := o.release(principal, []store.ID{id})
	label, ok := labels[id]
	if !ok && len(untracked) == 1 {
		e, err := o.getEvent(principal, id)
		if err != nil {
			return
		}
		label = e.Label
	}
	o.metrics.nacked(principal, label)
	if dead {
		o.metrics.deadLettered(principal, label, 1)
	}
	o.window(regKey{principal, label}).record(now, func(c *counts) {
		c.Nacked++
		if dead {
			c.DeadLettered++
		}
	})
}

// release forgets the leases of ids, returning the labels of those it held
// and the IDs it did not.
func (o *Observer) release(principal string, ids []store.ID) (map[store.ID]string, []store.ID) {
	labels := make(map[store.ID]string, len(ids))
	var untracked []store.ID
	o.mu.Lock()
	defer o.mu.Unlock()
	held := o.leases[principal]
	for _, id := range ids {
		if l, ok := held[id]; ok {
			labels[id] = l.label
			delete(held, id)
		} else {
			untracked = append(untracked, id)
		}
	}
	return labels, untracked
}

func (o *Observer) getEvent(principal string, id store.ID) (store.Event, error) {
	if o.store == nil {
		return store.Event{}, store.ErrNotFound
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return o.store.Get(ctx, principal, id)
}

// expiry is a lease that ran out without an ack, at the time it did.
type expiry struct {
	k  regKey
	at time.Time
}

// sweep counts the leases that ran out without an ack as expired. Unless
// forced it runs at most once per sweepEvery, to keep the hot path cheap.
func (o *Observer) sweep(force bool) {
	now := o.now()
	var expired []expiry
	o.mu.Lock()
	if !force && now.Sub(o.swept) < sweepEvery {
		o.mu.Unlock()
		return
	}
	o.swept = now
	for principal, held := range o.leases {
		for id, l := range held {
			if !l.until.After(now) {
				expired = append(expired, expiry{regKey{principal, l.label}, l.until})
				delete(held, id)
			}
		}
	}
	o.mu.Unlock()
	o.expire(expired)
}

// expire counts the expiries, taken out of o.leases by the caller.
func (o *Observer) expire(expired []expiry) {
	for _, e := range expired {
		o.metrics.leaseExpired(e.k.principal, e.k.label)
		o.window(e.k).record(e.at, func(c *counts) { c.LeaseExpired++ })
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
