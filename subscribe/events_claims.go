package subscribe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// Delivery claims. Replicas that share a store (hookgate serve --redis)
// all see every webhook subscription, but each must be delivered by one of
// them at a time, or the callback gets every event once per replica. So a
// replica delivers a subscription only while it holds the store's claim on
// it (store.Store.ClaimSubscription), which lasts ClaimTTL unless renewed:
//
//   - The replica that takes a subscribe claims the subscription at once
//     and starts delivering it.
//   - Every ClaimTTL/3 each replica's supervisor renews the claims it holds
//     (picking up a refresh another replica stored: new secrets, new
//     expiry), stops the workers whose claim was lost or whose
//     subscription was deleted, and claims and delivers the subscriptions
//     nobody holds or whose holder's claim ran out: a replica that died
//     without Shutdown is taken over within about ClaimTTL + ClaimTTL/3.
//   - A worker saves its cursor with SaveSubscriptionCursor, which writes
//     nothing unless it still holds the claim and the subscription still
//     exists, and the worker stops when either is no longer so. It also
//     checks the same before the first POST of each batch it reads from
//     the log, so nothing appended after an unsubscribe (or a takeover)
//     on another replica is sent from here; only what it had read
//     before may be.
//   - Shutdown saves each cursor and then releases the claim, so another
//     replica takes over at once.
//
// With one process (the embedded store) it claims everything at start and
// behaves as before.

// errShuttingDown refuses new work once Shutdown began.
var errShuttingDown = errors.New("events: shutting down")

// supervise runs a sweep every ClaimTTL/3 until Shutdown.
func (w *webhooks) supervise() {
	period := w.x.opts.ClaimTTL / 3
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-w.x.stopping.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(w.x.stopping, period)
		if err := w.sweep(ctx); err != nil && w.x.stopping.Err() == nil {
			w.x.opts.Logger.Warn("events: webhook subscription sweep", "err", err)
		}
		cancel()
	}
}

// sweep renews this replica's claims, then claims and starts every stored
// subscription that is free, deleting expired ones. It fails only when the
// store cannot list them.
func (w *webhooks) sweep(ctx context.Context) error {
	// Renew first, so that a slow listing cannot let claims run out.
	for _, s := range w.live() {
		if w.x.stopping.Err() != nil {
			return nil
		}
		w.renew(ctx, s)
	}
	stored, err := w.x.opts.Log.Subscriptions(ctx)
	if err != nil {
		return fmt.Errorf("load webhook subscriptions: %w", err)
	}
	now := w.x.opts.Now()
	for _, st := range stored {
		switch {
		case w.x.stopping.Err() != nil:
			return nil
		case w.lookup(st.Principal, st.ID) != nil:
			continue // ours, renewed above
		case !st.ExpiresAt.After(now):
			// Its deliverer stopped before its expiry timer fired (or is
			// about to delete it): whichever replica sees it first does.
			if err := w.x.opts.Log.DeleteSubscription(ctx, st.Principal, st.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				w.x.opts.Logger.Warn("events: delete expired subscription", "principal", st.Principal, "id", st.ID, "err", err)
			}
			continue
		case st.Owner != "" && st.Owner != w.owner && st.ClaimedUntil.After(now):
			continue // another replica delivers it
		}
		w.claimAndStart(ctx, st.Principal, st.ID)
	}
	return nil
}

// live returns the subscriptions this replica delivers.
func (w *webhooks) live() []*webhookSub {
	w.mu.Lock()
	defer w.mu.Unlock()
	subs := make([]*webhookSub, 0, len(w.subs))
	for _, s := range w.subs {
		subs = append(subs, s)
	}
	return subs
}

// renew extends s's claim and applies what another replica stored for it;
// s stops if the claim was lost or the subscription deleted. When the
// store cannot be reached s keeps going: its cursor saves will tell it if
// another replica took over meanwhile.
func (w *webhooks) renew(ctx context.Context, s *webhookSub) {
	st, ok, err := w.x.opts.Log.ClaimSubscription(ctx, s.principal, s.id, w.owner, w.x.opts.ClaimTTL)
	switch {
	case errors.Is(err, store.ErrNotFound):
		w.drop(s, "deleted")
	case err != nil:
		w.x.opts.Logger.Warn("events: renew subscription claim", "principal", s.principal, "id", s.id, "err", err)
	case !ok:
		w.drop(s, "claimed by another replica")
	default:
		s.apply(st)
	}
}

// claimAndStart claims a stored subscription and, if this replica got it,
// starts delivering it.
func (w *webhooks) claimAndStart(ctx context.Context, principal, id string) {
	st, ok, err := w.x.opts.Log.ClaimSubscription(ctx, principal, id, w.owner, w.x.opts.ClaimTTL)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && !ok:
		return // deleted meanwhile, or another replica was quicker
	case err != nil:
		w.x.opts.Logger.Warn("events: claim subscription", "principal", principal, "id", id, "err", err)
		return
	}
	if _, err := w.adopt(st); err != nil {
		// Unreadable, or shutting down: leave it to another replica.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.x.opts.CallbackTimeout)
		defer cancel()
		w.release(ctx, principal, id)
	}
}

// adopt starts delivering st, whose claim this replica has just taken,
// unless it already does; it returns the live subscription.
func (w *webhooks) adopt(st store.Subscription) (*webhookSub, error) {
	s, err := w.fromStored(st)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old := w.subs[subKey{s.principal, s.id}]; old != nil && !old.isEnded() {
		return old, nil
	}
	if w.x.stopping.Err() != nil {
		return nil, errShuttingDown
	}
	w.launch(s)
	return s, nil
}

// fromStored makes a subscription (not yet launched) from its stored form.
// An unreadable one is logged once.
func (w *webhooks) fromStored(st store.Subscription) (*webhookSub, error) {
	var rec webhookRecord
	err := json.Unmarshal(st.Data, &rec)
	var filter eventFilter
	if err == nil {
		filter, _, err = parseArguments(rec.Arguments)
	}
	if err != nil {
		w.mu.Lock()
		first := !w.bad[subKey{st.Principal, st.ID}]
		w.bad[subKey{st.Principal, st.ID}] = true
		w.mu.Unlock()
		if first {
			w.x.opts.Logger.Warn("events: skip unreadable subscription", "principal", st.Principal, "id", st.ID, "err", err)
		}
		return nil, fmt.Errorf("read subscription %s: %w", st.ID, err)
	}
	return &webhookSub{w: w, principal: st.Principal, id: st.ID, filter: filter, rec: rec, cursor: st.Cursor, expiresAt: st.ExpiresAt}, nil
}

// release gives up this replica's claim on a subscription it does not
// deliver (any more).
func (w *webhooks) release(ctx context.Context, principal, id string) {
	if _, _, err := w.x.opts.Log.ClaimSubscription(ctx, principal, id, w.owner, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		w.x.opts.Logger.Warn("events: release subscription claim", "principal", principal, "id", id, "err", err)
	}
}

// drop stops delivering s here without deleting it: it was deleted, or
// another replica delivers it now.
func (w *webhooks) drop(s *webhookSub, why string) {
	if s.end() {
		w.forget(s)
		w.x.opts.Logger.Info("events: stopped delivering subscription", "principal", s.principal, "id", s.id, "reason", why)
	}
}

// refreshStored applies a repeated subscribe to a subscription the store
// has. It starts from the stored record, which a refresh on another
// replica may have changed. If this replica delivers it, or its claim is
// free, this replica (goes on to) deliver it; otherwise only the record is
// updated, keeping the stored cursor, and the replica holding the claim
// picks the change up at its next renewal. found is false if the store has
// no live subscription with that key (or it ended meanwhile).
func (w *webhooks) refreshStored(ctx context.Context, principal, id, secret string, expiresAt time.Time) (s *webhookSub, found bool, err error) {
	st, ok, err := w.x.opts.Log.ClaimSubscription(ctx, principal, id, w.owner, w.x.opts.ClaimTTL)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("read subscription %s: %w", id, err)
	case !st.ExpiresAt.After(w.x.opts.Now()):
		// Expired: gone as far as the subscriber is concerned; a new one
		// replaces it.
		if err := w.x.opts.Log.DeleteSubscription(ctx, principal, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, false, fmt.Errorf("delete expired subscription %s: %w", id, err)
		}
		return nil, false, nil
	}
	if ok {
		if s, err = w.adopt(st); err != nil {
			w.release(ctx, principal, id)
			return nil, false, err
		}
		s.apply(st) // if it was already delivered here
	} else if s, err = w.fromStored(st); err != nil {
		return nil, false, err
	}
	switch err := s.refresh(ctx, secret, expiresAt); {
	case errors.Is(err, errSubscriptionEnded):
		return nil, false, nil // unsubscribed or expired meanwhile: a new one
	case err != nil:
		return nil, false, err
	}
	return s, true, nil
}

// apply takes what the store holds for s (written by a refresh on another
// replica): secrets and expiry. The cursor is this worker's own.
func (s *webhookSub) apply(st store.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	if cur, _ := json.Marshal(s.rec); !bytes.Equal(cur, st.Data) {
		var rec webhookRecord
		if err := json.Unmarshal(st.Data, &rec); err == nil && rec.URL == s.rec.URL {
			s.rec = rec
		}
	}
	if !st.ExpiresAt.Equal(s.expiresAt) {
		s.expiresAt = st.ExpiresAt
		s.expiry.Reset(st.ExpiresAt.Sub(s.w.x.opts.Now()))
	}
}

// releaseOnStop gives up s's claim when its worker stopped for Shutdown (not
// when s ended: then there is nothing left to hand over).
func (s *webhookSub) releaseOnStop() {
	if s.isEnded() {
		return
	}
	if s.w.supervising.Load() {
		<-s.w.superDone // no renewal may take the claim back after this
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.w.x.opts.CallbackTimeout)
	defer cancel()
	s.w.release(ctx, s.principal, s.id)
}

// ownerCheck reports whether err from a cursor save means s must stop.
func ownerCheck(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNotOwner)
}
