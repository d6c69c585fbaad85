package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// subscriptionKey sorts a principal's subscriptions together. Principals
// never contain NUL (tokens refuse such names).
func subscriptionKey(principal, id string) []byte {
	return []byte(principal + "\x00" + id)
}

// PutSubscription implements store.Store.
func (s *boltStore) PutSubscription(ctx context.Context, sub store.Subscription) error {
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("put subscription %s: %w", sub.ID, err)
	}
	defer s.gate.Leave()
	if sub.ID == "" || sub.Principal == "" || strings.Contains(sub.Principal, "\x00") {
		return fmt.Errorf("put subscription %q: id and principal are required", sub.ID)
	}
	b, err := json.Marshal(sub)
	if err != nil {
		return fmt.Errorf("put subscription %s: %w", sub.ID, err)
	}
	err = s.committer.do(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketSubscriptions)).Put(subscriptionKey(sub.Principal, sub.ID), b)
	})
	if err != nil {
		return fmt.Errorf("put subscription %s: %w", sub.ID, err)
	}
	return nil
}

// DeleteSubscription implements store.Store.
func (s *boltStore) DeleteSubscription(ctx context.Context, principal, id string) error {
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	defer s.gate.Leave()
	err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSubscriptions))
		key := subscriptionKey(principal, id)
		if b.Get(key) == nil {
			return store.ErrNotFound
		}
		return b.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	return nil
}

// Subscriptions implements store.Store.
func (s *boltStore) Subscriptions(ctx context.Context) ([]store.Subscription, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	defer s.gate.Leave()
	subs := []store.Subscription{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketSubscriptions)).ForEach(func(_, v []byte) error {
			var sub store.Subscription
			if err := json.Unmarshal(v, &sub); err != nil {
				return errors.Join(errCorrupt, fmt.Errorf("subscription: %w", err))
			}
			subs = append(subs, sub)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return subs, nil
}
