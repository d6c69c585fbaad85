package subscribe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// webhookRecord is a webhook subscription as kept in store.Subscription.Data;
// the store keeps the delivery cursor and the expiry beside it.
type webhookRecord struct {
	Name           string          `json:"name"`
	Arguments      json.RawMessage `json:"arguments"` // canonical
	URL            string          `json:"url"`
	RegistrationID string          `json:"registrationId"` // the registration the name meant when subscribed
	Secrets        []storedSecret  `json:"secrets"`        // newest first
	VerifiedAt     time.Time       `json:"verifiedAt"`
	CreatedAt      time.Time       `json:"createdAt"`
}

// storedSecret is a subscriber's signing secret; a replaced one retires
// after a grace period during which deliveries carry both signatures.
type storedSecret struct {
	Secret    string    `json:"secret"`
	RetiresAt time.Time `json:"retiresAt,omitzero"`
}

// subscriptionID derives a subscription's ID from its key: the same
// principal, URL, name and arguments give the same ID, across refreshes,
// restarts and replicas. It routes deliveries; it grants nothing.
func subscriptionID(principal, url, name, canonicalArgs string) string {
	key, _ := json.Marshal([]string{principal, url, name, canonicalArgs})
	sum := sha256.Sum256(key)
	return "sub_" + hex.EncodeToString(sum[:16])
}

// webhooks is the process's live webhook subscriptions, each with its
// delivery worker. The store is the truth; this mirrors it for the
// subscriptions this process delivers.
type webhooks struct {
	x       *Events
	mu      sync.Mutex
	subs    map[subKey]*webhookSub
	workers sync.WaitGroup
}

type subKey struct{ principal, id string }

func newWebhooks(x *Events) *webhooks {
	return &webhooks{x: x, subs: make(map[subKey]*webhookSub)}
}

// start loads every stored subscription and starts delivering it from its
// cursor; expired ones are deleted.
func (w *webhooks) start(ctx context.Context) error {
	stored, err := w.x.opts.Log.Subscriptions(ctx)
	if err != nil {
		return fmt.Errorf("load webhook subscriptions: %w", err)
	}
	now := w.x.opts.Now()
	for _, s := range stored {
		var rec webhookRecord
		if err := json.Unmarshal(s.Data, &rec); err != nil {
			w.x.opts.Logger.Warn("events: skip unreadable subscription", "principal", s.Principal, "id", s.ID, "err", err)
			continue
		}
		if !s.ExpiresAt.After(now) {
			if err := w.x.opts.Log.DeleteSubscription(ctx, s.Principal, s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete expired subscription %s: %w", s.ID, err)
			}
			continue
		}
		filter, _, err := parseArguments(rec.Arguments)
		if err != nil {
			w.x.opts.Logger.Warn("events: skip subscription with bad arguments", "principal", s.Principal, "id", s.ID, "err", err)
			continue
		}
		w.mu.Lock()
		w.launch(&webhookSub{w: w, principal: s.Principal, id: s.ID, filter: filter, rec: rec, cursor: s.Cursor, expiresAt: s.ExpiresAt})
		w.mu.Unlock()
	}
	return nil
}

// wait returns when every worker has stopped (after Shutdown).
func (w *webhooks) wait() { w.workers.Wait() }

// launch registers s and starts its worker and expiry timer. w.mu is held.
func (w *webhooks) launch(s *webhookSub) {
	ctx, cancel := context.WithCancel(w.x.stopping)
	s.cancel, s.done = cancel, make(chan struct{})
	s.mu.Lock()                                         // expire may run at once, and takes s.mu first
	s.savedCursor, s.savedAt = s.cursor, w.x.opts.Now() // launched from the store, or just stored
	s.expiry = time.AfterFunc(s.expiresAt.Sub(w.x.opts.Now()), s.expire)
	s.mu.Unlock()
	w.subs[subKey{s.principal, s.id}] = s
	w.workers.Go(func() { s.run(ctx) })
}

// lookup returns the live subscription with that key, or nil.
func (w *webhooks) lookup(principal, id string) *webhookSub {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.subs[subKey{principal, id}]
	if s == nil || s.isEnded() {
		return nil
	}
	return s
}

// count returns how many live subscriptions the principal has.
func (w *webhooks) count(principal string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for k, s := range w.subs {
		if k.principal == principal && !s.isEnded() {
			n++
		}
	}
	return n
}

// verifiedAt returns when the principal passed a challenge at url, if that
// was within VerifyFor, through any of its live subscriptions (zero if
// not): another subscription to the same endpoint needs no new challenge.
// It is never shared across principals.
func (w *webhooks) verifiedAt(principal, url string) time.Time {
	cutoff := w.x.opts.Now().Add(-w.x.opts.VerifyFor)
	var latest time.Time
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, s := range w.subs {
		if k.principal != principal {
			continue
		}
		s.mu.Lock()
		if !s.ended && s.rec.URL == url && s.rec.VerifiedAt.After(cutoff) && s.rec.VerifiedAt.After(latest) {
			latest = s.rec.VerifiedAt
		}
		s.mu.Unlock()
	}
	return latest
}

// create stores a new subscription and starts delivering it. If one with
// the key appeared meanwhile (a concurrent subscribe), that one is
// refreshed instead, so there is never more than one worker per key.
func (w *webhooks) create(ctx context.Context, s *webhookSub, secret string, expiresAt time.Time) (*webhookSub, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old := w.subs[subKey{s.principal, s.id}]; old != nil && !old.isEnded() {
		return old, false, old.refresh(ctx, secret, expiresAt)
	}
	if w.x.stopping.Err() != nil {
		return nil, false, errors.New("save subscription: shutting down")
	}
	if err := w.x.opts.Log.PutSubscription(ctx, s.stored()); err != nil {
		return nil, false, fmt.Errorf("save subscription %s: %w", s.id, err)
	}
	w.launch(s)
	return s, true, nil
}

// remove ends a subscription (unsubscribe) and deletes it from the store,
// reporting whether it existed.
func (w *webhooks) remove(ctx context.Context, principal, id string) (bool, error) {
	w.mu.Lock()
	s := w.subs[subKey{principal, id}]
	delete(w.subs, subKey{principal, id})
	w.mu.Unlock()
	live := s != nil && s.end()
	err := w.x.opts.Log.DeleteSubscription(ctx, principal, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return live, nil
	case err != nil:
		return live, fmt.Errorf("delete subscription %s: %w", id, err)
	}
	return true, nil
}

// recheck has each of the principal's subscriptions check that its event
// type still exists, instead of at its next event or idle check.
func (w *webhooks) recheck(principal string) {
	w.mu.Lock()
	var subs []*webhookSub
	for k, s := range w.subs {
		if k.principal == principal {
			subs = append(subs, s)
		}
	}
	w.mu.Unlock()
	for _, s := range subs {
		// In the background: a terminated envelope is a callback request.
		// Shutdown cancels it.
		go func() { _ = s.checkAlive(w.x.stopping) }()
	}
}

// forget drops s from the registry (after it ended on its own).
func (w *webhooks) forget(s *webhookSub) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.subs[subKey{s.principal, s.id}] == s {
		delete(w.subs, subKey{s.principal, s.id})
	}
}

// webhookSub is one live subscription: its record, its delivery cursor and
// its worker. mu guards everything below it; a store write of the record
// happens under mu, so a refresh and the worker's cursor write never
// overwrite each other, and nothing is written once it has ended.
type webhookSub struct {
	w         *webhooks
	principal string
	id        string
	filter    eventFilter
	cancel    context.CancelFunc
	done      chan struct{}

	mu           sync.Mutex
	rec          webhookRecord
	cursor       store.ID // the last event delivered, abandoned or filtered out
	savedCursor  store.ID // the cursor as last stored
	savedAt      time.Time
	unsaved      int // events the cursor moved past since it was stored
	expiresAt    time.Time
	expiry       *time.Timer
	ended        bool
	lastDelivery time.Time
	lastError    callbackReason
}

// stored is the store's form of s. s.mu is held, or s is not yet shared.
func (s *webhookSub) stored() store.Subscription {
	data, _ := json.Marshal(s.rec) // plain strings and times: cannot fail
	return store.Subscription{ID: s.id, Principal: s.principal, Data: data, Cursor: s.cursor, ExpiresAt: s.expiresAt}
}

func (s *webhookSub) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// end stops s for good, reporting whether it was still live. Its worker
// finishes an attempt in flight and then stops; nothing more is stored.
func (s *webhookSub) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.ended = true
	s.expiry.Stop()
	s.cancel()
	return true
}

// refresh applies a repeated subscribe: a new secret (the old one keeps
// signing beside it for SecretGrace), a new expiry. The delivery cursor is
// live state and stays as it is.
func (s *webhookSub) refresh(ctx context.Context, secret string, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errSubscriptionEnded
	}
	now := s.w.x.opts.Now()
	rec := s.rec
	if len(rec.Secrets) == 0 || rec.Secrets[0].Secret != secret {
		secrets := []storedSecret{{Secret: secret}}
		for _, old := range rec.Secrets {
			if old.RetiresAt.IsZero() {
				old.RetiresAt = now.Add(s.w.x.opts.SecretGrace)
			}
			if old.RetiresAt.After(now) && old.Secret != secret {
				secrets = append(secrets, old)
			}
		}
		rec.Secrets = secrets
	}
	prev, prevExpiry := s.rec, s.expiresAt
	s.rec, s.expiresAt = rec, expiresAt
	if err := s.w.x.opts.Log.PutSubscription(ctx, s.stored()); err != nil {
		s.rec, s.expiresAt = prev, prevExpiry
		return fmt.Errorf("save subscription %s: %w", s.id, err)
	}
	s.savedCursor, s.savedAt, s.unsaved = s.cursor, now, 0
	s.expiry.Reset(expiresAt.Sub(now))
	return nil
}

// expire runs when the grant runs out without a refresh: delivery stops
// and the subscription is deleted; a later subscribe recreates it.
func (s *webhookSub) expire() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	if wait := s.expiresAt.Sub(s.w.x.opts.Now()); wait > 0 {
		s.expiry.Reset(wait) // refreshed while the timer fired
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if s.end() {
		s.w.forget(s)
		ctx, cancel := context.WithTimeout(context.Background(), s.w.x.opts.CallbackTimeout)
		defer cancel()
		if err := s.w.x.opts.Log.DeleteSubscription(ctx, s.principal, s.id); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.w.x.opts.Logger.Warn("events: delete expired subscription", "principal", s.principal, "id", s.id, "err", err)
		}
	}
}

// keys returns the signing keys in force: the current secret and any
// replaced one still in its grace period.
func (s *webhookSub) keys() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.w.x.opts.Now()
	var keys [][]byte
	for _, sec := range s.rec.Secrets {
		if !sec.RetiresAt.IsZero() && !sec.RetiresAt.After(now) {
			continue
		}
		if key, err := parseSecret(sec.Secret); err == nil {
			keys = append(keys, key)
		}
	}
	return keys
}
