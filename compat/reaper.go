package compat

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sessionActivity remembers, per legacy session ID, when a request last
// named it and how many GET streams it holds open. The SDK's own
// SessionTimeout counts only POSTs, so it would close a session that does
// nothing but listen on its GET stream; this is what lets hookgate keep
// those and still close sessions whose clients went away.
type sessionActivity struct {
	mu       sync.Mutex
	lastSeen map[string]time.Time
	streams  map[string]int
}

func newSessionActivity() *sessionActivity {
	return &sessionActivity{lastSeen: make(map[string]time.Time), streams: make(map[string]int)}
}

// track records r against its session for as long as the request runs.
func (a *sessionActivity) track(r *http.Request) (done func()) {
	id := r.Header.Get("Mcp-Session-Id")
	if id == "" {
		return func() {}
	}
	a.mu.Lock()
	a.lastSeen[id] = time.Now()
	isStream := r.Method == http.MethodGet
	if isStream {
		a.streams[id]++
	}
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		a.lastSeen[id] = time.Now()
		if isStream {
			a.streams[id]--
		}
		a.mu.Unlock()
	}
}

// idle reports whether the session has no open stream and has not been
// named by a request since before cutoff. A session never seen is dated
// now, so one just initialised is not closed before it is used.
func (a *sessionActivity) idle(id string, now, cutoff time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen, ok := a.lastSeen[id]
	if !ok {
		a.lastSeen[id] = now
		return false
	}
	return a.streams[id] == 0 && seen.Before(cutoff)
}

func (a *sessionActivity) forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.lastSeen, id)
	delete(a.streams, id)
}

// ReapIdleSessions closes, every interval until ctx ends, the legacy
// sessions of the servers that have held no GET stream and sent no request
// for idle. each visits every server behind the handler.
func (h *Handler) ReapIdleSessions(ctx context.Context, idle, interval time.Duration, each func(func(*mcp.Server))) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		each(func(s *mcp.Server) {
			for ss := range s.Sessions() {
				id := ss.ID()
				if id != "" && h.activity.idle(id, now, now.Add(-idle)) {
					h.logger.Debug("closing idle MCP session", "session", id, "idle", idle)
					_ = ss.Close()
					h.activity.forget(id)
				}
			}
		})
	}
}
