package bolt

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// compactChunk bounds the events one compaction transaction deletes, so
// that appends queued behind it wait for a short commit, not for the whole
// backlog.
const compactChunk = 2000

// Compact implements store.Store. Each group's index is walked from its
// oldest event and the walk stops at the first event still within its
// registration's TTL, so the cost follows what is deleted, not the size of
// the log.
func (s *boltStore) Compact(ctx context.Context) (int, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return 0, fmt.Errorf("compact: %w", err)
	}
	defer s.gate.Leave()
	now := s.nowMS()
	total := 0
	for {
		var n int
		err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
			var err error
			n, err = compactTx(tx, now, compactChunk)
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("compact: %w", err)
		}
		if n < compactChunk {
			break
		}
	}
	if total > 0 {
		s.log.Info("store compacted", "deleted", total)
	}
	return total, nil
}

// compactTx deletes up to budget expired events and returns how many it
// deleted.
func compactTx(tx *bbolt.Tx, now int64, budget int) (int, error) {
	cutoffs := map[string]uint64{}
	cutoff := func(regID string) (uint64, error) {
		if c, ok := cutoffs[regID]; ok {
			return c, nil
		}
		reg, err := registrationTx(tx, regID)
		if err != nil && !isNotFound(err) {
			return 0, err
		}
		ttl := reg.TTL
		if ttl <= 0 {
			ttl = store.DefaultTTL
		}
		c := uint64(max(now-ttl.Milliseconds(), 0))
		cutoffs[regID] = c
		return c, nil
	}

	deleted := 0
	principals := tx.Bucket([]byte(bucketPrincipals))
	var names [][]byte
	if err := principals.ForEachBucket(func(name []byte) error {
		names = append(names, bytes.Clone(name))
		return nil
	}); err != nil {
		return 0, err
	}
	for _, name := range names {
		p := principals.Bucket(name)
		index := p.Bucket([]byte(bucketIndex))
		var groups [][]byte
		if err := index.ForEachBucket(func(group []byte) error {
			groups = append(groups, bytes.Clone(group))
			return nil
		}); err != nil {
			return deleted, err
		}
		for _, group := range groups {
			if deleted >= budget {
				return deleted, nil
			}
			_, regID, err := splitGroupKey(group)
			if err != nil {
				return deleted, err
			}
			c, err := cutoff(regID)
			if err != nil {
				return deleted, err
			}
			n, err := compactGroup(p, group, c, budget-deleted)
			deleted += n
			if err != nil {
				return deleted, fmt.Errorf("principal %q: %w", name, err)
			}
		}
	}
	return deleted, nil
}

// compactGroup deletes up to budget of group's events whose IDs are before
// cutoffMS, oldest first, and drops the group once it is empty.
func compactGroup(p *bbolt.Bucket, group []byte, cutoffMS uint64, budget int) (int, error) {
	index := p.Bucket([]byte(bucketIndex)).Bucket(group)
	var expired [][]byte
	c := index.Cursor()
	for k, _ := c.First(); k != nil && len(expired) < budget; k, _ = c.Next() {
		id, err := decodeID(k)
		if err != nil {
			return 0, err
		}
		if id.MS >= cutoffMS {
			break
		}
		expired = append(expired, bytes.Clone(k))
	}
	for i, key := range expired {
		if err := deleteEvent(p, group, key); err != nil {
			return i, err
		}
	}
	if k, _ := index.Cursor().First(); k == nil {
		if err := dropGroup(p, group); err != nil {
			return len(expired), err
		}
	}
	return len(expired), nil
}

// deleteEvent removes every trace of the event under key.
func deleteEvent(p *bbolt.Bucket, group, key []byte) error {
	events := p.Bucket([]byte(bucketEvents))
	if b := events.Get(key); b != nil {
		rec, err := decodeEvent(b)
		if err != nil {
			return err
		}
		if rec.providerEventID != "" {
			dedup := p.Bucket([]byte(bucketDedup))
			dkey := dedupKey(rec.registrationID, rec.providerEventID)
			if bytes.Equal(dedup.Get(dkey), key) {
				if err := dedup.Delete(dkey); err != nil {
					return fmt.Errorf("delete dedup record: %w", err)
				}
			}
		}
	}
	if q := p.Bucket([]byte(bucketPending)).Bucket(group); q != nil && q.Get(key) != nil {
		if err := q.Delete(key); err != nil {
			return fmt.Errorf("dequeue expired event: %w", err)
		}
		if err := addCount(p, group, -1); err != nil {
			return err
		}
	}
	for _, sub := range [...]string{bucketEvents, bucketDeliveries, bucketDead} {
		if err := p.Bucket([]byte(sub)).Delete(key); err != nil {
			return fmt.Errorf("delete expired event from %s: %w", sub, err)
		}
	}
	if err := p.Bucket([]byte(bucketIndex)).Bucket(group).Delete(key); err != nil {
		return fmt.Errorf("unindex expired event: %w", err)
	}
	return nil
}

// dropGroup removes an emptied group's index, queue and counter.
func dropGroup(p *bbolt.Bucket, group []byte) error {
	for _, sub := range [...]string{bucketIndex, bucketPending} {
		if p.Bucket([]byte(sub)).Bucket(group) == nil {
			continue
		}
		if err := p.Bucket([]byte(sub)).DeleteBucket(group); err != nil {
			return fmt.Errorf("drop %s group: %w", sub, err)
		}
	}
	if err := p.Bucket([]byte(bucketCounts)).Delete(group); err != nil {
		return fmt.Errorf("drop pending count: %w", err)
	}
	return nil
}
