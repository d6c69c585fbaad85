package subscribe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge/store"
)

// MetaHookgateID is the _meta key of an occurrence that carries hookgate's
// event ID: the cursor, whatever the eventId.
const MetaHookgateID = "hookgate/id"

// occurrence is an EventOccurrence on the wire. eventId is the provider's
// own ID when there is one, so a client that also sees the event another
// way can deduplicate; the cursor is always hookgate's ID. It never has a
// top-level "type": a webhook body with one is a control envelope.
type occurrence struct {
	EventID   string          `json:"eventId"`
	Name      string          `json:"name"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
	Cursor    *string         `json:"cursor,omitempty"`
	Meta      map[string]any  `json:"_meta,omitempty"`
}

// newOccurrence turns a stored event into an occurrence of event type
// e.Label.
func newOccurrence(e store.Event) (occurrence, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return occurrence{}, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return occurrence{
		EventID:   occurrenceID(e),
		Name:      e.Label,
		Timestamp: e.ReceivedAt.UTC().Format(time.RFC3339Nano),
		Data:      data,
		Meta:      map[string]any{MetaHookgateID: e.ID.String()},
	}, nil
}

// occurrenceID is the providerEventId when it can serve as a webhook-id
// header value, else hookgate's ID.
func occurrenceID(e store.Event) string {
	id := e.ProviderEventID
	if id == "" || len(id) > 256 {
		return e.ID.String()
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return e.ID.String()
		}
	}
	return id
}

// withoutPayload is o with data.payload replaced by null, for occurrences
// too large for a webhook body, and with dropType data.type replaced by ""
// too; _meta says so and names the resource to read instead.
func withoutPayload(o occurrence, e store.Event, dropType bool) (occurrence, error) {
	e.Payload = json.RawMessage("null")
	if dropType {
		e.Type = ""
	}
	small, err := newOccurrence(e)
	if err != nil {
		return occurrence{}, err
	}
	small.Cursor = o.Cursor
	small.Meta["hookgate/payloadOmitted"] = true
	if dropType {
		small.Meta["hookgate/typeOmitted"] = true
	}
	small.Meta["hookgate/resourceUri"] = WebhookURI(e.Label) + "/events/" + e.ID.String()
	return small, nil
}

// resultFields are what every events/* result carries: _meta and, for a
// 2026-07-28 request, resultType. (The SDK adds resultType only to its own
// result types.)
type resultFields struct {
	mcp.ResultBase
	ResultType string `json:"resultType,omitempty"`
}

// completeFor sets resultType when the request is of the 2026-07-28 era;
// legacy results never carry it.
func (r *resultFields) completeFor(meta mcp.Meta) {
	if isModern(meta) {
		r.ResultType = "complete"
	}
}

// isModern reports whether a request's _meta names protocol 2026-07-28 or
// later.
func isModern(meta mcp.Meta) bool {
	v, _ := meta[mcp.MetaKeyProtocolVersion].(string)
	return v >= statelessProtocol
}

// statelessProtocol is the first protocol version with per-request _meta.
const statelessProtocol = "2026-07-28"

// resolve checks an event name and its arguments for the principal: the
// name must be one of its registrations (the only authorisation an event
// type needs), the arguments must match inputSchema.
func (h *eventsHandlers) resolve(ctx context.Context, name string, args json.RawMessage) (store.Registration, eventFilter, string, error) {
	if name == "" {
		return store.Registration{}, eventFilter{}, "", invalidParams("name", "required")
	}
	reg, err := h.x.opts.Log.RegistrationByLabel(ctx, h.principal, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Registration{}, eventFilter{}, "", h.x.errs.eventNotFound(name)
	}
	if err != nil {
		return store.Registration{}, eventFilter{}, "", fmt.Errorf("look up event %q: %w", name, err)
	}
	filter, canonical, err := parseArguments(args)
	if err != nil {
		return store.Registration{}, eventFilter{}, "", err
	}
	return reg, filter, canonical, nil
}

// eventGone reports whether the event type name, which resolved to
// registration regID when a subscription began, has been removed since: the
// registration was deleted, or deleted and its label reused by a new one.
// A subscription ends then; it never silently follows a different webhook.
func (x *Events) eventGone(ctx context.Context, principal, name, regID string) (bool, error) {
	reg, err := x.opts.Log.RegistrationByLabel(ctx, principal, name)
	switch {
	case err == nil:
		return regID != "" && reg.ID != regID, nil
	case errors.Is(err, store.ErrNotFound):
		return true, nil
	default:
		return false, fmt.Errorf("check event %q: %w", name, err)
	}
}

// retention is how long the log keeps a registration's events.
func retention(r store.Registration) time.Duration {
	if r.TTL > 0 {
		return r.TTL
	}
	return store.DefaultTTL
}

// startAt works out where reading starts for a request's cursor (nil: from
// now) and maxAgeMs, and whether that skips history the client asked for:
// a cursor older than the retention, or events before the maxAgeMs floor.
// Skipping is reported, never an error.
func (x *Events) startAt(ctx context.Context, principal string, reg store.Registration, cursor *string, maxAgeMs *int64) (store.ID, bool, error) {
	now := x.opts.Now()
	if cursor == nil {
		return Since(now), false, nil
	}
	after, err := store.ParseID(*cursor)
	if err != nil {
		return store.ID{}, false, invalidParams("cursor", "not a cursor this server issued")
	}
	truncated := false
	if floor := Since(now.Add(-retention(reg))); after.Compare(floor) < 0 {
		after, truncated = floor, true
	}
	if maxAgeMs != nil {
		if *maxAgeMs < 0 {
			return store.ID{}, false, invalidParams("maxAgeMs", "must not be negative")
		}
		floor := Since(now.Add(-time.Duration(*maxAgeMs) * time.Millisecond))
		if after.Compare(floor) < 0 {
			skipped, err := x.opts.Log.Read(ctx, principal, store.Query{After: after, Label: reg.Label, Limit: 1})
			if err != nil {
				return store.ID{}, false, fmt.Errorf("read %s: %w", reg.Label, err)
			}
			if len(skipped) > 0 && skipped[0].ID.Compare(floor) <= 0 {
				truncated = true
			}
			after = floor
		}
	}
	return after, truncated, nil
}
