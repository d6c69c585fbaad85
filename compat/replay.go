package compat

import (
	"container/heap"
	"context"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Default bounds of a ReplayStore, used when a ReplayOptions field is zero
// or negative.
const (
	defaultReplayPerSession = 4 << 20
	defaultReplayTotal      = 64 << 20
)

// ReplayOptions bounds the memory a ReplayStore keeps for Last-Event-ID
// replay. Sizes count the bytes of stored messages, as the SDK's
// MemoryEventStore does; bookkeeping overhead is not counted.
type ReplayOptions struct {
	// PerSession is the most bytes one session may keep across all of its
	// streams. When a session goes over it, that session's own oldest
	// events are dropped, and no other session's. Zero or negative means
	// 4 MiB. It is lowered to Total if larger.
	PerSession int
	// Total is the most bytes all sessions together may keep. When it is
	// exceeded, events are dropped oldest first from whichever session
	// holds the most bytes, so a session that stalled and piled up history
	// pays before the sessions that keep up. Zero or negative means 64 MiB.
	Total int
}

// ReplayStore is an mcp.EventStore that keeps each session's outgoing SSE
// messages in memory, so a legacy (pre-2026-07-28) client that reconnects
// with Last-Event-ID gets what it missed.
//
// It exists because the SDK's MemoryEventStore has one process-wide byte
// cap and, when over it, drops the oldest event of every stream in turn:
// one session that stalls and never reconnects fills the cap and takes the
// replay history of every other session with it. ReplayStore instead caps
// each session on its own and, when the process-wide total is exceeded,
// takes from the heaviest session first.
//
// Indexes, errors and lifecycle mirror MemoryEventStore exactly, because
// the SDK's handler derives SSE event IDs from them: the n-th Append to a
// stream has index n-1 (the first is 0), After(index) yields the data
// appended after index, in order, and fails with an error wrapping
// mcp.ErrEventsPurged if any of it has been dropped. Dropping an event
// never renumbers the ones after it.
//
// The event just appended is never dropped. So a message larger than
// PerSession is still kept (alone, for its session), and the store may go
// over its bounds by that one message until the next Append. Empty data
// (the SDK's priming events) counts as zero bytes, as in MemoryEventStore.
//
// A ReplayStore is safe for use by multiple goroutines. Make one with
// NewReplayStore; the zero value is not usable.
type ReplayStore struct {
	mu         sync.Mutex
	perSession int
	total      int
	nBytes     int                       // bytes held across all sessions
	sessions   map[string]*replaySession // session ID -> session
	bySize     sessionHeap               // the sessions, heaviest on top
}

// replaySession is what a ReplayStore holds for one session.
type replaySession struct {
	size    int                      // bytes held across the session's streams
	streams map[string]*replayStream // stream ID -> stream
	// order has one entry per held event, in the order they were appended
	// across all of the session's streams. Because each stream's events are
	// appended in index order, the front entry's stream's first event is
	// the session's oldest.
	order   []*replayStream
	heapIdx int // position in ReplayStore.bySize
}

// replayStream is what a ReplayStore holds for one stream of a session.
type replayStream struct {
	first int      // index of data[0]; the number of events dropped so far
	data  [][]byte // held events, oldest first
}

// NewReplayStore returns an empty ReplayStore with the given bounds.
func NewReplayStore(opts ReplayOptions) *ReplayStore {
	total := opts.Total
	if total <= 0 {
		total = defaultReplayTotal
	}
	per := opts.PerSession
	if per <= 0 {
		per = defaultReplayPerSession
	}
	return &ReplayStore{
		perSession: min(per, total),
		total:      total,
		sessions:   make(map[string]*replaySession),
	}
}

// Open implements mcp.EventStore. It makes sure the stream exists, so that
// After on it succeeds even before anything was appended.
func (s *ReplayStore) Open(_ context.Context, sessionID, streamID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stream(sessionID, streamID)
	return nil
}

// Append implements mcp.EventStore. It records data as the stream's next
// event, then drops old events until the session is within PerSession and
// the store within Total, never dropping the event just appended. Append
// to a stream that was never opened opens it, as in MemoryEventStore.
func (s *ReplayStore) Append(_ context.Context, sessionID, streamID string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, st := s.stream(sessionID, streamID)
	st.data = append(st.data, data)
	sess.order = append(sess.order, st)
	s.grow(sess, len(data))

	// This session's own cap: only its own history goes.
	for sess.size > s.perSession && len(sess.order) > 1 {
		s.dropOldest(sess)
	}
	// The process-wide cap: the heaviest session goes first.
	for s.nBytes > s.total {
		heavy := s.bySize[0]
		if heavy == sess && len(sess.order) == 1 {
			// The heaviest session holds only the event just appended.
			// Within its session's cap, it is owed room like any other,
			// so the next heaviest pays; past the cap, it keeps what is
			// left and the store stays over by this one event.
			if len(data) > s.perSession {
				break
			}
			heavy = s.nextHeaviest()
		}
		s.dropOldest(heavy)
	}
	return nil
}

// nextHeaviest returns the session holding the most bytes after the
// heaviest one. There must be at least two sessions. It must be called
// with s.mu held.
func (s *ReplayStore) nextHeaviest() *replaySession {
	next := s.bySize[1]
	if len(s.bySize) > 2 && s.bySize[2].size > next.size {
		next = s.bySize[2]
	}
	return next
}

// After implements mcp.EventStore. It yields the data of the stream's
// events after index, oldest first. If any of them has been dropped it
// yields only an error wrapping mcp.ErrEventsPurged; an unknown session or
// stream (never opened, or its session closed) yields a different error.
// An index at or past the newest event yields nothing.
func (s *ReplayStore) After(_ context.Context, sessionID, streamID string, index int) iter.Seq2[[]byte, error] {
	// Copy under the lock: dropping an event clears its slot.
	snapshot := func() ([][]byte, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		sess, ok := s.sessions[sessionID]
		if !ok {
			return nil, fmt.Errorf("ReplayStore.After: unknown session ID %q", sessionID)
		}
		st, ok := sess.streams[streamID]
		if !ok {
			return nil, fmt.Errorf("ReplayStore.After: unknown stream ID %q in session %q", streamID, sessionID)
		}
		start := index + 1 - st.first
		if start < 0 {
			return nil, fmt.Errorf("ReplayStore.After: index %d, stream ID %q, session %q: %w",
				index, streamID, sessionID, mcp.ErrEventsPurged)
		}
		if start >= len(st.data) {
			return nil, nil
		}
		return slices.Clone(st.data[start:]), nil
	}
	return func(yield func([]byte, error) bool) {
		ds, err := snapshot()
		if err != nil {
			yield(nil, err)
			return
		}
		for _, d := range ds {
			if !yield(d, nil) {
				return
			}
		}
	}
}

// SessionClosed implements mcp.EventStore. It forgets the session and all
// of its streams, freeing their bytes for other sessions.
func (s *ReplayStore) SessionClosed(_ context.Context, sessionID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[sessionID]
	if !ok {
		return nil
	}
	s.nBytes -= sess.size
	heap.Remove(&s.bySize, sess.heapIdx)
	delete(s.sessions, sessionID)
	return nil
}

// Bytes reports how many bytes of event data the store holds across all
// sessions, for metrics and tests.
func (s *ReplayStore) Bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nBytes
}

// SessionBytes reports how many bytes of event data the store holds for
// one session (zero if it holds none), for metrics and tests.
func (s *ReplayStore) SessionBytes(sessionID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.sessions[sessionID]; ok {
		return sess.size
	}
	return 0
}

// stream returns the session and stream, creating either if needed.
// It must be called with s.mu held.
func (s *ReplayStore) stream(sessionID, streamID string) (*replaySession, *replayStream) {
	sess, ok := s.sessions[sessionID]
	if !ok {
		sess = &replaySession{streams: make(map[string]*replayStream)}
		s.sessions[sessionID] = sess
		heap.Push(&s.bySize, sess)
	}
	st, ok := sess.streams[streamID]
	if !ok {
		st = &replayStream{}
		sess.streams[streamID] = st
	}
	return sess, st
}

// dropOldest drops the session's oldest event, across its streams. The
// stream's later events keep their indexes. The session must hold at
// least one event. It must be called with s.mu held.
func (s *ReplayStore) dropOldest(sess *replaySession) {
	st := sess.order[0]
	sess.order[0] = nil // let the stream go if it is the last reference
	sess.order = sess.order[1:]
	n := len(st.data[0])
	st.data[0] = nil // let the bytes go now; After copies under the lock
	st.data = st.data[1:]
	st.first++
	s.grow(sess, -n)
}

// grow adds delta bytes to the session's and the store's sizes and keeps
// the heap in order. It must be called with s.mu held.
func (s *ReplayStore) grow(sess *replaySession, delta int) {
	if delta == 0 {
		return
	}
	sess.size += delta
	s.nBytes += delta
	heap.Fix(&s.bySize, sess.heapIdx)
}

// sessionHeap orders sessions by the bytes they hold, most first, so the
// total cap can find the heaviest session without scanning them all.
type sessionHeap []*replaySession

func (h sessionHeap) Len() int           { return len(h) }
func (h sessionHeap) Less(i, j int) bool { return h[i].size > h[j].size }
func (h sessionHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *sessionHeap) Push(x any) {
	sess := x.(*replaySession)
	sess.heapIdx = len(*h)
	*h = append(*h, sess)
}
func (h *sessionHeap) Pop() any {
	old := *h
	sess := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	sess.heapIdx = -1
	return sess
}
