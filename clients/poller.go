package clients

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Tool poller defaults.
const (
	// checkInterval spaces out check_pending_events calls that found
	// nothing, on a server without poll_events (it has no long poll).
	checkInterval = time.Second
)

// NewToolPoller returns a Driver that takes events with the three-tool
// pattern over MCP: poll_events (long-polling, with Config.Label as its
// label filter) or, on a server without it, check_pending_events; then
// ack_event once the handler has returned nil, and nack_event with the
// retry delay when it has failed. It works against any MCP server that
// offers those tools, not only hookgate.
//
// Events the poller took but did not finish when the run ends are left
// leased, not handed back: they come back when their lease runs out
// (hookgate's --lease, 5 minutes by default), to this program restarted or
// to another poller. nack_event could hand them back at once, but the
// contract has no way to do so without it counting as a failure: it is a
// nack in the server's stats, and at the event's last allowed attempt it
// dead-letters it as failed though no handler ever failed on it. Leaving
// them costs no extra attempt (the lease that took them counted one
// either way), only the wait.
func NewToolPoller(cfg Config) Driver { return &toolPoller{cfg: cfg} }

type toolPoller struct {
	cfg Config
	sessionSlot
}

// Run implements Driver.
func (p *toolPoller) Run(ctx context.Context, h Handler) error {
	cfg := p.cfg.withDefaults()
	if _, err := cfg.mcpEndpoint(); err != nil {
		return err
	}
	// The session outlives the feed: the run's last acks go over it.
	defer p.setSession(nil)
	return runWith(ctx, cfg, h, p, func(ctx context.Context, r *runner, _ string) error {
		startOver := func() { p.setSession(nil) } // with a fresh session
		return keepTrying(ctx, cfg.Logger, "poll failed", func() []any { return nil }, startOver, func() (bool, error) {
			err := p.pollOnce(ctx, cfg, r)
			return err == nil, err
		})
	})
}

// session returns the current session, connecting when there is none or
// the last one ended.
func (p *toolPoller) session(ctx context.Context, cfg Config) (*mcpSession, error) {
	s := p.current()
	if s != nil {
		select {
		case <-s.closed:
		default:
			return s, nil
		}
	}
	s, err := connectMCP(ctx, cfg, latestVersion)
	if err != nil {
		return nil, err
	}
	if s.tools["poll_events"] == nil && s.tools["check_pending_events"] == nil {
		s.close()
		return nil, &stopError{errNoEventTools}
	}
	p.setSession(s)
	return s, nil
}

// pollOnce takes one batch, as much as the runner has room for, and
// offers it.
func (p *toolPoller) pollOnce(ctx context.Context, cfg Config, r *runner) error {
	free, err := r.space(ctx)
	if err != nil {
		return err
	}
	s, err := p.session(ctx, cfg)
	if err != nil {
		return err
	}
	var events []Event
	if s.tools["poll_events"] != nil {
		args := map[string]any{"limit": min(free, pageSize), "wait_seconds": max(1, int(cfg.PollWait/time.Second))}
		if cfg.Label != "" {
			args["label"] = cfg.Label
		}
		raw, err := s.callTool(ctx, "poll_events", args)
		if err != nil {
			return err
		}
		if events, err = decodeEvents(raw); err != nil {
			return fmt.Errorf("poll_events: %w", err)
		}
	} else {
		raw, err := s.callTool(ctx, "check_pending_events", map[string]any{})
		if err != nil {
			return err
		}
		if events, err = decodeEvents(raw); err != nil {
			return fmt.Errorf("check_pending_events: %w", err)
		}
		if len(events) == 0 && !sleep(ctx, checkInterval) {
			return ctx.Err()
		}
	}
	for _, e := range events {
		if cfg.Label != "" && e.Label != "" && e.Label != cfg.Label {
			continue // check_pending_events has no label filter
		}
		if err := r.offer(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func (p *toolPoller) ack(ctx context.Context, ids []string) error {
	s := p.current()
	if s == nil {
		return errors.New("no session to ack on")
	}
	return s.ackTool(ctx, ids)
}

func (p *toolPoller) nack(ctx context.Context, e Event, delay time.Duration) (bool, error) {
	s := p.current()
	if s == nil || s.tools["nack_event"] == nil {
		return false, nil // the lease running out retries it on the server
	}
	raw, err := s.callTool(ctx, "nack_event", map[string]any{
		"event_id":            e.ID,
		"retry_after_seconds": int((delay + time.Second - 1) / time.Second),
		"reason":              "handler failed",
	})
	if err != nil {
		return false, err
	}
	var res struct {
		DeadLettered bool `json:"deadLettered"`
	}
	_ = json.Unmarshal(raw, &res)
	return res.DeadLettered, nil
}
