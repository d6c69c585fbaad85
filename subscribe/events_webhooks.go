package subscribe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
// subscriptions this process delivers: those whose claim it holds (see
// events_claims.go).
type webhooks struct {
	x       *Events
	owner   string // this replica's name in delivery claims
	mu      sync.Mutex
	subs    map[subKey]*webhookSub
	bad     map[subKey]bool // unreadable subscriptions already logged
	workers sync.WaitGroup

	// supervising is set once the supervisor runs; superDone closes when
	// it has stopped, so that no renewal follows a release at Shutdown.
	supervising atomic.Bool
	superDone   chan struct{}
}

type subKey struct{ principal, id string }

func newWebhooks(x *Events) *webhooks {
	return &webhooks{x: x, owner: "replica_" + randomToken(), subs: make(map[subKey]*webhookSub), bad: make(map[subKey]bool), superDone: make(chan struct{})}
}

// start claims and starts delivering every stored subscription no other
// replica delivers, deleting expired ones, and then keeps doing so in the
// background until Shutdown.
func (w *webhooks) start(ctx context.Context) error {
	if err := w.sweep(ctx); err != nil {
		return err
	}
	w.supervising.Store(true)
	w.workers.Go(func() {
		defer close(w.superDone)
		w.supervise()
	})
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

// storedFor returns how many unexpired subscriptions the principal has in
// the store, whichever replica delivers them, and when it last passed a
// challenge at url within VerifyFor through one of them (zero if not):
// another subscription to the same endpoint needs no new challenge. It is
// never shared across principals.
func (w *webhooks) storedFor(ctx context.Context, principal, url string) (int, time.Time, error) {
	stored, err := w.x.opts.Log.Subscriptions(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("list webhook subscriptions: %w", err)
	}
	now := w.x.opts.Now()
	cutoff := now.Add(-w.x.opts.VerifyFor)
	n, latest := 0, time.Time{}
	for _, st := range stored {
		if st.Principal != principal || !st.ExpiresAt.After(now) {
			continue
		}
		n++
		var rec webhookRecord
		if json.Unmarshal(st.Data, &rec) == nil && rec.URL == url && rec.VerifiedAt.After(cutoff) && rec.VerifiedAt.After(latest) {
			latest = rec.VerifiedAt
		}
	}
	return n, latest, nil
}

// create stores a new subscription, claims it and starts delivering it.
// If one with the key appeared meanwhile in this process (a concurrent
// subscribe), that one is refreshed instead, so there is never more than
// one worker per key; if another replica claimed it first, that replica
// delivers it and s is returned unlaunched.
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
	st, ok, err := w.x.opts.Log.ClaimSubscription(ctx, s.principal, s.id, w.owner, w.x.opts.ClaimTTL)
	switch {
	case err != nil:
		// Stored: a replica's supervisor will claim it.
		w.x.opts.Logger.Warn("events: claim new subscription", "principal", s.principal, "id", s.id, "err", err)
	case ok:
		s.cursor = st.Cursor // the later one, if a concurrent subscribe elsewhere got further
		w.launch(s)
	}
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
	unsaved      int  // events the cursor moved past since it was stored
	recheck      bool // check the claim before the next POST (a batch was read)
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
	if s.expiry != nil { // delivered here, not only stored
		s.expiry.Reset(expiresAt.Sub(now))
	}
	return nil
}

// expire runs when the grant runs out without a refresh: delivery stops
// and the subscription is deleted; a later subscribe recreates it. A
// refresh taken by another replica shows in the store, which is asked
// first.
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
	w := s.w
	ctx, cancel := context.WithTimeout(context.Background(), w.x.opts.CallbackTimeout)
	defer cancel()
	st, ok, err := w.x.opts.Log.ClaimSubscription(ctx, s.principal, s.id, w.owner, w.x.opts.ClaimTTL)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && !ok:
		w.drop(s, "deleted or delivered elsewhere")
		return
	case err != nil:
		w.x.opts.Logger.Warn("events: check expired subscription", "principal", s.principal, "id", s.id, "err", err)
		s.mu.Lock()
		s.expiry.Reset(time.Second)
		s.mu.Unlock()
		return
	case st.ExpiresAt.After(w.x.opts.Now()):
		s.apply(st) // refreshed on another replica
		return
	}
	if s.end() {
		w.forget(s)
		if err := w.x.opts.Log.DeleteSubscription(ctx, s.principal, s.id); err != nil && !errors.Is(err, store.ErrNotFound) {
			w.x.opts.Logger.Warn("events: delete expired subscription", "principal", s.principal, "id", s.id, "err", err)
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
