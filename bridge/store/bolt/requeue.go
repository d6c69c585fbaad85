package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// Requeue implements store.Store. Like Ack, it checks every ID before
// changing anything. A requeued event gets a fresh lease state and loses its
// delivery count and dead-letter record, so the next lease counts 1 and the
// registration's attempt limit applies anew.
func (s *boltStore) Requeue(ctx context.Context, principalName string, ids []store.ID) (int, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return 0, fmt.Errorf("requeue events: %w", err)
	}
	defer s.gate.Leave()
	if len(ids) == 0 {
		return 0, nil
	}
	var n int
	err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
		var err error
		n, err = s.requeueTx(tx, principalName, ids)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("requeue events: %w", err)
	}
	return n, nil
}

func (s *boltStore) requeueTx(tx *bbolt.Tx, principalName string, ids []store.ID) (int, error) {
	p := principal(tx, principalName)
	if p == nil {
		return 0, fmt.Errorf("event %s: %w", ids[0], store.ErrNotFound)
	}
	events := p.Bucket([]byte(bucketEvents))
	recs := make([]eventRecord, len(ids))
	for i, id := range ids {
		b := events.Get(id.Key())
		if b == nil {
			return 0, fmt.Errorf("event %s: %w", id, store.ErrNotFound)
		}
		rec, err := decodeEvent(b)
		if err != nil {
			return 0, fmt.Errorf("event %s: %w", id, err)
		}
		recs[i] = rec
	}
	pending := p.Bucket([]byte(bucketPending))
	n := 0
	for i, id := range ids {
		rec := recs[i]
		reg, err := s.regs.get(tx, rec.registrationID)
		if err != nil && !isNotFound(err) {
			return 0, err
		}
		if err == nil && reg.Deleted {
			continue
		}
		group := groupKey(rec.label, rec.registrationID)
		key := id.Key()
		if q := pending.Bucket(group); q != nil && q.Get(key) != nil {
			continue // still pending: its lease stands
		}
		q, err := pending.CreateBucketIfNotExists(group)
		if err != nil {
			return 0, fmt.Errorf("create queue: %w", err)
		}
		if err := q.Put(key, leaseState{}.marshal()); err != nil {
			return 0, fmt.Errorf("queue event %s: %w", id, err)
		}
		if err := addCount(p, group, 1); err != nil {
			return 0, err
		}
		if err := p.Bucket([]byte(bucketDead)).Delete(key); err != nil {
			return 0, fmt.Errorf("drop dead letter %s: %w", id, err)
		}
		if err := p.Bucket([]byte(bucketDeliveries)).Delete(key); err != nil {
			return 0, fmt.Errorf("reset delivery count of %s: %w", id, err)
		}
		n++
	}
	return n, nil
}
