// Package store defines hookgate's durable event log: the one source of truth
// that every delivery path (tools, resource subscriptions, MCP Events, SSE,
// WebSocket, replay) reads with a cursor.
//
// A backend lives in a sub-package (bolt for one machine, redis for many) and
// is used only through the Store interface, so its types never leak to callers.
// Every backend must pass the conformance suite in package storetest.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Errors every backend returns (wrapped) so callers can tell outcomes apart
// with errors.Is.
var (
	// ErrNotFound: no such registration, token or event for this principal.
	ErrNotFound = errors.New("not found")
	// ErrGone: the registration existed and was deleted.
	ErrGone = errors.New("registration deleted")
	// ErrBadID: text that is not an event ID.
	ErrBadID = errors.New("malformed event id")
	// ErrUnavailable: the backend cannot be reached or written now; the
	// caller should retry later (ingress answers 503).
	ErrUnavailable = errors.New("store unavailable")
	// ErrNotOwner: the caller does not hold the subscription's delivery
	// claim (another replica took it over, or it was released).
	ErrNotOwner = errors.New("subscription claimed by another owner")
)

// Event is one stored webhook delivery, in the JSON shape every path hands to
// agents (see the contract: fields may be added, none removed).
type Event struct {
	ID              ID              `json:"id"`
	Label           string          `json:"label"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	ProviderEventID string          `json:"providerEventId"`
	ReceivedAt      time.Time       `json:"receivedAt"`
	Verified        bool            `json:"verified"`
	DeliveryCount   int             `json:"deliveryCount"`
	Payload         json.RawMessage `json:"payload"`
}

// NewEvent is what ingress hands to Append: an event before the log assigns
// its ID.
type NewEvent struct {
	Principal       string
	RegistrationID  string
	Label           string
	Source          string
	Type            string
	ProviderEventID string // dedup key within the registration; "" disables dedup
	ReceivedAt      time.Time
	Verified        bool
	Payload         json.RawMessage // must be valid JSON
}

// AppendResult reports what Append did.
type AppendResult struct {
	ID        ID   // the new event's ID, or the first copy's for a duplicate
	Duplicate bool // true when (registration, providerEventId) was already stored
}

// Registration is one webhook endpoint owned by a principal.
type Registration struct {
	ID          string        `json:"id"` // unguessable; the path of POST /hooks/{id}
	Principal   string        `json:"principal"`
	Label       string        `json:"label"` // unique per principal among live registrations
	Provider    string        `json:"provider"`
	Secrets     []string      `json:"secrets"` // newest last; any may verify during rotation
	VerifyToken string        `json:"verifyToken,omitempty"`
	CreatedAt   time.Time     `json:"createdAt"`
	TTL         time.Duration `json:"ttl"`         // retention of its events; 0 means the backend default (7 days)
	MaxAttempts int           `json:"maxAttempts"` // leases before dead-letter; 0 means the backend default
	Deleted     bool          `json:"deleted"`
	DeletedAt   time.Time     `json:"deletedAt,omitzero"`
}

// Token is a stored bearer token: only its hash is kept.
type Token struct {
	Hash      string    `json:"hash"` // hex SHA-256 of the token text
	Principal string    `json:"principal"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// Subscription is a durable delivery subscription (an MCP Events webhook
// subscription): what the subscriber asked for, in the owning package's own
// encoding, and how far delivery got. The store keeps it across restarts and
// replicas; it does not interpret Data.
type Subscription struct {
	ID        string          `json:"id"` // unique per principal
	Principal string          `json:"principal"`
	Data      json.RawMessage `json:"data"`   // the subscriber's request, opaque to the store
	Cursor    ID              `json:"cursor"` // the last event delivered
	ExpiresAt time.Time       `json:"expiresAt"`

	// Owner and ClaimedUntil report the delivery claim (see
	// ClaimSubscription) as Subscriptions and ClaimSubscription read it;
	// PutSubscription ignores them. A claim whose ClaimedUntil is not after
	// the store's clock is free to take.
	Owner        string    `json:"-"`
	ClaimedUntil time.Time `json:"-"`
}

// Query selects events by cursor.
type Query struct {
	After ID     // exclusive; Zero reads from the oldest retained event
	Label string // "" for every label of the principal
	Limit int    // at most this many; <= 0 means 100
	// MaxBytes bounds the batch by size as well as by count: an event whose
	// EventSize would take the batch's total past it ends the batch, unless
	// it is the first, which is always returned (a single event, up to the
	// ingress limit, is always deliverable). <= 0 means no byte bound.
	MaxBytes int
}

// LeaseQuery selects pending events to lease.
type LeaseQuery struct {
	Label string        // "" for every label of the principal
	Limit int           // at most this many; <= 0 means 10
	For   time.Duration // lease length; <= 0 means 5 minutes
	// MaxBytes bounds the batch by size as Query.MaxBytes does. An event
	// the bound leaves out is not leased (nor counted as a delivery): it
	// stays available for the next call and counts in Remaining.
	MaxBytes int
}

// LeaseResult is a batch of leased events, oldest first.
type LeaseResult struct {
	Events []Event // DeliveryCount already counts this lease
	// Remaining is how many events a Lease with the same label filter,
	// made right now, would hand out after this batch: pending events not
	// in it that are available now (not leased to anyone, nack delay
	// passed), including those a byte bound left out. It does not count
	// events leased and not yet acked, by this caller or another, until
	// their lease runs out, nor events waiting out a nack delay, nor events
	// that have used up their attempts (a next Lease dead-letters them
	// instead of handing them out), so "lease again while Remaining > 0"
	// ends once everything available has been handed out. It is a count at
	// the time of the call: events that arrive or become available later
	// are not in it, and another caller may lease some first. A backend
	// may judge "used up" by the MaxAttempts in force when the event's
	// lease ran out; Pending counts every pending event.
	Remaining int
	// DeadLettered counts, by label, the events this call moved to the
	// dead-letter list instead of leasing them: their last allowed lease
	// ran out without an ack. Nil when there were none.
	DeadLettered []Dropped
}

// Dropped counts the events of one of a principal's labels that the store
// gave up on without an ack, for the drop rate operators watch.
type Dropped struct {
	Principal string
	Label     string
	Events    int
}

// CountDropped adds n events of the principal's label to list, to the
// entry for that pair if there is one, and returns the list. n <= 0 leaves
// it as it is. Backends use it to build DeadLettered and Unacked.
func CountDropped(list []Dropped, principal, label string, n int) []Dropped {
	if n <= 0 {
		return list
	}
	for i := range list {
		if list[i].Principal == principal && list[i].Label == label {
			list[i].Events += n
			return list
		}
	}
	return append(list, Dropped{Principal: principal, Label: label, Events: n})
}

// CompactResult reports what Compact deleted.
type CompactResult struct {
	Deleted int // events deleted, whatever their state
	// Unacked counts, by principal and label, the deleted events that were
	// still pending (neither acked nor dead-lettered): dropped by retention.
	// Nil when there were none.
	Unacked []Dropped
}

// Store is the durable log of events plus the registrations and tokens that
// own them. All methods are safe for concurrent use. Time comes from the
// backend's clock (see Options.Now in each backend), never from callers, so
// that lease expiry and ID assignment agree.
type Store interface {
	// Append makes e durable and then returns its ID. The ID is assigned in
	// the same atomic step that commits the event, strictly greater than every
	// ID of the principal before it. A non-empty ProviderEventID already
	// stored for the same registration is a duplicate: nothing is written and
	// the first copy's ID is returned with Duplicate set. A new event starts
	// pending (leasable).
	Append(ctx context.Context, e NewEvent) (AppendResult, error)

	// Read returns the principal's events after q.After in ID order, whether
	// pending, acked or dead-lettered, while retained. DeliveryCount reports
	// the leases so far.
	Read(ctx context.Context, principal string, q Query) ([]Event, error)

	// ReadPending is Read restricted to pending events (neither acked nor
	// dead-lettered, leased or not): what a subscriber that has not acked
	// still has to do.
	ReadPending(ctx context.Context, principal string, q Query) ([]Event, error)

	// Get returns one of the principal's events, or ErrNotFound.
	Get(ctx context.Context, principal string, id ID) (Event, error)

	// Lease hands out up to q.Limit pending events, oldest first, whose
	// previous lease (if any) has run out and whose nack delay has passed,
	// leasing each for q.For and incrementing its DeliveryCount. An event
	// whose DeliveryCount already reached its registration's MaxAttempts is
	// moved to the dead-letter list instead of being leased again, and
	// counted in the result's DeadLettered.
	Lease(ctx context.Context, principal string, q LeaseQuery) (LeaseResult, error)

	// Ack marks events done: they are never leased again. Acking an event
	// that is already acked or dead-lettered is not an error. It returns
	// ErrNotFound naming the first ID the principal does not have, and acks
	// none of them in that case.
	Ack(ctx context.Context, principal string, ids []ID) (int, error)

	// Nack makes a pending event leasable again after delay. If its
	// DeliveryCount reached MaxAttempts it moves to the dead-letter list with
	// reason. dead reports which happened. An acked event is left as it is.
	Nack(ctx context.Context, principal string, id ID, delay time.Duration, reason string) (dead bool, err error)

	// Requeue makes events pending again, so pollers lease them afresh: it
	// is how an operator has work redone that was acked too early or gave
	// up (hookgate replay --requeue). An acked or dead-lettered event goes
	// back into its registration's queue as if new: its attempts and
	// DeliveryCount restart from zero, so a dead letter gets the full
	// MaxAttempts again, and it leaves the dead-letter list. An event that
	// is still pending keeps its lease, and one whose registration was
	// deleted stays out (its queue is gone). It returns how many events
	// became pending, or ErrNotFound naming the first ID the principal does
	// not have, requeueing none in that case.
	Requeue(ctx context.Context, principal string, ids []ID) (int, error)

	// Pending counts the principal's pending events (leased or not, neither
	// acked nor dead-lettered), for one label or all when label is "".
	Pending(ctx context.Context, principal, label string) (int, error)

	// DeadLetters returns the principal's dead-lettered events in ID order.
	DeadLetters(ctx context.Context, principal string, q Query) ([]Event, error)

	// PutRegistration creates or replaces a registration (matched by ID).
	// A live registration's label must be unique within its principal.
	PutRegistration(ctx context.Context, r Registration) error
	// Registration returns a registration by ID, including a deleted one
	// (Deleted set) so ingress can answer 410; ErrNotFound if never known.
	Registration(ctx context.Context, id string) (Registration, error)
	// RegistrationByLabel returns the principal's live registration with
	// that label, or ErrNotFound.
	RegistrationByLabel(ctx context.Context, principal, label string) (Registration, error)
	// Registrations lists the principal's live registrations by label.
	Registrations(ctx context.Context, principal string) ([]Registration, error)
	// DeleteRegistration marks the principal's registration with that label
	// deleted (ingress then answers 410) and drops its pending events from
	// the lease queue. ErrNotFound if there is none.
	DeleteRegistration(ctx context.Context, principal, label string) error

	// PutSubscription creates or replaces a subscription (by principal and
	// ID). Replacing keeps the stored Cursor when it is later than s.Cursor
	// (a cursor only moves forward; a refresh made elsewhere must not move
	// it back) and leaves the delivery claim as it is.
	PutSubscription(ctx context.Context, s Subscription) error
	// DeleteSubscription removes one, with its claim, or returns ErrNotFound.
	DeleteSubscription(ctx context.Context, principal, id string) error
	// Subscriptions lists every principal's subscriptions, expired or not,
	// with their claims, so delivery workers can resume after a restart and
	// replicas can share them out.
	Subscriptions(ctx context.Context) ([]Subscription, error)
	// ClaimSubscription makes owner the one deliverer of a subscription
	// until ttl from now, if owner already holds the claim, nobody does, or
	// the holder's claim ran out; it returns the stored subscription (with
	// its claim after the call) and whether owner holds it. A ttl <= 0
	// releases owner's claim, so another owner may take it at once, and
	// reports false. ErrNotFound if there is no such subscription. Replicas that
	// share a store thereby deliver each subscription once; a backend that
	// one process owns may keep claims in memory only.
	ClaimSubscription(ctx context.Context, principal, id, owner string, ttl time.Duration) (Subscription, bool, error)
	// SaveSubscriptionCursor moves an existing subscription's Cursor forward
	// to cursor (never back), changing nothing else, if owner holds its
	// claim (expired or not, as long as nobody took it over). ErrNotFound if
	// the subscription is gone, ErrNotOwner if another owner holds the claim
	// or it was released: either way the caller must stop delivering it.
	SaveSubscriptionCursor(ctx context.Context, principal, id, owner string, cursor ID) error

	// PutToken stores a token hash.
	PutToken(ctx context.Context, t Token) error
	// TokenByHash returns the stored token, or ErrNotFound.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// Tokens lists every stored token, ordered by hash.
	Tokens(ctx context.Context) ([]Token, error)
	// DeleteToken removes a token, so it is refused from then on, or
	// returns ErrNotFound.
	DeleteToken(ctx context.Context, hash string) error

	// Compact deletes events older than their registration's TTL (measured
	// from the ID's time), with their dedup records and lease state, and
	// reports how many it deleted and how many of those were still
	// pending. On an error the result counts what was deleted before it.
	Compact(ctx context.Context) (CompactResult, error)

	// Ping reports whether the backend is reachable and writable.
	Ping(ctx context.Context) error

	// Close releases the backend. In-flight calls finish first.
	Close() error
}

// EventEnvelope approximates what an event's JSON adds to its variable
// fields: the key names, the ID, the time and the flags.
const EventEnvelope = 160

// EventSize is the size by which MaxBytes measures an event: about the
// length of its JSON encoding. Every backend measures with it (a backend
// that decides inside the database uses the same sum), so a batch holds
// the same events whichever store serves it.
func EventSize(e Event) int {
	return len(e.Payload) + len(e.Label) + len(e.Source) + len(e.Type) + len(e.ProviderEventID) + EventEnvelope
}

// Budget applies a MaxBytes bound to a batch as it is built, the one rule
// every backend and every reply that pages by bytes follows: it admits
// events until one would take the total past Max, the first always (one
// event is always deliverable, however big), and the caller ends the batch
// at the first refusal, so the batch stays a prefix and a cursor after its
// last event skips nothing. A Max <= 0 admits everything.
type Budget struct {
	Max  int
	used int
	n    int // events admitted
}

// Admit reports whether an event of size bytes joins the batch, and
// counts it if so.
func (b *Budget) Admit(size int) bool {
	if b.Max > 0 && b.n > 0 && b.used+size > b.Max {
		return false
	}
	b.used += size
	b.n++
	return true
}

// Bounded reports whether the budget limits anything, so that a caller
// that would have to load an event only to size it can skip that.
func (b *Budget) Bounded() bool { return b.Max > 0 }

// ReplyBytes is the byte budget of one reply that carries a batch of events
// (tool results, resource reads, events/poll, the HTTP API): big enough that
// a batch of ordinary webhooks is bound by its count, small enough that no
// reply grows without bound. Replies stop adding events at it and say that
// more are waiting; an event bigger than the whole budget travels alone.
const ReplyBytes = 512 << 10

// Defaults shared by every backend.
const (
	DefaultTTL         = 7 * 24 * time.Hour
	DefaultMaxAttempts = 20
	DefaultLease       = 5 * time.Minute
	DefaultLeaseLimit  = 10
	DefaultReadLimit   = 100
)
