package observe

import (
	"context"
	"fmt"
	"time"
)

// RegistrationStats are the four numbers of one registration over a
// window, with the counts they come from.
type RegistrationStats struct {
	Label         string `json:"label"`
	Provider      string `json:"provider"`
	Window        string `json:"window"`
	Pending       int    `json:"pending"` // now, not over the window
	Accepted      int    `json:"accepted"`
	Duplicates    int    `json:"duplicates"`
	BadSignatures int    `json:"badSignatures"`
	Stale         int    `json:"stale"`
	TooLarge      int    `json:"tooLarge"`
	Acked         int    `json:"acked"`
	Nacked        int    `json:"nacked"`
	LeaseExpired  int    `json:"leaseExpired"`
	DeadLettered  int    `json:"deadLettered"`
	// ExpiredUnacked counts events deleted by retention (the
	// registration's TTL) while still pending: never acked, never
	// dead-lettered.
	ExpiredUnacked int `json:"expiredUnacked"`
	// DeliveryLatency: provider's event time to our 2xx; null without samples.
	DeliveryLatency *Latency `json:"deliveryLatency"`
	// ProcessingLatency: our 2xx to the agent's ack; null without samples.
	ProcessingLatency *Latency `json:"processingLatency"`
	// DropRate: (dead letters + expired unacked) / accepted, at most 1;
	// null when nothing was accepted or dropped. A lease expiry is not a
	// drop: the event comes back. Drops count when they happen, so in a
	// window they may belong to events accepted before it; the cap keeps
	// the rate a fraction.
	DropRate *float64 `json:"dropRate"`
	// ActionSuccessRate: acks / (acks + nacks + lease expiries); null without any.
	ActionSuccessRate *float64 `json:"actionSuccessRate"`
}

// Stats returns the numbers of the principal's live registrations (one
// label, or all) over the last window (1 minute to MaxWindow), by label.
func (o *Observer) Stats(ctx context.Context, principal, label string, window time.Duration) ([]RegistrationStats, error) {
	window = min(max(window, time.Minute), MaxWindow)
	regs, err := o.store.Registrations(ctx, principal)
	if err != nil {
		return nil, fmt.Errorf("stats: list registrations: %w", err)
	}
	o.sweep(true)
	now := o.now()
	out := []RegistrationStats{}
	for _, reg := range regs {
		if label != "" && reg.Label != label {
			continue
		}
		pending, err := o.store.Pending(ctx, principal, reg.Label)
		if err != nil {
			return nil, fmt.Errorf("stats: count pending of %q: %w", reg.Label, err)
		}
		c := o.window(regKey{principal, reg.Label}).sum(now, window)
		out = append(out, RegistrationStats{
			Label: reg.Label, Provider: reg.Provider, Window: window.String(), Pending: pending,
			Accepted: c.Accepted, Duplicates: c.Duplicates, BadSignatures: c.BadSignatures,
			Stale: c.Stale, TooLarge: c.TooLarge,
			Acked: c.Acked, Nacked: c.Nacked, LeaseExpired: c.LeaseExpired, DeadLettered: c.DeadLettered,
			ExpiredUnacked:    c.ExpiredUnacked,
			DeliveryLatency:   summarise(c.delivery),
			ProcessingLatency: summarise(c.processing),
			DropRate:          dropRate(c.DeadLettered+c.ExpiredUnacked, c.Accepted),
			ActionSuccessRate: ratio(c.Acked, c.Acked+c.Nacked+c.LeaseExpired),
		})
	}
	return out, nil
}

// dropRate is dropped/accepted, capped at 1 (more drops than acceptances
// in a window means events accepted before it were dropped in it); null
// when both are zero.
func dropRate(dropped, accepted int) *float64 {
	return ratio(dropped, max(accepted, dropped))
}

func ratio(n, d int) *float64 {
	if d == 0 {
		return nil
	}
	r := float64(n) / float64(d)
	return &r
}
