package subscribe

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge/store"
)

// Poll limits. A poll returns about store.ReplyBytes of events at most (an
// event bigger than that comes alone) and reads at most pollScanLimit
// events of the label per request whatever the filter, so a narrow filter
// over a long backlog answers in bounded time (with hasMore) instead of
// scanning it all.
const (
	defaultPollEvents = 100
	maxPollEvents     = 1000
	pollScanLimit     = 10_000
	nextPollMs        = 1000
	maxLongPoll       = 30 * time.Second
)

// pollParams are events/poll's parameters. timeoutMs (a long poll) is the
// design sketch's; SEP-3415 has none, and the SEP profile ignores it.
type pollParams struct {
	mcp.ParamsBase
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Cursor    *string         `json:"cursor,omitempty"`
	MaxAgeMs  *int64          `json:"maxAgeMs,omitempty"`
	MaxEvents *int            `json:"maxEvents,omitempty"`
	TimeoutMs *int64          `json:"timeoutMs,omitempty"`
}

// pollResult is events/poll's result; all five fields are always sent.
type pollResult struct {
	resultFields
	Events     []occurrence `json:"events"`
	Cursor     string       `json:"cursor"`
	Truncated  bool         `json:"truncated"`
	HasMore    bool         `json:"hasMore"`
	NextPollMs int          `json:"nextPollMs"`
}

// poll serves events/poll: the occurrences after the cursor, read from the
// log. The server keeps nothing between polls; the cursor is the state.
func (h *eventsHandlers) poll(ctx context.Context, _ *mcp.ServerSession, p *pollParams) (*pollResult, error) {
	reg, filter, _, err := h.resolve(ctx, p.Name, p.Arguments)
	if err != nil {
		return nil, err
	}
	limit := defaultPollEvents
	if p.MaxEvents != nil {
		if *p.MaxEvents < 1 {
			return nil, invalidParams("maxEvents", "must be at least 1")
		}
		limit = min(*p.MaxEvents, maxPollEvents)
	}
	var wait time.Duration
	if p.TimeoutMs != nil && h.x.opts.Profile == ProfileChatGPT {
		if *p.TimeoutMs < 0 {
			return nil, invalidParams("timeoutMs", "must not be negative")
		}
		wait = min(time.Duration(*p.TimeoutMs)*time.Millisecond, maxLongPoll)
	}
	after, truncated, err := h.x.startAt(ctx, h.principal, reg, p.Cursor, p.MaxAgeMs)
	if err != nil {
		return nil, err
	}
	res := &pollResult{Truncated: truncated, NextPollMs: nextPollMs}
	res.completeFor(p.Meta)
	if p.Cursor == nil {
		// "From now" replays nothing: the answer is the position alone.
		res.Events, res.Cursor = []occurrence{}, after.String()
		return res, nil
	}
	deadline := time.Now().Add(wait)
	for {
		woken := h.x.opts.Wake.Wait(h.principal) // before the read, so no append is missed
		res.Events, after, res.HasMore, err = h.x.collect(ctx, h.principal, reg.Label, filter, after, limit)
		if err != nil {
			return nil, err
		}
		if len(res.Events) > 0 || res.HasMore || time.Until(deadline) <= 0 {
			break
		}
		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-woken:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	res.Cursor = after.String()
	return res, nil
}

// collect reads up to limit matching occurrences after the cursor and
// returns them with the new cursor: the last event read, matching or not,
// so a narrow filter does not rescan what it skipped.
func (x *Events) collect(ctx context.Context, principal, label string, filter eventFilter, after store.ID, limit int) ([]occurrence, store.ID, bool, error) {
	out := []occurrence{}
	scanned, budget := 0, store.Budget{Max: store.ReplyBytes}
	for scanned < pollScanLimit {
		batch, err := x.opts.Log.Read(ctx, principal, store.Query{After: after, Label: label, Limit: store.DefaultReadLimit, MaxBytes: store.ReplyBytes})
		if err != nil {
			return nil, after, false, fmt.Errorf("poll %s: %w", label, err)
		}
		if len(batch) == 0 {
			return out, after, false, nil
		}
		for _, e := range batch {
			matches := filter.match(e)
			if len(out) == limit || (matches && !budget.Admit(store.EventSize(e))) {
				return out, after, true, nil // e is a further event
			}
			after = e.ID
			scanned++
			if !matches {
				continue
			}
			o, err := newOccurrence(e)
			if err != nil {
				return nil, after, false, err
			}
			out = append(out, o)
		}
	}
	return out, after, true, nil
}
