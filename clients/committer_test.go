package clients

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAcker is a server's ack side as the committer sees it. Like hookgate,
// it refuses a whole batch when one of its IDs is unknown, naming that ID.
type fakeAcker struct {
	t       *testing.T
	mu      sync.Mutex
	unknown map[string]bool // IDs the server does not have
	down    int             // fail this many more calls without an answer, as with no session yet
	saved   Checkpoint      // when set, every acked ID must be in its saved progress
	acked   map[string]int  // ID → acks that succeeded
	tried   map[string]int  // ID → ack calls that included it
}

func newFakeAcker(t *testing.T, unknown ...string) *fakeAcker {
	f := &fakeAcker{t: t, unknown: map[string]bool{}, acked: map[string]int{}, tried: map[string]int{}}
	for _, id := range unknown {
		f.unknown[id] = true
	}
	return f
}

func (f *fakeAcker) ack(ctx context.Context, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.tried[id]++
	}
	if f.down > 0 {
		f.down--
		return errors.New("no session to ack on")
	}
	for _, id := range ids {
		if f.unknown[id] {
			return &refusalError{msg: fmt.Sprintf("call ack_event: tool error: ack events: event %s: not found", id)}
		}
	}
	if f.saved != nil {
		p, err := f.saved.Load(ctx)
		if err != nil {
			f.t.Errorf("load checkpoint: %v", err)
		}
		for _, id := range ids {
			if !slices.Contains(p.Recent, id) {
				f.t.Errorf("acked %s, which no saved checkpoint holds (saved: %v)", id, p.Recent)
			}
		}
	}
	for _, id := range ids {
		f.acked[id]++
	}
	return nil
}

func (f *fakeAcker) nack(context.Context, Event, time.Duration) (bool, error) { return false, nil }

// has reports whether every one of ids was acked.
func (f *fakeAcker) has(ids ...string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.acked[id] == 0 {
			return false
		}
	}
	return true
}

func (f *fakeAcker) triedCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tried[id]
}

// flakyCheckpoint is a MemoryCheckpoint whose first fail saves fail.
type flakyCheckpoint struct {
	MemoryCheckpoint
	mu       sync.Mutex
	fail     int // saves still to fail; < 0 fails them all
	attempts int
}

var errDiskFull = errors.New("disk full")

func (c *flakyCheckpoint) Save(ctx context.Context, p Progress) error {
	c.mu.Lock()
	c.attempts++
	failing := c.fail != 0
	if c.fail > 0 {
		c.fail--
	}
	c.mu.Unlock()
	if failing {
		return errDiskFull
	}
	return c.MemoryCheckpoint.Save(ctx, p)
}

func (c *flakyCheckpoint) tries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attempts
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fastRetry keeps the committer's retries quick in tests.
func fastRetry() Backoff { return Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond} }

// testCommitter starts a committer over a fresh tracker, logging to logs.
func testCommitter(t *testing.T, cp Checkpoint, src acker, p Progress) (*committer, *tracker, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{Checkpoint: cp, Logger: slog.New(slog.NewTextHandler(logs, nil))}.withDefaults()
	track := newTracker(p)
	return startCommitter(cfg, track, src, fastRetry()), track, logs
}

// complete records ids as handled, as the runner does.
func complete(c *committer, track *tracker, ids ...string) {
	for _, id := range ids {
		track.given(id)
		track.complete(id)
		c.add(id)
	}
}

// eventually polls cond against a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling against a deadline
	}
}

// TestCommitterDropsRefusedIDs: an ID the server refuses (compacted after
// retention, say) fails the whole batch it is in. The committer then acks
// the batch one by one, drops that ID with a log line, and every other ID
// of that batch and of later ones is still acked.
func TestCommitterDropsRefusedIDs(t *testing.T) {
	f := newFakeAcker(t, "2-0")
	c, track, logs := testCommitter(t, &MemoryCheckpoint{}, f, Progress{})
	complete(c, track, "1-0", "2-0", "3-0")
	eventually(t, "1-0 and 3-0 acked despite 2-0", func() bool { return f.has("1-0", "3-0") })
	complete(c, track, "4-0")
	eventually(t, "4-0 acked after 2-0 was refused", func() bool { return f.has("4-0") })
	if err := c.close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
	if f.has("2-0") {
		t.Fatal("the fake acked 2-0, which it does not have")
	}
	// Once in a batch, once alone; never again once dropped.
	if n := f.triedCount("2-0"); n > 2 {
		t.Errorf("2-0 was sent %d times: the refused ID was not dropped", n)
	}
	if out := logs.String(); !strings.Contains(out, "event=2-0") || !strings.Contains(out, "dropping") {
		t.Errorf("no log line for dropping 2-0:\n%s", out)
	}
}

// TestCommitterReackOutlastsMissingSession: the start-of-run re-ack keeps
// trying while there is no session to ack on (here for 8 tries, more than
// any fixed limit of a handful), and drops only the ID the server refuses.
func TestCommitterReackOutlastsMissingSession(t *testing.T) {
	f := newFakeAcker(t, "1-1")
	f.down = 8
	c, _, logs := testCommitter(t, &MemoryCheckpoint{}, f, Progress{})
	c.reackRecent([]string{"5-0", "1-1", "6-0"})
	eventually(t, "the re-ack of 5-0 and 6-0 done once a session is up", func() bool { return f.has("5-0", "6-0") })
	if err := c.close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
	if n := f.triedCount("1-1"); n > 8+2 {
		t.Errorf("1-1 was sent %d times: the refused ID was not dropped", n)
	}
	if out := logs.String(); !strings.Contains(out, "event=1-1") {
		t.Errorf("no log line for dropping 1-1:\n%s", out)
	}
}

// TestCommitterAcksOnlyWhatASavedCheckpointHolds: the checkpoint is saved
// before the ack is sent. While saves fail nothing new is acked (the fake
// checks each ack against the saved progress); once a save succeeds the
// acks follow; and a save still failing when the run ends is its error.
func TestCommitterAcksOnlyWhatASavedCheckpointHolds(t *testing.T) {
	t.Run("save recovers", func(t *testing.T) {
		cp := &flakyCheckpoint{fail: 2}
		f := newFakeAcker(t)
		f.saved = cp
		c, track, _ := testCommitter(t, cp, f, Progress{})
		complete(c, track, "1-0")
		eventually(t, "1-0 acked after the save was retried", func() bool { return f.has("1-0") })
		if n := cp.tries(); n < 3 {
			t.Errorf("acked after %d saves, want the third (the first two fail)", n)
		}
		if err := c.close(context.Background()); err != nil {
			t.Fatalf("close: %v", err)
		}
	})
	t.Run("save keeps failing", func(t *testing.T) {
		cp := &flakyCheckpoint{fail: -1}
		f := newFakeAcker(t)
		c, track, _ := testCommitter(t, cp, f, Progress{})
		complete(c, track, "1-0")
		eventually(t, "the save retried", func() bool { return cp.tries() >= 3 })
		err := c.close(context.Background())
		if !errors.Is(err, errDiskFull) {
			t.Errorf("close returned %v, want the save's error", err)
		}
		if n := f.triedCount("1-0"); n != 0 {
			t.Errorf("1-0 sent for ack %d times though no checkpoint holds it", n)
		}
	})
}
