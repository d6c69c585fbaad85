package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// MaxWait caps a long poll, so a client's request never outlives typical
// proxy and tool-call timeouts.
const MaxWait = 30 * time.Second

// LeaseRequest says what Lease hands out.
type LeaseRequest struct {
	Label string // "" for every label of the principal
	Limit int    // at most this many events
	// MaxBytes bounds the batch by size (see store.LeaseQuery.MaxBytes):
	// the events that would take it past are not leased and count in
	// Remaining. <= 0 means no byte bound.
	MaxBytes int
	// Wait, when > 0 and nothing is pending, is how long to wait for an
	// event to arrive (at most MaxWait).
	Wait time.Duration
}

// Lease leases pending events of the principal, oldest first, as req says.
// With req.Wait > 0 and nothing to hand out, it waits and returns as soon as
// an event arrives.
func (in *Inbox) Lease(ctx context.Context, principal string, req LeaseRequest) (store.LeaseResult, error) {
	label := req.Label
	if err := in.CheckLabel(ctx, principal, label); err != nil {
		return store.LeaseResult{}, err
	}
	wait := min(req.Wait, MaxWait)
	deadline := time.NewTimer(max(wait, 0))
	defer deadline.Stop()
	recheck := time.NewTicker(in.opts.Recheck)
	defer recheck.Stop()
	for {
		woken := in.wake.Wait(principal)
		res, err := in.store.Lease(ctx, principal, store.LeaseQuery{Label: label, Limit: req.Limit, MaxBytes: req.MaxBytes, For: in.opts.Lease})
		if err != nil {
			return store.LeaseResult{}, fmt.Errorf("lease events: %w", err)
		}
		for _, d := range res.DeadLettered {
			in.observer.DeadLettered(d)
		}
		if len(res.Events) > 0 {
			in.observer.Leased(principal, res.Events, in.opts.Now().Add(in.opts.Lease))
			return res, nil
		}
		if wait <= 0 {
			return res, nil
		}
		select {
		case <-woken:
		case <-recheck.C:
		case <-deadline.C:
			return res, nil
		case <-in.stopWaits:
			return res, nil
		case <-ctx.Done():
			in.logger.DebugContext(ctx, "long poll ended: the caller went away", "principal", principal, "label", label)
			return store.LeaseResult{}, ctx.Err()
		}
	}
}

// Ack marks the principal's events done. Every text must be an event ID of
// the principal's; otherwise nothing is acked and the error names it.
func (in *Inbox) Ack(ctx context.Context, principal string, ids []string) (int, error) {
	parsed, err := parseEventIDs(ids)
	if err != nil {
		return 0, err
	}
	n, err := in.store.Ack(ctx, principal, parsed)
	if err != nil {
		return 0, err // the store's error already says "ack events" and names the ID
	}
	in.observer.Acked(principal, parsed, n)
	return n, nil
}

// Nack hands an event back: it becomes pending again after delay, or moves
// to the dead-letter list once it has used its attempts (dead reports which).
func (in *Inbox) Nack(ctx context.Context, principal, idText string, delay time.Duration, reason string) (dead bool, err error) {
	id, err := store.ParseID(idText)
	if err != nil {
		return false, fmt.Errorf("%w: event id %q is not of the form <unix-ms>-<seq>", ErrInvalid, idText)
	}
	dead, err = in.store.Nack(ctx, principal, id, max(delay, 0), reason)
	if err != nil {
		return false, fmt.Errorf("nack event %s: %w", idText, err)
	}
	in.observer.Nacked(principal, id, dead)
	return dead, nil
}

// Pending counts the principal's pending events for one label, or all.
func (in *Inbox) Pending(ctx context.Context, principal, label string) (int, error) {
	n, err := in.store.Pending(ctx, principal, label)
	if err != nil {
		return 0, fmt.Errorf("count pending events: %w", err)
	}
	return n, nil
}

// parseEventIDs parses the event IDs a caller named: at least one, each of
// the form <unix-ms>-<seq>, or ErrInvalid naming the first that is not.
func parseEventIDs(ids []string) ([]store.ID, error) {
	parsed := make([]store.ID, 0, len(ids))
	for _, s := range ids {
		id, err := store.ParseID(s)
		if err != nil {
			return nil, fmt.Errorf("%w: event id %q is not of the form <unix-ms>-<seq>", ErrInvalid, s)
		}
		parsed = append(parsed, id)
	}
	if len(parsed) == 0 {
		return nil, fmt.Errorf("%w: no event id given", ErrInvalid)
	}
	return parsed, nil
}
