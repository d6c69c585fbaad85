package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// maxNameLen bounds principals, registration IDs, labels and provider event
// IDs, which become parts of keys; bbolt refuses keys over 32 KiB, and a
// refusal inside a shared transaction would cost the group a retry.
const maxNameLen = 1024

// Append implements store.Store. An append to a registration that is
// marked deleted fails with store.ErrGone; one whose registration was never
// stored is accepted with the default TTL and attempt limit. The event is
// encoded and checked before it is queued, so that inside the shared
// transaction only the registration check can fail for this event alone.
func (s *boltStore) Append(ctx context.Context, e store.NewEvent) (store.AppendResult, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return store.AppendResult{}, fmt.Errorf("append event: %w", err)
	}
	defer s.gate.Leave()
	if err := checkNewEvent(e); err != nil {
		return store.AppendResult{}, fmt.Errorf("append event: %w", err)
	}
	rec, err := newEventRecord(e).marshal()
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("append event: %w", err)
	}
	group := groupKey(e.Label, e.RegistrationID)
	var dkey []byte
	if e.ProviderEventID != "" {
		dkey = dedupKey(e.RegistrationID, e.ProviderEventID)
	}

	var res store.AppendResult
	err = s.committer.do(ctx, func(tx *bbolt.Tx) error {
		var err error
		res, err = s.appendTx(tx, e, rec, group, dkey)
		return err
	})
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("append event: %w", err)
	}
	return res, nil
}

func checkNewEvent(e store.NewEvent) error {
	switch {
	case e.Principal == "":
		return errors.New("no principal")
	case e.RegistrationID == "":
		return errors.New("no registration id")
	case len(e.Principal) > maxNameLen, len(e.RegistrationID) > maxNameLen,
		len(e.Label) > maxNameLen, len(e.ProviderEventID) > maxNameLen:
		return fmt.Errorf("principal, registration id, label or provider event id longer than %d bytes", maxNameLen)
	case !json.Valid(e.Payload):
		return errors.New("payload is not valid JSON")
	}
	return nil
}

func (s *boltStore) appendTx(tx *bbolt.Tx, e store.NewEvent, rec, group, dkey []byte) (store.AppendResult, error) {
	// Refusing a deleted registration here, in the same serial step as
	// DeleteRegistration, closes the race in which ingress looked the
	// registration up just before it was deleted: no pending event can
	// appear behind a deletion.
	reg, err := s.regs.get(tx, e.RegistrationID)
	if err == nil && reg.Deleted {
		return store.AppendResult{}, fmt.Errorf("registration %s: %w", e.RegistrationID, store.ErrGone)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.AppendResult{}, err
	}

	p, err := createPrincipal(tx, e.Principal)
	if err != nil {
		return store.AppendResult{}, err
	}
	dedup := p.Bucket([]byte(bucketDedup))
	if dkey != nil {
		if first := dedup.Get(dkey); first != nil {
			id, err := decodeID(first)
			if err != nil {
				return store.AppendResult{}, fmt.Errorf("dedup record: %w", err)
			}
			return store.AppendResult{ID: id, Duplicate: true}, nil
		}
	}

	id, err := s.nextID(tx)
	if err != nil {
		return store.AppendResult{}, err
	}
	key := id.Key()
	if err := p.Bucket([]byte(bucketEvents)).Put(key, rec); err != nil {
		return store.AppendResult{}, fmt.Errorf("put event: %w", err)
	}
	index, err := p.Bucket([]byte(bucketIndex)).CreateBucketIfNotExists(group)
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("create index: %w", err)
	}
	if err := index.Put(key, nil); err != nil {
		return store.AppendResult{}, fmt.Errorf("index event: %w", err)
	}
	pending, err := p.Bucket([]byte(bucketPending)).CreateBucketIfNotExists(group)
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("create queue: %w", err)
	}
	if err := pending.Put(key, leaseState{}.marshal()); err != nil {
		return store.AppendResult{}, fmt.Errorf("queue event: %w", err)
	}
	if err := addCount(p, group, 1); err != nil {
		return store.AppendResult{}, err
	}
	if dkey != nil {
		if err := dedup.Put(dkey, key); err != nil {
			return store.AppendResult{}, fmt.Errorf("put dedup record: %w", err)
		}
	}
	return store.AppendResult{ID: id}, nil
}

// nextID hands out the ID after the last one in the file: the clock's
// millisecond, or the last ID's if the clock is behind it (a clock stepping
// back must not reorder the log), with the sequence restarting at 0 in each
// new millisecond.
func (s *boltStore) nextID(tx *bbolt.Tx) (store.ID, error) {
	meta := tx.Bucket([]byte(bucketMeta))
	var last store.ID
	if b := meta.Get([]byte(keyLastID)); b != nil {
		var err error
		if last, err = decodeID(b); err != nil {
			return store.ID{}, fmt.Errorf("last id: %w", err)
		}
	}
	id := store.ID{MS: uint64(s.nowMS())}
	if id.MS <= last.MS {
		id = last.Next()
	}
	if err := meta.Put([]byte(keyLastID), id.Key()); err != nil {
		return store.ID{}, fmt.Errorf("put last id: %w", err)
	}
	return id, nil
}

// addCount adds delta to the pending counter of group.
func addCount(p *bbolt.Bucket, group []byte, delta int64) error {
	counts := p.Bucket([]byte(bucketCounts))
	n := int64(decodeUint64(counts.Get(group))) + delta
	if n <= 0 {
		if err := counts.Delete(group); err != nil {
			return fmt.Errorf("delete pending count: %w", err)
		}
		return nil
	}
	if err := counts.Put(group, encodeUint64(uint64(n))); err != nil {
		return fmt.Errorf("put pending count: %w", err)
	}
	return nil
}
