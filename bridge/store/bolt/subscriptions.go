package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// subscriptionKey sorts a principal's subscriptions together. Principals
// and subscription IDs never contain NUL (PutSubscription refuses them).
func subscriptionKey(principal, id string) []byte {
	return []byte(principal + "\x00" + id)
}

// claims are the delivery claims of subscriptions. Only one process can
// have a bbolt file open, so they coordinate nothing between processes and
// live in memory: a restarted process starts with none and takes every
// subscription at once, instead of waiting for its predecessor's claims to
// run out.
type claims struct {
	mu sync.Mutex
	m  map[string]claim // by subscriptionKey
}

type claim struct {
	owner string
	until time.Time
}

func (c *claims) get(key string) claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// PutSubscription implements store.Store.
func (s *boltStore) PutSubscription(ctx context.Context, sub store.Subscription) error {
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("put subscription %s: %w", sub.ID, err)
	}
	defer s.gate.Leave()
	if sub.ID == "" || sub.Principal == "" || strings.Contains(sub.Principal, "\x00") || strings.Contains(sub.ID, "\x00") {
		return fmt.Errorf("put subscription %q: id and principal are required, without NUL", sub.ID)
	}
	err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSubscriptions))
		key := subscriptionKey(sub.Principal, sub.ID)
		put := sub
		if old, found, err := decodeSubscription(b.Get(key)); err != nil {
			return err
		} else if found && old.Cursor.Compare(put.Cursor) > 0 {
			put.Cursor = old.Cursor
		}
		return putSubscription(b, key, put)
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
	key := subscriptionKey(principal, id)
	err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSubscriptions))
		if b.Get(key) == nil {
			return store.ErrNotFound
		}
		return b.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	s.claims.mu.Lock()
	delete(s.claims.m, string(key))
	s.claims.mu.Unlock()
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
		return tx.Bucket([]byte(bucketSubscriptions)).ForEach(func(k, v []byte) error {
			sub, _, err := decodeSubscription(v)
			if err != nil {
				return err
			}
			c := s.claims.get(string(k))
			sub.Owner, sub.ClaimedUntil = c.owner, c.until
			subs = append(subs, sub)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return subs, nil
}

// ClaimSubscription implements store.Store.
func (s *boltStore) ClaimSubscription(ctx context.Context, principal, id, owner string, ttl time.Duration) (store.Subscription, bool, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return store.Subscription{}, false, fmt.Errorf("claim subscription %s: %w", id, err)
	}
	defer s.gate.Leave()
	key := subscriptionKey(principal, id)
	var sub store.Subscription
	err := s.db.View(func(tx *bbolt.Tx) error {
		var found bool
		var err error
		sub, found, err = decodeSubscription(tx.Bucket([]byte(bucketSubscriptions)).Get(key))
		if err == nil && !found {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Subscription{}, false, fmt.Errorf("claim subscription %s: %w", id, err)
	}
	now := s.now()
	s.claims.mu.Lock()
	defer s.claims.mu.Unlock()
	c := s.claims.m[string(key)]
	ok := c.owner == owner || c.owner == "" || !c.until.After(now)
	switch {
	case ok && ttl <= 0:
		if c.owner == owner {
			delete(s.claims.m, string(key))
			c = claim{}
		}
		ok = false
	case ok:
		c = claim{owner: owner, until: now.Add(ttl)}
		if s.claims.m == nil {
			s.claims.m = make(map[string]claim)
		}
		s.claims.m[string(key)] = c
	}
	sub.Owner, sub.ClaimedUntil = c.owner, c.until
	return sub, ok, nil
}

// SaveSubscriptionCursor implements store.Store.
func (s *boltStore) SaveSubscriptionCursor(ctx context.Context, principal, id, owner string, cursor store.ID) error {
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("save cursor of subscription %s: %w", id, err)
	}
	defer s.gate.Leave()
	key := subscriptionKey(principal, id)
	// check reports errDone when there is nothing to write.
	check := func(b *bbolt.Bucket) (store.Subscription, error) {
		sub, found, err := decodeSubscription(b.Get(key))
		switch {
		case err != nil:
			return sub, err
		case !found:
			return sub, store.ErrNotFound
		case s.claims.get(string(key)).owner != owner:
			return sub, store.ErrNotOwner
		case sub.Cursor.Compare(cursor) >= 0:
			return sub, errDone
		}
		return sub, nil
	}
	// A read transaction first: a save that changes nothing (a worker
	// checking it still holds the claim) costs no commit.
	err := s.db.View(func(tx *bbolt.Tx) error {
		_, err := check(tx.Bucket([]byte(bucketSubscriptions)))
		return err
	})
	if err == nil {
		err = s.committer.do(ctx, func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte(bucketSubscriptions))
			sub, err := check(b)
			if err != nil {
				return err
			}
			sub.Cursor = cursor
			return putSubscription(b, key, sub)
		})
	}
	if errors.Is(err, errDone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("save cursor of subscription %s: %w", id, err)
	}
	return nil
}

// errDone stops a transaction that has nothing to write.
var errDone = errors.New("nothing to write")

// decodeSubscription decodes a stored subscription; found is false for nil.
func decodeSubscription(v []byte) (store.Subscription, bool, error) {
	var sub store.Subscription
	if v == nil {
		return sub, false, nil
	}
	if err := json.Unmarshal(v, &sub); err != nil {
		return sub, false, errors.Join(errCorrupt, fmt.Errorf("subscription: %w", err))
	}
	return sub, true, nil
}

func putSubscription(b *bbolt.Bucket, key []byte, sub store.Subscription) error {
	v, err := json.Marshal(sub)
	if err != nil {
		return err
	}
	return b.Put(key, v)
}
