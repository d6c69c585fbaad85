package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/storetest"
	"github.com/hookgate/hookgate/internal/redistest"
)

// TestConformance runs the shared suite against one real redis-server that
// fsyncs every write, each subtest under a key prefix of its own. Reopen
// opens a new client on the same prefix, as a restarted hookgate would.
func TestConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.AppendOnly())
	var (
		mu       sync.Mutex
		n        int
		prefixes = map[store.Store]string{}
	)
	open := func(t *testing.T, prefix string, clock *storetest.Clock) store.Store {
		t.Helper()
		s := openStore(t, srv, Options{Now: clock.Now, KeyPrefix: prefix})
		mu.Lock()
		defer mu.Unlock()
		prefixes[s] = prefix
		return s
	}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, clock *storetest.Clock) store.Store {
			mu.Lock()
			n++
			prefix := fmt.Sprintf("conformance-%d:", n)
			mu.Unlock()
			return open(t, prefix, clock)
		},
		Reopen: func(t *testing.T, s store.Store, clock *storetest.Clock) store.Store {
			mu.Lock()
			prefix := prefixes[s]
			delete(prefixes, s)
			mu.Unlock()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, prefix, clock)
		},
	})
}

// openStore opens a store on srv; the caller closes it, or the test's
// cleanup does.
func openStore(t testing.TB, srv *redistest.Server, opts Options) store.Store {
	t.Helper()
	s, err := Open(context.Background(), srv.URL(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a plain client on srv, for looking behind the store.
func rawClient(t testing.TB, srv *redistest.Server) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func mustKeys(t testing.TB, prefix string) keys {
	t.Helper()
	k, err := newKeys(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func eventIDs(events []store.Event) []store.ID {
	out := make([]store.ID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func register(t testing.TB, s store.Store, principal, label string) store.Registration {
	t.Helper()
	r := store.Registration{
		ID:        "reg-" + principal + "-" + label,
		Principal: principal,
		Label:     label,
		Provider:  "generic",
		Secrets:   []string{"whsec_test"},
		CreatedAt: time.Now(),
	}
	if err := s.PutRegistration(context.Background(), r); err != nil {
		t.Fatalf("PutRegistration: %v", err)
	}
	return r
}

func newEvent(r store.Registration, providerEventID string) store.NewEvent {
	return store.NewEvent{
		Principal:       r.Principal,
		RegistrationID:  r.ID,
		Label:           r.Label,
		Source:          "generic",
		Type:            "test.event",
		ProviderEventID: providerEventID,
		ReceivedAt:      time.Now(),
		Verified:        true,
		Payload:         json.RawMessage(`{"id":"evt_1","type":"test.event","data":{"object":{"amount":1999,"currency":"usd"}}}`),
	}
}

func mustAppend(t testing.TB, s store.Store, ne store.NewEvent) store.ID {
	t.Helper()
	res, err := s.Append(context.Background(), ne)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res.ID
}

func TestAppendToDeletedRegistration(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv, Options{})
	ctx := t.Context()
	r := register(t, s, "alice", "hooks")
	if err := s.DeleteRegistration(ctx, "alice", "hooks"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx, newEvent(r, ""))
	if !errors.Is(err, store.ErrGone) {
		t.Errorf("Append to a deleted registration: %v, want ErrGone", err)
	}
	if n, err := s.Pending(ctx, "alice", ""); err != nil || n != 0 {
		t.Errorf("Pending = %d, %v; want 0", n, err)
	}
}

func TestBadInput(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv, Options{})
	ctx := t.Context()
	r := register(t, s, "alice", "hooks")
	e := newEvent(r, "")
	e.Payload = json.RawMessage(`{"unterminated":`)
	if _, err := s.Append(ctx, e); err == nil {
		t.Error("Append of a payload that is not JSON succeeded")
	}
	other := r
	other.Principal = "bob"
	if err := s.PutRegistration(ctx, other); err == nil {
		t.Error("PutRegistration moving a registration to another principal succeeded")
	}
	if _, err := s.Read(ctx, "alice", store.Query{After: store.ID{MS: ^uint64(0), Seq: ^uint64(0)}}); err != nil {
		t.Errorf("Read after the last possible ID: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := Open(ctx, "http://localhost:6379", Options{}); err == nil {
		t.Error("Open of an http URL succeeded")
	}
	if _, err := Open(ctx, "redis://127.0.0.1:1", Options{KeyPrefix: "a{b}:"}); err == nil {
		t.Error("Open with braces in the key prefix succeeded")
	}
	_, err := Open(ctx, "redis://127.0.0.1:1/0", Options{})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open of a port nobody listens on: %v, want ErrUnavailable", err)
	}
}

// TestKeyLayout checks what Redis Cluster needs: every key of a principal
// carries the principal's hash tag, escaped where the name has braces, and
// every other key is one of the few global ones.
func TestKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	const prefix = "layout:"
	s := openStore(t, srv, Options{KeyPrefix: prefix})
	ctx := t.Context()
	principals := map[string]string{"alice": "alice", "we{i}rd%": "we%7Bi%7Drd%25"}
	for p := range principals {
		r := register(t, s, p, "hooks")
		id := mustAppend(t, s, newEvent(r, "evt_1"))
		if _, err := s.Lease(ctx, p, store.LeaseQuery{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Nack(ctx, p, id, time.Minute, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutSubscription(ctx, store.Subscription{ID: "s", Principal: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutToken(ctx, store.Token{Hash: "abc", Principal: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	global := map[string]bool{}
	for _, name := range []string{keyRegistrations, keyTokens, keySubscriptions, keyPrincipals, keyPing} {
		global[prefix+name] = true
	}
	tags := map[string]bool{}
	for _, tag := range principals {
		tags[tag] = true
	}
	seen := map[string]int{}
	keys, err := rawClient(t, srv).Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if global[k] {
			continue
		}
		rest, ok := strings.CutPrefix(k, prefix+"{")
		tag, _, closed := strings.Cut(rest, "}")
		if !ok || !closed || !tags[tag] {
			t.Errorf("key %q is neither global nor tagged with a principal", k)
			continue
		}
		seen[tag]++
	}
	for p, tag := range principals {
		if seen[tag] < 5 {
			t.Errorf("principal %q: %d keys tagged {%s}, want its log, queues and indexes", p, seen[tag], tag)
		}
	}
}

// TestCloseWithCallsInFlight: Close waits for calls in flight, and calls
// after it fail with ErrUnavailable.
func TestCloseWithCallsInFlight(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv, Options{})
	r := register(t, s, "alice", "hooks")
	ctx := t.Context()
	const n = 100
	var wg sync.WaitGroup
	started := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			if i == n/2 {
				close(started)
			}
			_, err := s.Append(ctx, newEvent(r, fmt.Sprint(i)))
			if err != nil && !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("Append racing Close: %v, want success or ErrUnavailable", err)
			}
		})
	}
	<-started
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if _, err := s.Pending(ctx, "alice", ""); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Pending after Close: %v, want ErrUnavailable", err)
	}
}

// TestLastIDLost: if the key holding the last ID is lost beside its stream
// (deleted by hand, say), the next ID still follows the stream's last one,
// even with the clock behind it, instead of XADD refusing every append.
func TestLastIDLost(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock(time.Date(2026, 11, 25, 6, 40, 0, 0, time.UTC))
	s := openStore(t, srv, Options{Now: clock.Now})
	r := register(t, s, "alice", "hooks")
	first := mustAppend(t, s, newEvent(r, ""))
	if err := rawClient(t, srv).Del(t.Context(), mustKeys(t, "").principal("alice")+"last").Err(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(-time.Hour)
	if next := mustAppend(t, s, newEvent(r, "")); next != first.Next() {
		t.Errorf("ID after losing the last-ID key = %s, want %s", next, first.Next())
	}
}

func TestOpenHidesPassword(t *testing.T) {
	_, err := Open(t.Context(), "redis://user:s3cret@127.0.0.1:notaport/0", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open of a bad URL: %v, want an error that does not show the password", err)
	}
}
