// Package clients is the Go client library of hookgate: what a program
// uses to receive the events a hookgate gateway stores, without importing
// any of the server.
//
// A program writes one Handler and runs it with a Driver; every driver
// takes the same Config and Handler, so moving from polling to push is a
// change of constructor:
//
//   - NewToolPoller: the MCP tools poll_events (or check_pending_events)
//     and ack_event / nack_event, against any server of that pattern;
//   - NewSubscriber: MCP 2025 resources/subscribe on the session's GET
//     stream, catching up with resources/read after every reconnect;
//   - NewListener: MCP 2026-07-28 subscriptions/listen, re-listening when
//     the stream is cut (which the SDK does not notice);
//   - NewEventsPoller, NewEventsStream: the MCP Events extension;
//   - NewSSE, NewWebSocket: GET /v1/stream and GET /v1/ws, for programs
//     that do not speak MCP (the WebSocket one acks on the socket).
//
// For all of them the handler runs at least once per event, and an event
// is recorded in the Checkpoint and acked only after the handler returned
// nil. A failed handler is retried with backoff, the other events of its
// label waiting meanwhile so each label stays in order.
//
// Replay, ReadLog and WebhookSender are the logic of hookgate replay;
// StreamSSE that of hookgate tail.
package clients

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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

// decodeEvent parses one event's JSON and keeps it as Raw. The ID may also
// be spelled eventId, as some servers of the three-tool pattern do.
func decodeEvent(data []byte) (Event, error) {
	var e struct {
		Event
		EventID string `json:"eventId"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if e.ID == "" {
		e.ID = e.EventID
	}
	if e.ID == "" {
		return Event{}, fmt.Errorf("decode event: no id in %.80q", data)
	}
	e.Event.Raw = json.RawMessage(data)
	return e.Event, nil
}

// eventID is a parsed hookgate event ID, for ordering: IDs compare as the
// pair (ms, seq), never as strings.
type eventID struct {
	ms, seq uint64
	text    string
}

// parseEventID parses "<ms>-<seq>"; ok is false for anything else, such as
// the IDs of another MCP server, which then carry no order.
func parseEventID(s string) (eventID, bool) {
	msText, seqText, found := strings.Cut(s, "-")
	if !found {
		return eventID{}, false
	}
	ms, err1 := strconv.ParseUint(msText, 10, 64)
	seq, err2 := strconv.ParseUint(seqText, 10, 64)
	if err1 != nil || err2 != nil {
		return eventID{}, false
	}
	return eventID{ms: ms, seq: seq, text: s}, true
}

// compare returns -1, 0 or +1 as id is before, equal to or after other.
func (id eventID) compare(other eventID) int {
	if c := cmp.Compare(id.ms, other.ms); c != 0 {
		return c
	}
	return cmp.Compare(id.seq, other.seq)
}
