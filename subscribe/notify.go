package subscribe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge/store"
)

// Meta keys of a hookgate resource notification: the event's ID, and the
// event itself so a client can act without a read.
const (
	MetaEventID = "hookgate/eventId"
	MetaEvent   = "hookgate/event"
)

// maxInlineEvent is the largest event carried inside a notification; a
// bigger one is only named, and the client reads it.
const maxInlineEvent = 64 << 10

// retryAfterStoreError is how long the notifier waits after a failed read
// before trying again from the same cursor.
const retryAfterStoreError = time.Second

// subscriptions tracks which sessions of one principal's server subscribed
// to which URIs, and runs that principal's notifier while any exist.
type subscriptions struct {
	ps *principalServer

	mu        sync.Mutex
	bySession map[*mcp.ServerSession]map[string]bool
	eras      map[*mcp.ServerSession]string // negotiated protocol version, for metrics
	count     int
	stop      context.CancelFunc // the running notifier's, nil when none runs
}

func newSubscriptions(ps *principalServer) *subscriptions {
	return &subscriptions{ps: ps, bySession: make(map[*mcp.ServerSession]map[string]bool), eras: make(map[*mcp.ServerSession]string)}
}

// subscribe is the server's SubscribeHandler for both eras (2025
// resources/subscribe and 2026 subscriptions/listen). It refuses anything
// that is not one of this principal's queues, so a subscription never
// delivers what the caller could not read.
func (s *subscriptions) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	uri := req.Params.URI
	if !subscribable(uri) {
		return fmt.Errorf("cannot subscribe to %q: subscribe to %s or %s{label}", uri, EventsURI, webhooksPrefix)
	}
	ref, err := parseResourceURI(uri)
	if err != nil {
		return fmt.Errorf("cannot subscribe to %q: %w", uri, err)
	}
	if ref.label != "" {
		if _, err := s.ps.opts.Log.RegistrationByLabel(ctx, s.ps.principal, ref.label); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("cannot subscribe to %q: no webhook labelled %q", uri, ref.label)
			}
			return fmt.Errorf("subscribe to %q: %w", uri, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	uris, known := s.bySession[req.Session]
	if !known {
		uris = make(map[string]bool)
		s.bySession[req.Session] = uris
		s.eras[req.Session] = req.ProtocolVersion()
		// The SDK forgets a legacy session's subscriptions without calling
		// the UnsubscribeHandler when the session ends; this is our cleanup.
		go func(ss *mcp.ServerSession) {
			_ = ss.Wait()
			s.dropSession(ss)
		}(req.Session)
	}
	if !uris[uri] {
		uris[uri] = true
		s.count++
		s.ps.opts.Metrics.Subscribed("mcp", s.eras[req.Session], 1)
		s.ensureNotifier()
	}
	return nil
}

// unsubscribe is the UnsubscribeHandler: an explicit resources/unsubscribe,
// or the end of a subscriptions/listen.
func (s *subscriptions) unsubscribe(_ context.Context, req *mcp.UnsubscribeRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if uris := s.bySession[req.Session]; uris[req.Params.URI] {
		delete(uris, req.Params.URI)
		s.count--
		s.ps.opts.Metrics.Subscribed("mcp", s.eras[req.Session], -1)
		s.stopIfIdle()
	}
	return nil
}

func (s *subscriptions) dropSession(ss *mcp.ServerSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.bySession[ss])
	s.count -= n
	if n > 0 {
		s.ps.opts.Metrics.Subscribed("mcp", s.eras[ss], -n)
	}
	delete(s.bySession, ss)
	delete(s.eras, ss)
	s.stopIfIdle()
}

// active reports how many (session, URI) subscriptions exist.
func (s *subscriptions) active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func (s *subscriptions) ensureNotifier() {
	if s.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.ps.notify(ctx, Since(time.Now()))
}

func (s *subscriptions) stopIfIdle() {
	if s.count == 0 && s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// close stops the notifier for good (server shutdown).
func (s *subscriptions) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// notify follows the principal's log from after and sends one
// notifications/resources/updated per event to the subscribers of
// hookgate://events and of the event's label, in ID order.
func (ps *principalServer) notify(ctx context.Context, after store.ID) {
	f := &Follower{Log: ps.opts.Log, Wake: ps.opts.Wake, Principal: ps.principal, After: after}
	for ctx.Err() == nil {
		err := f.Run(ctx, func(e store.Event) error {
			meta := mcp.Meta{MetaEventID: e.ID.String()}
			if raw, err := json.Marshal(e); err == nil && len(raw) <= maxInlineEvent {
				meta[MetaEvent] = json.RawMessage(raw)
			}
			for _, uri := range [...]string{EventsURI, WebhookURI(e.Label)} {
				// Delivery failures are logged by the SDK; the client catches
				// up from its cursor, so there is nothing to retry here.
				_ = ps.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: uri, Meta: meta})
			}
			ps.opts.Metrics.Pushed("mcp")
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		ps.opts.Logger.Warn("resource notifier: read log", "principal", ps.principal, "err", err)
		select {
		case <-time.After(retryAfterStoreError):
		case <-ctx.Done():
		}
	}
}
