package bridge_test

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
)

// deadLetterLog is an Observer that keeps what DeadLettered is told.
type deadLetterLog struct {
	bridge.Observer // the rest are not under test; calling one panics
	mu              sync.Mutex
	leased          int
	dead            []store.Dropped
}

func (l *deadLetterLog) Leased(string, []store.Event, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leased++
}

func (l *deadLetterLog) DeadLettered(d store.Dropped) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dead = append(l.dead, d)
}

// TestLeaseReportsDeadLetters: when a poll finds an event whose last
// allowed lease ran out, the store dead-letters it, and the inbox tells the
// observer so the drop is counted, even when the poll hands nothing out.
func TestLeaseReportsDeadLetters(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hookgate.db"), bolt.Options{Now: clock, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	reg := store.Registration{ID: "wh_once", Principal: "p", Label: "once", Provider: "generic", Secrets: []string{"whsec_x"}, MaxAttempts: 1}
	if err := st.PutRegistration(ctx, reg); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := st.Append(ctx, store.NewEvent{Principal: "p", RegistrationID: reg.ID, Label: reg.Label, ReceivedAt: clock(), Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	obs := &deadLetterLog{}
	inbox := bridge.New(st, bridge.Options{Lease: time.Minute, Now: clock, Observer: obs})

	if res, err := inbox.Lease(ctx, "p", bridge.LeaseRequest{Limit: 10}); err != nil || len(res.Events) != 2 {
		t.Fatalf("first lease: %v, %+v", err, res)
	}
	if len(obs.dead) != 0 {
		t.Fatalf("dead letters reported with attempts left: %+v", obs.dead)
	}
	advance(time.Minute + time.Second)
	if res, err := inbox.Lease(ctx, "p", bridge.LeaseRequest{Limit: 10}); err != nil || len(res.Events) != 0 {
		t.Fatalf("lease after the last lease ran out: %v, %+v; want nothing handed out", err, res)
	}
	want := []store.Dropped{{Principal: "p", Label: "once", Events: 2}}
	if !slices.Equal(obs.dead, want) {
		t.Errorf("observer told of dead letters %+v, want %+v", obs.dead, want)
	}
}
