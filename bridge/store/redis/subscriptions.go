package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/bridge/store"
)

// subscriptionField is a subscription's field in the global hash.
// Principals never contain NUL (tokens refuse such names).
func subscriptionField(principal, id string) string { return principal + "\x00" + id }

// PutSubscription implements store.Store. Subscriptions sit in one global
// hash because delivery workers list them all at startup.
func (s *redisStore) PutSubscription(ctx context.Context, sub store.Subscription) error {
	what := fmt.Sprintf("put subscription %q", sub.ID)
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	if sub.ID == "" || sub.Principal == "" || strings.Contains(sub.Principal, "\x00") {
		return fmt.Errorf("%s: id and principal are required", what)
	}
	b, err := json.Marshal(sub)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	err = s.write(ctx, func(c goredis.Cmdable) error {
		return c.HSet(ctx, s.keys.global(keySubscriptions), subscriptionField(sub.Principal, sub.ID), b).Err()
	})
	if err != nil {
		return fail(ctx, what, err)
	}
	return nil
}

// DeleteSubscription implements store.Store.
func (s *redisStore) DeleteSubscription(ctx context.Context, principal, id string) error {
	what := fmt.Sprintf("delete subscription %q", id)
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	err := s.write(ctx, func(c goredis.Cmdable) error {
		n, err := c.HDel(ctx, s.keys.global(keySubscriptions), subscriptionField(principal, id)).Result()
		if err == nil && n == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fail(ctx, what, err)
	}
	return nil
}

// Subscriptions implements store.Store, ordered by principal and ID.
func (s *redisStore) Subscriptions(ctx context.Context) ([]store.Subscription, error) {
	const what = "list subscriptions"
	if err := s.gate.Enter(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	all, err := s.rdb.HGetAll(ctx, s.keys.global(keySubscriptions)).Result()
	if err != nil {
		return nil, fail(ctx, what, err)
	}
	subs := make([]store.Subscription, 0, len(all))
	for _, raw := range all {
		var sub store.Subscription
		if err := json.Unmarshal([]byte(raw), &sub); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", what, errCorrupt, err)
		}
		subs = append(subs, sub)
	}
	slices.SortFunc(subs, func(a, b store.Subscription) int {
		return cmp.Or(strings.Compare(a.Principal, b.Principal), strings.Compare(a.ID, b.ID))
	})
	return subs, nil
}
