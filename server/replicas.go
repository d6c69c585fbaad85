package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store/redis"
)

// wakeRelay carries wake-ups between the replicas that share a store, so a
// subscriber on one replica is woken by an append taken in by another. The
// Redis store provides one (pub/sub); the embedded store, which one process
// owns, needs none.
type wakeRelay interface {
	bridge.Publisher
	// Run delivers the other replicas' wake-ups to local until ctx ends.
	Run(ctx context.Context, local redis.Waker)
	Close() error
}

// newWakeRelay returns the relay for cfg's store, or nil for the embedded
// store.
func newWakeRelay(cfg Config, logger *slog.Logger) (wakeRelay, error) {
	if cfg.Redis == "" {
		return nil, nil
	}
	r, err := redis.NewRelay(cfg.Redis, redis.RelayOptions{Logger: logger, Recheck: cfg.RedisWakeRecheck})
	if err != nil {
		return nil, fmt.Errorf("open Redis wake-up relay: %w", err)
	}
	return r, nil
}

// newWakeups returns the server's waiters, shared with the other replicas
// through relay if there is one.
func newWakeups(relay wakeRelay) *bridge.Wakeups {
	if relay == nil {
		return bridge.NewWakeups()
	}
	return bridge.NewSharedWakeups(relay)
}
