package clients

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// codeLegacyNotFound is resources/read's not-found code before SEP-2164.
const codeLegacyNotFound = -32002

// ackTimeout bounds the wait for a 2026 listen's acknowledgement; a listen
// not acknowledged by then is taken for dead and the session restarted.
const ackTimeout = 10 * time.Second

// NewSubscriber returns a Driver that takes events by MCP 2025 resource
// subscription: it connects with protocol 2025-11-25, sends
// resources/subscribe for hookgate://webhooks/{Config.Label} (or
// hookgate://events without a label) and, after every (re)connect of the
// session or its GET stream, on every notifications/resources/updated and
// every Config.Resync, reads the resource from its cursor with
// resources/read. Events are acked with ack_event after the handler
// returns nil, so the pending queue drains as with the poller; a handler
// error is retried locally with backoff.
func NewSubscriber(cfg Config) Driver { return &pushDriver{cfg: cfg, version: legacyVersion} }

// NewListener is NewSubscriber for MCP 2026-07-28: the subscription is a
// subscriptions/listen stream. The SDK never reports a listen that was cut
// (by a proxy, a redeploy or a network fault; it silently drops the
// subscription), so the driver watches the listen response itself and, when
// it ends, listens again and catches up from its cursor. Against a server
// without 2026-07-28 it falls back to what NewSubscriber does.
func NewListener(cfg Config) Driver { return &pushDriver{cfg: cfg, version: latestVersion} }

type pushDriver struct {
	cfg     Config
	version string
	sessionSlot
}

// Run implements Driver.
func (d *pushDriver) Run(ctx context.Context, h Handler) error {
	cfg := d.cfg.withDefaults()
	if _, err := cfg.mcpEndpoint(); err != nil {
		return err
	}
	uri := "hookgate://events"
	if cfg.Label != "" {
		uri = "hookgate://webhooks/" + cfg.Label
	}
	defer d.setSession(nil)
	return runWith(ctx, cfg, h, d, func(ctx context.Context, r *runner, resume string) error {
		cursor := resume
		return keepTrying(ctx, cfg.Logger, "subscription lost", func() []any { return []any{"uri", uri, "after", cursor} }, nil, func() (bool, error) {
			return false, d.serve(ctx, cfg, uri, &cursor, r)
		})
	})
}

// serve runs one session: subscribe, catch up, then follow the
// notifications until the session fails.
func (d *pushDriver) serve(ctx context.Context, cfg Config, uri string, cursor *string, r *runner) error {
	s, err := connectMCP(ctx, cfg, d.version)
	if err != nil {
		return err
	}
	d.setSession(s)
	// Read first as well: a 2026 listen the server refuses is never
	// reported (the SDK drops the refusal), but a read of an unknown
	// resource is, and no retry would fix it.
	if err := catchUp(ctx, s, uri, cursor, r); err != nil {
		return err
	}
	if err := d.subscribe(ctx, s, uri); err != nil {
		return err
	}
	if err := catchUp(ctx, s, uri, cursor, r); err != nil {
		return err
	}
	resync := time.NewTicker(cfg.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return errors.New("session ended")
		case <-s.watch.ended:
			if s.watch.listens.Load() > 0 {
				continue // an old listen, replaced already
			}
			cfg.Logger.Warn("listen stream cut; listening again", "uri", uri)
			if err := d.subscribe(ctx, s, uri); err != nil {
				return err
			}
		case <-s.updated:
		case <-s.watch.opened:
		case <-resync.C:
		}
		if err := catchUp(ctx, s, uri, cursor, r); err != nil {
			return err
		}
	}
}

// subscribe subscribes to uri. On 2026-07-28 the SDK's Subscribe starts a
// listen and reports nothing, and is a no-op for a URI it believes live,
// so it unsubscribes first and then waits for the server's
// acknowledgement.
func (d *pushDriver) subscribe(ctx context.Context, s *mcpSession, uri string) error {
	if !s.modern() {
		if err := s.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
			return &stopError{fmt.Errorf("subscribe to %s: %w", uri, err)}
		}
		return nil
	}
	select { // a stale acknowledgement must not count for this listen
	case <-s.acked:
	default:
	}
	_ = s.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: uri})
	if err := s.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
		return fmt.Errorf("listen to %s: %w", uri, err)
	}
	t := time.NewTimer(ackTimeout)
	defer t.Stop()
	select {
	case <-s.acked:
		return nil
	case <-t.C:
		return fmt.Errorf("listen to %s: not acknowledged within %s", uri, ackTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// modern reports whether the session negotiated 2026-07-28 (listen-based
// subscriptions).
func (s *mcpSession) modern() bool {
	res := s.cs.InitializeResult()
	return res == nil || res.ProtocolVersion >= "2026-07-28"
}

// catchUp reads uri's events after *cursor, page by page, offering each,
// and moves the cursor.
func catchUp(ctx context.Context, s *mcpSession, uri string, cursor *string, r *runner) error {
	for {
		q := url.Values{"limit": {fmt.Sprint(pageSize)}}
		if *cursor != "" {
			q.Set("after", *cursor)
		}
		res, err := s.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri + "?" + q.Encode()})
		if err != nil {
			err = fmt.Errorf("read %s after %q: %w", uri, *cursor, err)
			var rpcErr *jsonrpc.Error
			if errors.As(err, &rpcErr) && (rpcErr.Code == mcp.CodeResourceNotFound || rpcErr.Code == codeLegacyNotFound || rpcErr.Code == jsonrpc.CodeInvalidParams) {
				return &stopError{err} // an unknown label
			}
			return err
		}
		if len(res.Contents) == 0 {
			return fmt.Errorf("read %s: no contents", uri)
		}
		// The server bounds a page by bytes as well as by count, so a
		// short page is not the end: hasMore says whether one follows. A
		// server that does not send it bounds pages by count only.
		var page struct {
			Events  []json.RawMessage `json:"events"`
			HasMore *bool             `json:"hasMore"`
		}
		if err := json.Unmarshal([]byte(res.Contents[0].Text), &page); err != nil {
			return fmt.Errorf("read %s: decode events: %w", uri, err)
		}
		events, err := decodeEventList(page.Events)
		if err != nil {
			return fmt.Errorf("read %s: %w", uri, err)
		}
		for _, e := range events {
			if err := r.offer(ctx, e); err != nil {
				return err
			}
			*cursor = e.ID
		}
		more := len(events) == pageSize
		if page.HasMore != nil {
			more = *page.HasMore
		}
		if !more {
			return nil
		}
	}
}

func (d *pushDriver) ack(ctx context.Context, ids []string) error {
	s := d.current()
	if s == nil {
		return errors.New("no session to ack on")
	}
	return s.ackTool(ctx, ids)
}

// nack does nothing on the server: a push driver retries locally.
func (d *pushDriver) nack(context.Context, Event, time.Duration) (bool, error) { return false, nil }
