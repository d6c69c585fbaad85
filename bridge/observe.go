package bridge

import (
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// Observer is told what the inbox does, for metrics, stats and logs. Its
// methods run on the request path, so they must be quick and must not fail.
type Observer interface {
	// Webhook reports one ingress request, whatever its outcome.
	Webhook(WebhookReport)
	// Leased reports events handed to a poller, leased until the time given.
	Leased(principal string, events []store.Event, until time.Time)
	// Acked reports an ack call: the IDs given, of which newly were not
	// acked before (acking twice is allowed and is not counted again).
	Acked(principal string, ids []store.ID, newly int)
	// Nacked reports an event handed back; dead when it was dead-lettered.
	Nacked(principal string, id store.ID, dead bool)
	// DeadLettered reports events a lease moved to the dead-letter list
	// instead of handing them out: their last lease ran out without an ack.
	DeadLettered(store.Dropped)
}

// WebhookReport describes one ingress request. Fields the request never
// reached are zero: an unknown registration has no principal or label.
type WebhookReport struct {
	Outcome    Outcome
	Provider   string
	Principal  string
	Label      string
	EventID    store.ID  // set when stored (or a duplicate's first copy)
	EventTime  time.Time // when the event happened by the provider (verify.Result.OccurredAt), else when it signed; zero if neither is known
	ReceivedAt time.Time // when the body was read and verified
	Duration   time.Duration
}

// nopObserver is the Observer of an Inbox given none.
type nopObserver struct{}

func (nopObserver) Webhook(WebhookReport)                   {}
func (nopObserver) Leased(string, []store.Event, time.Time) {}
func (nopObserver) Acked(string, []store.ID, int)           {}
func (nopObserver) Nacked(string, store.ID, bool)           {}
func (nopObserver) DeadLettered(store.Dropped)              {}
