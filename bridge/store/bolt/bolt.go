// Package bolt is hookgate's embedded event store: one bbolt file on one
// machine, so the main job needs no server to install. It implements
// store.Store and passes the storetest conformance suite.
//
// # Durability and group commit
//
// Every mutation is committed and fsynced before its call returns. Writes go
// through a single committer goroutine that folds everything queued while the
// previous commit was in flight into one transaction: an idle store pays one
// fsync per append with no added delay, and a loaded one pays one fsync per
// group, so throughput rises with load.
//
// # Layout
//
// Top-level buckets:
//
//	meta           "lastid" → the last event ID handed out (16-byte key form)
//	               "schema" → layout version
//	registrations  registration ID → JSON
//	tokens         token hash → JSON
//	subscriptions  principal, NUL, subscription ID → JSON
//	principals     principal → bucket:
//	    events      event ID key → event record (see eventRecord)
//	    index       group → bucket of event ID keys (every retained event)
//	    pending     group → bucket of event ID key → lease state
//	    counts      group → number of pending events (big-endian uint64)
//	    deliveries  event ID key → leases so far (once leased at least once)
//	    dead        event ID key → dead-letter record
//	    dedup       registration + providerEventId → event ID key
//	    labels      label → ID of the live registration holding it
//
// A group is one (label, registration) pair (see groupKey). Keeping the index
// and the lease queue per group means that a label filter touches only that
// label's events, compaction walks each registration from its oldest event
// and stops at the first one it keeps, and Lease scans only pending events.
// Event IDs come from one counter for the whole file, which makes them
// strictly increasing per principal as the contract requires.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/hookgate/hookgate/bridge/store"
)

// Options configures Open.
type Options struct {
	// Now is the clock for ID assignment, leases and retention; nil means
	// time.Now. Tests set it to drive time by hand.
	Now func() time.Time
	// NoSync skips fsync on commit. A crash may then lose or corrupt
	// committed events, so it is only for tests and benchmarks.
	NoSync bool
	// Logger receives commit failures and compaction summaries; nil
	// discards them.
	Logger *slog.Logger
}

// lockTimeout bounds the wait for the file lock, so that a second process
// opening a store that is in use fails promptly instead of hanging.
const lockTimeout = time.Second

// schemaVersion is the layout described in the package comment.
const schemaVersion = "1"

// Bucket and key names. They are constants, converted where used, so the
// package holds no mutable state.
const (
	bucketMeta          = "meta"
	bucketRegistrations = "registrations"
	bucketTokens        = "tokens"
	bucketSubscriptions = "subscriptions"
	bucketPrincipals    = "principals"

	bucketEvents     = "events"
	bucketIndex      = "index"
	bucketPending    = "pending"
	bucketCounts     = "counts"
	bucketDeliveries = "deliveries"
	bucketDead       = "dead"
	bucketDedup      = "dedup"
	bucketLabels     = "labels"

	keyLastID = "lastid"
	keySchema = "schema"
)

var _ store.Store = (*boltStore)(nil)

// boltStore implements store.Store on one bbolt file.
type boltStore struct {
	db        *bbolt.DB
	now       func() time.Time
	log       *slog.Logger
	committer *committer
	regs      regCache
	claims    claims

	// gate lets Close wait for the calls in flight.
	gate store.Gate
}

// Open opens the store in the file at path, creating it if needed. Only one
// process may have a file open: a second Open fails after about a second
// with an error wrapping store.ErrUnavailable that says the store is in use.
func Open(path string, opts Options) (store.Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: lockTimeout,
		NoSync:  opts.NoSync,
		// As etcd does: the freelist is rebuilt by a scan at Open instead
		// of being written by every commit, and the committer makes many
		// small commits at low load. The hash-map freelist keeps
		// allocation fast as retention churns pages.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: store in use by another process: %w", path, store.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.Update(initLayout); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &boltStore{db: db, now: opts.Now, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.committer = startCommitter(db, s.log)
	return s, nil
}

func initLayout(tx *bbolt.Tx) error {
	for _, name := range [...]string{bucketMeta, bucketRegistrations, bucketTokens, bucketPrincipals, bucketSubscriptions} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket([]byte(bucketMeta))
	switch v := meta.Get([]byte(keySchema)); {
	case v == nil:
		return meta.Put([]byte(keySchema), []byte(schemaVersion))
	case string(v) != schemaVersion:
		return fmt.Errorf("store layout version %q, this build reads %q", v, schemaVersion)
	}
	return nil
}

// Close waits for calls in flight, commits what they queued and closes the
// file. Calls after Close fail with store.ErrUnavailable; closing twice is
// not an error.
func (s *boltStore) Close() error {
	if !s.gate.Close() {
		return nil
	}
	s.committer.stop()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Ping reports whether the file is open and the last commit succeeded, so
// that readiness turns false when the disk refuses writes.
func (s *boltStore) Ping(ctx context.Context) error {
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	defer s.gate.Leave()
	if err := s.committer.lastError(); err != nil {
		return fmt.Errorf("ping store: last commit failed: %w", err)
	}
	if err := s.db.View(func(*bbolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("ping store: %w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// nowMS is the clock in unix milliseconds, never negative.
func (s *boltStore) nowMS() int64 {
	return max(s.now().UnixMilli(), 0)
}

// principal returns the principal's bucket, or nil if it has none.
func principal(tx *bbolt.Tx, name string) *bbolt.Bucket {
	if name == "" {
		return nil
	}
	return tx.Bucket([]byte(bucketPrincipals)).Bucket([]byte(name))
}

// createPrincipal returns the principal's bucket, creating its layout on
// first use.
func createPrincipal(tx *bbolt.Tx, name string) (*bbolt.Bucket, error) {
	p, err := tx.Bucket([]byte(bucketPrincipals)).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("create principal %q: %w", name, err)
	}
	if p.Bucket([]byte(bucketEvents)) != nil {
		return p, nil
	}
	for _, sub := range [...]string{
		bucketEvents, bucketIndex, bucketPending, bucketCounts,
		bucketDeliveries, bucketDead, bucketDedup, bucketLabels,
	} {
		if _, err := p.CreateBucketIfNotExists([]byte(sub)); err != nil {
			return nil, fmt.Errorf("create principal %q: %w", name, err)
		}
	}
	return p, nil
}
