package subscribe

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// subscribeParams are events/subscribe's parameters. id is read only to
// refuse it: the server derives the ID from the key.
type subscribeParams struct {
	mcp.ParamsBase
	ID        json.RawMessage  `json:"id,omitempty"`
	Name      string           `json:"name"`
	Arguments json.RawMessage  `json:"arguments,omitempty"`
	Delivery  *webhookDelivery `json:"delivery"`
	Cursor    *string          `json:"cursor,omitempty"`
	MaxAgeMs  *int64           `json:"maxAgeMs,omitempty"`
	TTLMs     json.RawMessage  `json:"ttlMs,omitempty"` // absent, null or a number
}

// webhookDelivery is the delivery object of subscribe and unsubscribe.
type webhookDelivery struct {
	Mode   string `json:"mode,omitempty"`
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
}

// subscribeResult is events/subscribe's result.
type subscribeResult struct {
	resultFields
	ID             string          `json:"id"`
	RefreshBefore  string          `json:"refreshBefore"`
	Cursor         string          `json:"cursor"`
	Truncated      bool            `json:"truncated"`
	DeliveryStatus *deliveryStatus `json:"deliveryStatus,omitempty"`
}

// deliveryStatus reports, on a refresh, how delivery has gone: categories
// only, never what the endpoint answered.
type deliveryStatus struct {
	Active         bool    `json:"active"`
	LastDeliveryAt *string `json:"lastDeliveryAt"`
	LastError      *string `json:"lastError"`
}

// subscribe serves events/subscribe: create or refresh a webhook
// subscription. It checks in the order the extension recommends, so that
// nothing reaches the callback unless every local check passed, and
// nothing is stored unless the callback passed its challenge.
func (h *eventsHandlers) subscribe(ctx context.Context, _ *mcp.ServerSession, p *subscribeParams) (*subscribeResult, error) {
	x := h.x
	// 1. A principal: every caller has one (the endpoint requires a token).
	if h.principal == "" {
		return nil, x.errs.forbiddenError("webhook subscriptions need an authenticated principal")
	}
	// 2. Shape.
	if len(p.ID) > 0 {
		return nil, invalidParams("id", "is not an input: the server derives it from principal, delivery.url, name and arguments")
	}
	if p.Delivery == nil {
		return nil, invalidParams("delivery", "required: {mode: \"webhook\", url, secret}")
	}
	if p.Delivery.Mode != "" && p.Delivery.Mode != "webhook" {
		return nil, invalidParams("delivery.mode", "events/subscribe is for webhooks; use events/poll or events/stream for %q", p.Delivery.Mode)
	}
	ttl, err := x.grant(p.TTLMs)
	if err != nil {
		return nil, err
	}
	// 3-6. The name is one of the principal's event types, the arguments
	// fit its inputSchema. (Every type offers webhook delivery.)
	reg, filter, canonical, err := h.resolve(ctx, p.Name, p.Arguments)
	if err != nil {
		return nil, err
	}
	// 7. The secret.
	key, err := parseSecret(p.Delivery.Secret)
	if err != nil {
		return nil, invalidParams("delivery.secret", "%v", err)
	}
	// 8. The URL, and where it leads, without connecting.
	u, err := checkCallbackURL(p.Delivery.URL, x.opts.AllowLocalCallbacks)
	if err != nil {
		return nil, invalidParams("delivery.url", "%v", err)
	}
	if err := x.callback.checkReachable(ctx, u); err != nil {
		if errors.Is(err, errBlockedAddress) {
			return nil, invalidParams("delivery.url", "%v", err)
		}
		return nil, x.errs.callbackFailed(reasonConnectionRefused)
	}
	id := subscriptionID(h.principal, p.Delivery.URL, p.Name, canonical)
	now := x.opts.Now()
	expiresAt := now.Add(ttl)

	// A refresh: the store has the subscription, whichever replica created
	// it or delivers it.
	if s, found, err := x.webhooks.refreshStored(ctx, h.principal, id, p.Delivery.Secret, expiresAt); err != nil {
		return nil, err
	} else if found {
		return h.subscribed(p.Meta, s, true), nil
	}
	// 9. Quota, before any traffic to the callback, counted in the store
	// so that it holds across replicas.
	count, verifiedAt, err := x.webhooks.storedFor(ctx, h.principal, p.Delivery.URL)
	if err != nil {
		return nil, err
	}
	if count >= x.opts.MaxSubscriptions {
		return nil, x.errs.quotaExceeded(x.opts.MaxSubscriptions)
	}
	// 10. The challenge, unless this principal already passed one there.
	if verifiedAt.IsZero() {
		if reason, ok := x.challenge(ctx, u, id, key); !ok {
			return nil, x.errs.callbackFailed(reason)
		}
		verifiedAt = now
	}
	// 11. Store and start.
	after, truncated, err := x.startAt(ctx, h.principal, reg, p.Cursor, p.MaxAgeMs)
	if err != nil {
		return nil, err
	}
	s := &webhookSub{
		w: x.webhooks, principal: h.principal, id: id, filter: filter, cursor: after, expiresAt: expiresAt,
		rec: webhookRecord{
			Name: p.Name, Arguments: json.RawMessage(canonical), URL: p.Delivery.URL, RegistrationID: reg.ID,
			Secrets: []storedSecret{{Secret: p.Delivery.Secret}}, VerifiedAt: verifiedAt, CreatedAt: now,
		},
	}
	s, created, err := x.webhooks.create(ctx, s, p.Delivery.Secret, expiresAt)
	if err != nil {
		return nil, err
	}
	res := h.subscribed(p.Meta, s, !created)
	res.Truncated = created && truncated
	return res, nil
}

// subscribed is the result for a live subscription; a refresh also
// reports its delivery status.
func (h *eventsHandlers) subscribed(meta mcp.Meta, s *webhookSub, refresh bool) *subscribeResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	// refreshBefore in whole seconds, rounded down: a client that
	// refreshes by it is never late.
	res := &subscribeResult{
		ID:            s.id,
		RefreshBefore: s.expiresAt.UTC().Truncate(time.Second).Format(time.RFC3339),
		Cursor:        s.cursor.String(),
	}
	res.completeFor(meta)
	if refresh {
		st := &deliveryStatus{Active: true}
		if !s.lastDelivery.IsZero() {
			at := s.lastDelivery.UTC().Format(time.RFC3339Nano)
			st.LastDeliveryAt = &at
		}
		if s.lastError != "" {
			reason := string(s.lastError)
			st.LastError = &reason
		}
		res.DeliveryStatus = st
	}
	return res
}

// grant turns a requested ttlMs into the subscription's lifetime. There is
// no rejection path for a TTL, only clamping: omitted gets DefaultTTL, a
// number is held to [MinTTL, MaxTTL], and null (no expiry) gets MaxTTL, so
// refreshBefore is never null and no subscription outlives its client's
// interest by more than MaxTTL.
func (x *Events) grant(raw json.RawMessage) (time.Duration, error) {
	switch strings.TrimSpace(string(raw)) {
	case "":
		return x.opts.DefaultTTL, nil
	case "null":
		return x.opts.MaxTTL, nil
	}
	var ms float64
	if err := json.Unmarshal(raw, &ms); err != nil || math.IsNaN(ms) {
		return 0, invalidParams("ttlMs", "want milliseconds or null")
	}
	if ms >= float64(x.opts.MaxTTL/time.Millisecond) {
		return x.opts.MaxTTL, nil
	}
	return max(time.Duration(ms)*time.Millisecond, x.opts.MinTTL), nil
}

// unsubscribeParams are events/unsubscribe's parameters: the key, never
// the ID.
type unsubscribeParams struct {
	mcp.ParamsBase
	ID        json.RawMessage  `json:"id,omitempty"`
	Name      string           `json:"name"`
	Arguments json.RawMessage  `json:"arguments,omitempty"`
	Delivery  *webhookDelivery `json:"delivery"`
}

// unsubscribeResult is the empty result ({} or, for 2026-07-28, with
// resultType).
type unsubscribeResult struct {
	resultFields
}

// unsubscribe serves events/unsubscribe: delete the caller's subscription
// with that key and stop its deliveries and pending retries. Keys are
// derived with the caller's principal, so no call can touch another
// principal's subscription. An unknown key is {} under the ChatGPT profile
// (OpenAI asks for idempotence) and NotFound under the SEP one.
func (h *eventsHandlers) unsubscribe(ctx context.Context, _ *mcp.ServerSession, p *unsubscribeParams) (*unsubscribeResult, error) {
	x := h.x
	if h.principal == "" {
		return nil, x.errs.forbiddenError("webhook subscriptions need an authenticated principal")
	}
	if len(p.ID) > 0 {
		return nil, invalidParams("id", "is not an input: unsubscribe by name, arguments and delivery.url")
	}
	if p.Name == "" {
		return nil, invalidParams("name", "required")
	}
	if p.Delivery == nil || p.Delivery.URL == "" {
		return nil, invalidParams("delivery.url", "required")
	}
	if p.Delivery.Mode != "" && p.Delivery.Mode != "webhook" {
		return nil, invalidParams("delivery.mode", "only webhook subscriptions are unsubscribed")
	}
	args, err := decodeObject(p.Arguments)
	if err != nil {
		return nil, invalidParams("arguments", "%v", err)
	}
	canonical, err := canonicalJSON(args)
	if err != nil {
		return nil, invalidParams("arguments", "%v", err)
	}
	found, err := x.webhooks.remove(ctx, h.principal, subscriptionID(h.principal, p.Delivery.URL, p.Name, canonical))
	if err != nil {
		return nil, err
	}
	if !found && x.opts.Profile == ProfileSEP {
		return nil, x.errs.subscriptionNotFound()
	}
	res := &unsubscribeResult{}
	res.completeFor(p.Meta)
	return res, nil
}
