package clients

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// RecentIDs is how many recently completed event IDs a checkpoint keeps.
// It bounds how far back a restarted program can recognise its own work:
// an event completed but not yet acked when the program stopped, or
// completed ahead of an older one still in flight.
const RecentIDs = 1024

// Progress is what a checkpoint stores.
type Progress struct {
	// Last is the newest event ID such that every event the driver was
	// given up to it was completed. The cursor drivers (SSE, WebSocket,
	// MCP Events) resume after it; "" means nothing yet.
	Last string `json:"last"`
	// Recent lists the most recently completed event IDs, oldest first (at
	// most RecentIDs). Every driver skips these, acking them where the
	// path has acks, instead of handling them again.
	Recent []string `json:"recent"`
}

// Checkpoint stores a driver's Progress between runs. A driver loads it
// when Run starts and saves it after handlers complete, before it acks
// them. Implement it to keep progress somewhere else, such as the
// program's own database, in the same transaction as the handler's work.
type Checkpoint interface {
	// Load returns the saved progress; the zero Progress if none.
	Load(ctx context.Context) (Progress, error)
	// Save replaces the saved progress. It is never called concurrently.
	Save(ctx context.Context, p Progress) error
}

// FileCheckpoint keeps progress in the JSON file it names. Each save
// writes a new file, syncs it and renames it over the old one, so a crash
// leaves either the old or the new progress, never a torn file.
type FileCheckpoint string

// Load implements Checkpoint; a missing file is no progress yet.
func (f FileCheckpoint) Load(context.Context) (Progress, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return Progress{}, nil
	}
	if err != nil {
		return Progress{}, fmt.Errorf("load checkpoint: %w", err)
	}
	var p Progress
	if err := json.Unmarshal(b, &p); err != nil {
		return Progress{}, fmt.Errorf("load checkpoint %s: %w", f, err)
	}
	return p, nil
}

// Save implements Checkpoint.
func (f FileCheckpoint) Save(_ context.Context, p Progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	path := string(f)
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", path, err)
	}
	// The rename is durable only once the directory is synced.
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	return nil
}

// MemoryCheckpoint keeps progress in memory: it carries over between runs
// within one process, and nothing survives the process. The zero value is
// ready to use.
type MemoryCheckpoint struct {
	mu sync.Mutex
	p  Progress
}

// Load implements Checkpoint.
func (m *MemoryCheckpoint) Load(context.Context) (Progress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Progress{Last: m.p.Last, Recent: slices.Clone(m.p.Recent)}, nil
}

// Save implements Checkpoint.
func (m *MemoryCheckpoint) Save(_ context.Context, p Progress) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.p = Progress{Last: p.Last, Recent: slices.Clone(p.Recent)}
	return nil
}

// tracker is a run's progress in memory: which events are in flight, which
// recently completed, and the watermark below which all are done. It is
// safe for concurrent use.
type tracker struct {
	mu       sync.Mutex
	last     string
	lastID   eventID   // parsed last; zero when last is "" or not hookgate's
	inflight []eventID // given to the driver, not completed; sorted
	above    []eventID // completed after the watermark; sorted
	recent   []string  // FIFO of completed IDs, at most RecentIDs
	done     map[string]bool
	version  int // bumped on every change, so unchanged progress is not saved again
}

func newTracker(p Progress) *tracker {
	t := &tracker{last: p.Last, done: make(map[string]bool, RecentIDs)}
	t.lastID, _ = parseEventID(p.Last)
	for _, id := range p.Recent[max(0, len(p.Recent)-RecentIDs):] {
		t.remember(id)
	}
	return t
}

// completed reports whether id is among the recently completed events.
func (t *tracker) completed(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done[id]
}

// given records that the driver took id and will complete it or hand it
// back; until then the watermark stays below it.
func (t *tracker) given(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := parseEventID(id); ok {
		t.inflight = insertSorted(t.inflight, e)
	}
}

// complete records that the handler finished id.
func (t *tracker) complete(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.remember(id)
	t.version++
	e, ok := parseEventID(id)
	if !ok {
		return
	}
	if i, found := slices.BinarySearchFunc(t.inflight, e, eventID.compare); found {
		t.inflight = slices.Delete(t.inflight, i, i+1)
	}
	if e.compare(t.lastID) > 0 {
		t.above = insertSorted(t.above, e)
	}
	// Advance over every completion below the oldest event in flight.
	for len(t.above) > 0 && (len(t.inflight) == 0 || t.above[0].compare(t.inflight[0]) < 0) {
		t.lastID, t.last = t.above[0], t.above[0].text
		t.above = t.above[1:]
	}
}

func (t *tracker) remember(id string) {
	if t.done[id] {
		return
	}
	if len(t.recent) == RecentIDs {
		delete(t.done, t.recent[0])
		t.recent = t.recent[1:]
	}
	t.recent = append(t.recent, id)
	t.done[id] = true
}

// progress returns what to save and the version it reflects.
func (t *tracker) progress() (Progress, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Progress{Last: t.last, Recent: slices.Clone(t.recent)}, t.version
}

func insertSorted(list []eventID, e eventID) []eventID {
	i, found := slices.BinarySearchFunc(list, e, eventID.compare)
	if found {
		return list
	}
	return slices.Insert(list, i, e)
}
