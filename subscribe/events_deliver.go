package subscribe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// maxWebhookBody is the largest body POSTed to a callback (ChatGPT's cap);
// a bigger occurrence is sent without its payload.
const maxWebhookBody = 256 << 10

// maxCallbackResponse is how much of a callback's answer is read: enough
// for a challenge echo, and a connection can be reused after it.
const maxCallbackResponse = 64 << 10

// aliveCheckEvery is how often an idle worker checks that its event type
// still exists.
const aliveCheckEvery = 30 * time.Second

// A busy worker stores its delivery cursor after cursorSaveEvents events
// or cursorSaveEvery, whichever comes first, and whenever it has caught
// up or stops. Waiting for a durable write after every event would hold
// each delivery to the store's commit latency (it halved the delivery
// rate and let a backlog build at 1,000 events/s); this bounds what a
// crash repeats to the last few dozen events (with the same webhook-ids,
// which receivers deduplicate), while a graceful restart still repeats
// nothing.
const (
	cursorSaveEvents = 32
	cursorSaveEvery  = 100 * time.Millisecond
)

// errOversized marks an occurrence that cannot be made to fit in
// maxWebhookBody.
var errOversized = errors.New("occurrence too large for a webhook body")

// errSubscriptionEnded stops a worker whose subscription was unsubscribed,
// expired or terminated.
var errSubscriptionEnded = errors.New("webhook subscription ended")

// run delivers the subscription's occurrences one at a time, in log order,
// from its cursor, until ctx ends or the subscription does. The cursor
// moves past every event delivered (2xx), abandoned (410, 413, retries
// exhausted) or filtered out, and is stored every cursorSaveEvery, when
// the worker has caught up, and when it stops, so a restart resumes after
// the last one: a graceful restart delivers nothing twice, and a crash
// repeats at most the last interval's events, with the same webhook-ids,
// which receivers deduplicate on.
func (s *webhookSub) run(ctx context.Context) {
	defer close(s.done)
	defer s.releaseOnStop()
	defer s.saveCursor(ctx, true)
	x := s.w.x
	for ctx.Err() == nil {
		s.mu.Lock()
		f := &Follower{Log: claimChecked{x.opts.Log, s}, Wake: x.opts.Wake, Principal: s.principal, Label: s.rec.Name, After: s.cursor, Heartbeat: aliveCheckEvery}
		s.mu.Unlock()
		f.Idle = func() error { return s.checkAlive(ctx) }
		f.CaughtUp = func() error { s.saveCursor(ctx, true); return nil }
		err := f.Run(ctx, func(e store.Event) error { return s.deliver(ctx, e) })
		if ctx.Err() != nil || errors.Is(err, errSubscriptionEnded) {
			return
		}
		x.opts.Logger.Warn("events: webhook delivery paused", "principal", s.principal, "id", s.id, "err", err)
		select {
		case <-time.After(retryAfterStoreError):
		case <-ctx.Done():
		}
	}
}

// deliver sends one event if it matches, and moves the cursor past it.
func (s *webhookSub) deliver(ctx context.Context, e store.Event) error {
	if err := ctx.Err(); err != nil {
		return err // stopping: never start another event
	}
	if !s.filter.match(e) {
		s.mu.Lock()
		s.cursor = e.ID
		s.mu.Unlock()
		s.saveCursor(ctx, false)
		return nil
	}
	if err := s.checkAlive(ctx); err != nil {
		return err
	}
	if err := s.checkClaim(ctx); err != nil {
		return err
	}
	body, msgID, err := webhookBody(e)
	switch {
	case errors.Is(err, errOversized):
		// Cannot happen with the store's bounds; if it did, retrying
		// would stall the subscription for good.
		x := s.w.x
		x.opts.Logger.Warn("events: event too large for a webhook, skipped", "principal", s.principal, "id", s.id, "event", e.ID.String(), "err", err)
	case err != nil:
		return err
	default:
		if err := s.attempts(ctx, msgID, body); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return errSubscriptionEnded
	}
	s.cursor = e.ID
	s.mu.Unlock()
	s.saveCursor(ctx, false)
	return nil
}

// saveCursor stores the delivery cursor if it moved since it was last
// stored and, unless now, cursorSaveEvery has passed since then. The
// write outlives Shutdown's cancellation: the attempts it records have
// happened. Nothing is written once the subscription has ended, nor once
// another replica claimed it or it was deleted: then s stops.
func (s *webhookSub) saveCursor(ctx context.Context, now bool) {
	s.mu.Lock()
	at := s.w.x.opts.Now()
	if s.ended || s.cursor == s.savedCursor {
		s.mu.Unlock()
		return
	}
	if s.unsaved++; !now && s.unsaved < cursorSaveEvents && at.Sub(s.savedAt) < cursorSaveEvery {
		s.mu.Unlock()
		return
	}
	err := s.w.x.opts.Log.SaveSubscriptionCursor(context.WithoutCancel(ctx), s.principal, s.id, s.w.owner, s.cursor)
	if err == nil {
		s.savedCursor, s.savedAt, s.unsaved, s.recheck = s.cursor, at, 0, false
	}
	s.mu.Unlock()
	switch {
	case ownerCheck(err):
		s.w.drop(s, err.Error())
	case err != nil:
		s.w.x.opts.Logger.Warn("events: save delivery cursor", "principal", s.principal, "id", s.id, "err", err)
	}
}

// claimChecked reads the log for s's worker and has the first POST of
// each batch read check that s is still this replica's to deliver
// (checkClaim): whatever was appended after an unsubscribe or a takeover
// on another replica is read after it, so it is never sent from here.
type claimChecked struct {
	Reader
	s *webhookSub
}

func (r claimChecked) Read(ctx context.Context, principal string, q store.Query) ([]store.Event, error) {
	events, err := r.Reader.Read(ctx, principal, q)
	if len(events) > 0 {
		r.s.mu.Lock()
		r.s.recheck = true
		r.s.mu.Unlock()
	}
	return events, err
}

// checkClaim, before the first POST of a batch read from the log, checks
// that this replica still delivers s: the subscription may have been
// deleted, or claimed, on another replica meanwhile. It returns
// errSubscriptionEnded if not.
func (s *webhookSub) checkClaim(ctx context.Context) error {
	s.mu.Lock()
	recheck, cursor := s.recheck, s.savedCursor
	s.mu.Unlock()
	if !recheck {
		return nil
	}
	err := s.w.x.opts.Log.SaveSubscriptionCursor(ctx, s.principal, s.id, s.w.owner, cursor)
	switch {
	case ownerCheck(err):
		s.w.drop(s, err.Error())
		return errSubscriptionEnded
	case err != nil:
		return fmt.Errorf("check subscription claim: %w", err)
	}
	s.mu.Lock()
	s.recheck = false
	s.mu.Unlock()
	return nil
}

// webhookBody is the POST body of an occurrence, at most maxWebhookBody
// bytes, and its webhook-id: the occurrence's eventId, the same on every
// attempt.
func webhookBody(e store.Event) ([]byte, string, error) {
	o, err := newOccurrence(e)
	if err != nil {
		return nil, "", err
	}
	cursor := e.ID.String()
	o.Cursor = &cursor
	body, err := json.Marshal(o)
	if err != nil {
		return nil, "", fmt.Errorf("encode occurrence %s: %w", e.ID, err)
	}
	// Too big: first without the payload; if still too big, also without
	// the provider's type, the one other field read from the provider's
	// request (up to the ingress limit). What is left is bounded (labels,
	// provider names and provider event IDs are short), so every event
	// gets a POST, and the client reads what was left out by resource URI.
	for _, dropType := range []bool{false, true} {
		if len(body) <= maxWebhookBody {
			break
		}
		if o, err = withoutPayload(o, e, dropType); err != nil {
			return nil, "", err
		}
		if body, err = json.Marshal(o); err != nil {
			return nil, "", fmt.Errorf("encode occurrence %s: %w", e.ID, err)
		}
	}
	if len(body) > maxWebhookBody {
		return nil, "", fmt.Errorf("%w: occurrence %s is %d bytes without its payload", errOversized, e.ID, len(body))
	}
	return body, o.EventID, nil
}

// attempts POSTs body until the callback takes it, refuses it for good
// (410, 413), or MaxAttempts have failed, waiting RetryDelay, then five
// times longer each time, between attempts. Every attempt has a fresh
// timestamp and signature over the same bytes. It returns nil once the
// event is settled, an error only when it stopped first (ctx, expiry).
func (s *webhookSub) attempts(ctx context.Context, msgID string, body []byte) error {
	x := s.w.x
	delay := x.opts.RetryDelay
	for attempt := 1; ; attempt++ {
		status, err := s.post(ctx, msgID, body)
		s.noteAttempt(status, err)
		switch {
		case err == nil && status/100 == 2:
			x.opts.Metrics.CallbackDelivered(CallbackOK)
			return nil
		case err == nil && (status == http.StatusGone || status == http.StatusRequestEntityTooLarge):
			x.opts.Metrics.CallbackDelivered(CallbackRefused)
			x.opts.Logger.Info("events: callback refused an event", "principal", s.principal, "id", s.id, "event", msgID, "status", status)
			return nil
		case attempt >= x.opts.MaxAttempts:
			x.opts.Metrics.CallbackDelivered(CallbackAbandoned)
			x.opts.Logger.Warn("events: event abandoned after retries", "principal", s.principal, "id", s.id, "event", msgID, "attempts", attempt)
			return nil
		}
		x.opts.Metrics.CallbackDelivered(CallbackRetry)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
		delay *= 5
	}
}

// post makes one signed delivery attempt. It runs to completion even when
// ctx is cancelled (bounded by CallbackTimeout), so that a delivery the
// callback accepts during Shutdown is also recorded.
func (s *webhookSub) post(ctx context.Context, msgID string, body []byte) (int, error) {
	x := s.w.x
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.opts.CallbackTimeout)
	defer cancel()
	s.mu.Lock()
	url := s.rec.URL
	s.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build delivery: %w", err)
	}
	signedHeaders(req.Header, msgID, x.opts.Now(), body, s.keys())
	req.Header.Set("X-MCP-Subscription-Id", s.id)
	resp, err := x.callback.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCallbackResponse))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// noteAttempt keeps the outcome for deliveryStatus: a category, never what
// the endpoint sent.
func (s *webhookSub) noteAttempt(status int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.lastError = classify(err)
	case status/100 == 2:
		s.lastDelivery, s.lastError = s.w.x.opts.Now(), ""
	case status/100 == 5:
		s.lastError = reasonHTTP5xx
	default:
		s.lastError = reasonHTTP4xx
	}
}

// checkAlive ends the subscription when its event type is gone: the
// registration was deleted (or deleted and its label reused). Under the
// SEP profile the callback is told with a terminated envelope; ChatGPT
// does not support one, so there delivery just stops, and its next
// refresh gets NotFound.
func (s *webhookSub) checkAlive(ctx context.Context) error {
	s.mu.Lock()
	name, regID := s.rec.Name, s.rec.RegistrationID
	s.mu.Unlock()
	if gone, err := s.w.x.eventGone(ctx, s.principal, name, regID); err != nil || !gone {
		return err
	}
	if s.w.x.opts.Profile == ProfileSEP {
		s.sendTerminated(ctx, s.w.x.errs.eventNotFound(name))
	}
	if s.end() {
		s.w.forget(s)
		if err := s.w.x.opts.Log.DeleteSubscription(context.WithoutCancel(ctx), s.principal, s.id); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.w.x.opts.Logger.Warn("events: delete terminated subscription", "principal", s.principal, "id", s.id, "err", err)
		}
	}
	return errSubscriptionEnded
}

// sendTerminated makes one attempt at a terminated control envelope.
func (s *webhookSub) sendTerminated(ctx context.Context, cause error) {
	body, err := json.Marshal(map[string]any{"type": "terminated", "error": cause})
	if err != nil {
		return
	}
	_, _ = s.post(ctx, "msg_terminated_"+randomToken(), body)
}
