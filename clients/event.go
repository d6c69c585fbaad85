// Package clients is the Go client library of hookgate: what a program
// uses to receive the events a hookgate gateway stores, without importing
// any of the server. Every delivery path hands over the same Event, so a
// program can move from one driver to another without changing the
// function that handles an event.
//
// StreamSSE follows GET /v1/stream, reconnecting after a cut from the last
// event handled, so a handler sees each event once and in order while the
// process runs.
package clients

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event is one stored webhook delivery, in the shape every hookgate path
// delivers (see the contract; servers may add fields, never remove them).
type Event struct {
	// ID is assigned by hookgate, "<unix-ms>-<seq>", strictly increasing
	// within the principal's stream. Treat it as opaque except for order.
	ID string `json:"id"`
	// Label names the registration (webhook endpoint) it arrived on.
	Label string `json:"label"`
	// Source is the provider scheme, such as "stripe" or "generic".
	Source string `json:"source"`
	// Type is the provider's event type, such as "issues.opened"; it may
	// be empty.
	Type string `json:"type"`
	// ProviderEventID is the provider's own ID of the event, hookgate's
	// deduplication key; it may be empty.
	ProviderEventID string    `json:"providerEventId"`
	ReceivedAt      time.Time `json:"receivedAt"`
	// Verified reports that the provider's signature checked out.
	Verified bool `json:"verified"`
	// DeliveryCount counts the polling leases of the event so far.
	DeliveryCount int `json:"deliveryCount"`
	// Payload is the provider's body: its JSON, a form body's fields as an
	// object, or {"contentType": ..., "base64": ...} for anything else.
	Payload json.RawMessage `json:"payload"`
	// Raw is the event's JSON exactly as the server sent it, including
	// fields newer than this package, for a program that passes events on
	// (hookgate tail prints it). It is empty in an Event built by hand.
	Raw json.RawMessage `json:"-"`
}

// decodeEvent parses one event's JSON and keeps it as Raw.
func decodeEvent(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if e.ID == "" {
		return Event{}, fmt.Errorf("decode event: no id in %.80q", data)
	}
	e.Raw = json.RawMessage(data)
	return e, nil
}
