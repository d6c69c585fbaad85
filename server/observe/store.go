package observe

import (
	"context"
	"errors"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// InstrumentStore wraps s so the latency of the operations on hookgate's hot
// paths (ingress, polling, push reads, auth) is measured by operation and
// result. Other operations pass through untimed. Without metrics it returns
// s itself: there is nothing to measure for.
func (o *Observer) InstrumentStore(s store.Store) store.Store {
	if _, off := o.metrics.(nopMetrics); off {
		return s
	}
	return &timedStore{Store: s, m: o.metrics}
}

type timedStore struct {
	store.Store
	m recorder
}

// timed runs f and records how long it took under op and its result class.
func timed[T any](m recorder, op string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		result = "not_found"
	default:
		result = "error"
	}
	m.storeOp(op, result, time.Since(start))
	return v, err
}

func (t *timedStore) Append(ctx context.Context, e store.NewEvent) (store.AppendResult, error) {
	return timed(t.m, "append", func() (store.AppendResult, error) { return t.Store.Append(ctx, e) })
}

func (t *timedStore) Read(ctx context.Context, principal string, q store.Query) ([]store.Event, error) {
	return timed(t.m, "read", func() ([]store.Event, error) { return t.Store.Read(ctx, principal, q) })
}

func (t *timedStore) ReadPending(ctx context.Context, principal string, q store.Query) ([]store.Event, error) {
	return timed(t.m, "read_pending", func() ([]store.Event, error) { return t.Store.ReadPending(ctx, principal, q) })
}

func (t *timedStore) Lease(ctx context.Context, principal string, q store.LeaseQuery) (store.LeaseResult, error) {
	return timed(t.m, "lease", func() (store.LeaseResult, error) { return t.Store.Lease(ctx, principal, q) })
}

func (t *timedStore) Ack(ctx context.Context, principal string, ids []store.ID) (int, error) {
	return timed(t.m, "ack", func() (int, error) { return t.Store.Ack(ctx, principal, ids) })
}

func (t *timedStore) Nack(ctx context.Context, principal string, id store.ID, delay time.Duration, reason string) (bool, error) {
	return timed(t.m, "nack", func() (bool, error) { return t.Store.Nack(ctx, principal, id, delay, reason) })
}

func (t *timedStore) Registration(ctx context.Context, id string) (store.Registration, error) {
	return timed(t.m, "registration", func() (store.Registration, error) { return t.Store.Registration(ctx, id) })
}

func (t *timedStore) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	return timed(t.m, "token", func() (store.Token, error) { return t.Store.TokenByHash(ctx, hash) })
}
