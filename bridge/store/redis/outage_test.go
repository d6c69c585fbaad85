package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/internal/redistest"
)

// prompt bounds how long a call may take to report that Redis is gone: the
// dial timeout, with room for a loaded machine.
const prompt = defaultDialTimeout + time.Second

// storeCalls calls every method of s once, for principal's registration r
// and event id.
func storeCalls(s store.Store, r store.Registration, id store.ID) map[string]func(ctx context.Context) error {
	p := r.Principal
	return map[string]func(ctx context.Context) error{
		"Append":      func(ctx context.Context) error { _, err := s.Append(ctx, newEvent(r, "evt_outage")); return err },
		"Read":        func(ctx context.Context) error { _, err := s.Read(ctx, p, store.Query{}); return err },
		"ReadPending": func(ctx context.Context) error { _, err := s.ReadPending(ctx, p, store.Query{}); return err },
		"Get":         func(ctx context.Context) error { _, err := s.Get(ctx, p, id); return err },
		"Lease":       func(ctx context.Context) error { _, err := s.Lease(ctx, p, store.LeaseQuery{}); return err },
		"Ack":         func(ctx context.Context) error { _, err := s.Ack(ctx, p, []store.ID{id}); return err },
		"Nack":        func(ctx context.Context) error { _, err := s.Nack(ctx, p, id, 0, ""); return err },
		"Pending":     func(ctx context.Context) error { _, err := s.Pending(ctx, p, ""); return err },
		"DeadLetters": func(ctx context.Context) error { _, err := s.DeadLetters(ctx, p, store.Query{}); return err },
		"PutRegistration": func(ctx context.Context) error {
			return s.PutRegistration(ctx, store.Registration{ID: "reg-other", Principal: p, Label: "other"})
		},
		"Registration":        func(ctx context.Context) error { _, err := s.Registration(ctx, r.ID); return err },
		"RegistrationByLabel": func(ctx context.Context) error { _, err := s.RegistrationByLabel(ctx, p, r.Label); return err },
		"Registrations":       func(ctx context.Context) error { _, err := s.Registrations(ctx, p); return err },
		"DeleteRegistration":  func(ctx context.Context) error { return s.DeleteRegistration(ctx, p, r.Label) },
		"PutSubscription": func(ctx context.Context) error {
			return s.PutSubscription(ctx, store.Subscription{ID: "s1", Principal: p})
		},
		"DeleteSubscription": func(ctx context.Context) error { return s.DeleteSubscription(ctx, p, "s1") },
		"Subscriptions":      func(ctx context.Context) error { _, err := s.Subscriptions(ctx); return err },
		"PutToken":           func(ctx context.Context) error { return s.PutToken(ctx, store.Token{Hash: "ffff", Principal: p}) },
		"TokenByHash":        func(ctx context.Context) error { _, err := s.TokenByHash(ctx, "ffff"); return err },
		"Compact":            func(ctx context.Context) error { _, err := s.Compact(ctx); return err },
		"Ping":               func(ctx context.Context) error { return s.Ping(ctx) },
	}
}

// wantUnavailable fails unless every call fails promptly with an error
// wrapping store.ErrUnavailable.
func wantUnavailable(t *testing.T, calls map[string]func(context.Context) error, within time.Duration) {
	t.Helper()
	for name, call := range calls {
		began := time.Now()
		err := call(t.Context())
		if elapsed := time.Since(began); elapsed > within {
			t.Errorf("%s took %v to fail, want at most %v", name, elapsed, within)
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: %v, want an error wrapping ErrUnavailable", name, err)
		}
	}
}

// waitUp polls Ping until the store works again. The client probes a Redis
// it could not reach about once a second.
func waitUp(t *testing.T, s store.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Ping(t.Context())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store still failing 10s after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisKilled: with Redis gone every method fails at once with
// ErrUnavailable (ingress answers 503, /readyz fails), and the same store
// works again when Redis is back.
func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv, Options{})
	r := register(t, s, "alice", "hooks")
	id := mustAppend(t, s, newEvent(r, "evt_1"))

	srv.Kill()
	wantUnavailable(t, storeCalls(s, r, id), prompt)

	srv.Restart()
	waitUp(t, s)
	r = register(t, s, "alice", "hooks")
	mustAppend(t, s, newEvent(r, "evt_1"))
}

// TestRedisHung: a Redis that accepts connections but answers nothing
// costs a call the read timeout, not forever.
func TestRedisHung(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = 200 * time.Millisecond
	s, err := Open(t.Context(), srv.URL()+"?read_timeout=200ms&write_timeout=200ms", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := register(t, s, "alice", "hooks")
	id := mustAppend(t, s, newEvent(r, "evt_1"))

	srv.Pause()
	calls := storeCalls(s, r, id)
	wantUnavailable(t, map[string]func(context.Context) error{
		"Append": calls["Append"], "Lease": calls["Lease"], "Read": calls["Read"], "Ping": calls["Ping"],
	}, timeout+time.Second)

	srv.Resume()
	waitUp(t, s)
	if _, err := s.Get(t.Context(), "alice", id); err != nil {
		t.Errorf("Get after Redis resumed: %v", err)
	}
}

// TestRestartWithAOF: Redis killed and restarted with its append-only file
// has every acknowledged change, and the store object that saw it die goes
// on where it left off.
func TestRestartWithAOF(t *testing.T) {
	srv := redistest.Start(t, redistest.AppendOnly())
	s := openStore(t, srv, Options{})
	ctx := t.Context()
	r := register(t, s, "alice", "hooks")
	var ids []store.ID
	for _, pid := range []string{"evt_1", "evt_2", "evt_3"} {
		ids = append(ids, mustAppend(t, s, newEvent(r, pid)))
	}
	if res, err := s.Lease(ctx, "alice", store.LeaseQuery{Limit: 1, For: time.Hour}); err != nil || len(res.Events) != 1 {
		t.Fatalf("Lease = %+v, %v; want one event", res, err)
	}

	srv.Kill()
	srv.Restart()
	waitUp(t, s)

	events, err := s.Read(ctx, "alice", store.Query{})
	if err != nil || len(events) != 3 || events[0].ID != ids[0] || events[0].DeliveryCount != 1 {
		t.Fatalf("Read after restart = %+v, %v; want the three events, the first leased once", events, err)
	}
	if res, err := s.Append(ctx, newEvent(r, "evt_2")); err != nil || !res.Duplicate || res.ID != ids[1] {
		t.Errorf("Append of a stored provider ID after restart = %+v, %v; want Duplicate of %s", res, err, ids[1])
	}
	next := mustAppend(t, s, newEvent(r, "evt_4"))
	if next.Compare(ids[2]) <= 0 {
		t.Errorf("ID after restart %s is not after %s", next, ids[2])
	}
	res, err := s.Lease(ctx, "alice", store.LeaseQuery{})
	if err != nil {
		t.Fatal(err)
	}
	// The first event is still leased: not handed out, nor counted in
	// Remaining, but pending.
	if got := eventIDs(res.Events); len(got) != 3 || got[0] != ids[1] || got[2] != next || res.Remaining != 0 {
		t.Errorf("Lease after restart = %v (remaining %d), want %v, %v, %v (remaining 0) with the first still leased",
			got, res.Remaining, ids[1], ids[2], next)
	}
	if n, err := s.Pending(ctx, "alice", ""); err != nil || n != 4 {
		t.Errorf("Pending after restart = %d, %v; want 4", n, err)
	}
	if _, err := s.Registration(ctx, r.ID); err != nil {
		t.Errorf("Registration after restart: %v", err)
	}
}

// TestRestartWithoutPersistence: Redis restarted empty (no AOF, no RDB)
// loses everything, Lua script cache included, and the same store object
// works for new registrations and events without a restart of its own.
func TestRestartWithoutPersistence(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv, Options{})
	ctx := t.Context()
	r := register(t, s, "alice", "hooks")
	mustAppend(t, s, newEvent(r, "evt_1"))
	if _, err := s.Lease(ctx, "alice", store.LeaseQuery{}); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	srv.Restart()
	waitUp(t, s)

	if events, err := s.Read(ctx, "alice", store.Query{}); err != nil || len(events) != 0 {
		t.Errorf("Read after an empty restart = %v, %v; want nothing", eventIDs(events), err)
	}
	if _, err := s.Registration(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Registration after an empty restart: %v, want ErrNotFound", err)
	}
	r = register(t, s, "alice", "hooks")
	res, err := s.Append(ctx, newEvent(r, "evt_1"))
	if err != nil || res.Duplicate {
		t.Fatalf("Append after an empty restart = %+v, %v; want a new event", res, err)
	}
	lease, err := s.Lease(ctx, "alice", store.LeaseQuery{})
	if err != nil || len(lease.Events) != 1 || lease.Events[0].ID != res.ID || lease.Events[0].DeliveryCount != 1 {
		t.Fatalf("Lease after an empty restart = %+v, %v; want %s, first delivery", lease, err, res.ID)
	}
	if n, err := s.Ack(ctx, "alice", []store.ID{res.ID}); err != nil || n != 1 {
		t.Errorf("Ack = %d, %v; want 1", n, err)
	}
	if n, err := s.Pending(ctx, "alice", ""); err != nil || n != 0 {
		t.Errorf("Pending = %d, %v; want 0", n, err)
	}
	if _, err := s.Compact(ctx); err != nil {
		t.Errorf("Compact: %v", err)
	}
}

// TestWaitReplicas: with WaitReplicas an append returns only once the
// replica has the event; with the replica gone it fails with
// ErrUnavailable after WaitTimeout instead of claiming durability; and the
// provider's retry, a duplicate, succeeds once the replica is back and has
// the first copy.
func TestWaitReplicas(t *testing.T) {
	// No wait for more replicas before a full sync, which by default
	// costs five seconds each time the replica connects.
	primary := redistest.Start(t, redistest.Args("--repl-diskless-sync-delay", "0"))
	replica := redistest.Start(t, redistest.ReplicaOf(primary))
	waitReplicaLink(t, primary, replica)
	const timeout = 500 * time.Millisecond
	s := openStore(t, primary, Options{WaitReplicas: 1, WaitTimeout: timeout})
	ctx := t.Context()
	r := register(t, s, "alice", "hooks")
	log := mustKeys(t, "").log("alice")
	onReplica := rawClient(t, replica)

	first := mustAppend(t, s, newEvent(r, "evt_1"))
	if got, err := onReplica.XRange(ctx, log, first.String(), first.String()).Result(); err != nil || len(got) != 1 {
		t.Fatalf("event %s on the replica right after Append = %v, %v; want it there", first, got, err)
	}

	replica.Kill()
	began := time.Now()
	_, err := s.Append(ctx, newEvent(r, "evt_2"))
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "acknowledged by 0 of 1 replicas") {
		t.Errorf("Append without the replica: %v, want ErrUnavailable saying 0 of 1 replicas acknowledged", err)
	}
	if elapsed := time.Since(began); elapsed < timeout || elapsed > timeout+prompt {
		t.Errorf("Append without the replica took %v, want about %v", elapsed, timeout)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping without the replica: %v, want ErrUnavailable", err)
	}

	replica.Restart()
	waitReplicaLink(t, primary, replica)
	res, err := s.Append(ctx, newEvent(r, "evt_2"))
	if err != nil || !res.Duplicate {
		t.Fatalf("retried Append with the replica back = %+v, %v; want a duplicate", res, err)
	}
	if got, err := onReplica.XRange(ctx, log, res.ID.String(), res.ID.String()).Result(); err != nil || len(got) != 1 {
		t.Errorf("event %s on the replica after the retry = %v, %v; want it there", res.ID, got, err)
	}
}

// TestWaitWithoutReplica: asking for a replica that does not exist fails
// every write clearly rather than hanging or claiming durability.
func TestWaitWithoutReplica(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv, Options{WaitReplicas: 1, WaitTimeout: 100 * time.Millisecond})
	ctx := t.Context()
	err := s.PutRegistration(ctx, store.Registration{ID: "reg-1", Principal: "alice", Label: "hooks"})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Errorf("PutRegistration with no replica: %v, want ErrUnavailable saying 0 of 1 replicas", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping with no replica: %v, want ErrUnavailable", err)
	}
	if _, err := s.Read(ctx, "alice", store.Query{}); err != nil {
		t.Errorf("Read with no replica: %v, want reads to work", err)
	}
}

// waitReplicaLink waits until replica has synced with primary and
// acknowledges writes: right after a sync its first acknowledgement can
// take a second, which would fail a short WaitTimeout.
func waitReplicaLink(t *testing.T, primary, replica *redistest.Server) {
	t.Helper()
	p, r := rawClient(t, primary), rawClient(t, replica)
	deadline := time.Now().Add(10 * time.Second)
	for {
		pi, _ := p.Info(t.Context(), "replication").Result()
		ri, _ := r.Info(t.Context(), "replication").Result()
		if strings.Contains(pi, "state=online") && strings.Contains(ri, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not sync within 10s:\n%s\n%s", pi, ri)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.Set(t.Context(), "warm-up", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Wait(t.Context(), 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("replica does not acknowledge writes: WAIT = %d, %v", n, err)
	}
}
