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
func (s *boltStore) Compact(ctx context.Context) (store.CompactResult, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return store.CompactResult{}, fmt.Errorf("compact: %w", err)
	}
	defer s.gate.Leave()
	now := s.nowMS()
	var total store.CompactResult
	for {
		// The committer may run the function more than once (a neighbour
		// in its batch failed), so it starts its counts afresh each time.
		var chunk store.CompactResult
		err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
			var err error
			chunk, err = compactTx(tx, now, compactChunk)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("compact: %w", err)
		}
		total.Deleted += chunk.Deleted
		for _, d := range chunk.Unacked {
			total.Unacked = store.CountDropped(total.Unacked, d.Principal, d.Label, d.Events)
		}
		if chunk.Deleted < compactChunk {
			break
		}
	}
	if total.Deleted > 0 {
		s.log.Info("store compacted", "deleted", total.Deleted)
	}
	return total, nil
}

// compactTx deletes up to budget expired events and reports how many it
// deleted and, by principal and label, how many of them were pending.
func compactTx(tx *bbolt.Tx, now int64, budget int) (store.CompactResult, error) {
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

	var res store.CompactResult
	principals := tx.Bucket([]byte(bucketPrincipals))
	var names [][]byte
	if err := principals.ForEachBucket(func(name []byte) error {
		names = append(names, bytes.Clone(name))
		return nil
	}); err != nil {
		return res, err
	}
	for _, name := range names {
		p := principals.Bucket(name)
		index := p.Bucket([]byte(bucketIndex))
		var groups [][]byte
		if err := index.ForEachBucket(func(group []byte) error {
			groups = append(groups, bytes.Clone(group))
			return nil
		}); err != nil {
			return res, err
		}
		for _, group := range groups {
			if res.Deleted >= budget {
				return res, nil
			}
			label, regID, err := splitGroupKey(group)
			if err != nil {
				return res, err
			}
			c, err := cutoff(regID)
			if err != nil {
				return res, err
			}
			n, unacked, err := compactGroup(p, group, c, budget-res.Deleted)
			res.Deleted += n
			res.Unacked = store.CountDropped(res.Unacked, string(name), label, unacked)
			if err != nil {
				return res, fmt.Errorf("principal %q: %w", name, err)
			}
		}
	}
	return res, nil
}

// compactGroup deletes up to budget of group's events whose IDs are before
// cutoffMS, oldest first, and drops the group once it is empty. It returns
// how many it deleted and how many of those were still pending.
func compactGroup(p *bbolt.Bucket, group []byte, cutoffMS uint64, budget int) (deleted, unacked int, err error) {
	index := p.Bucket([]byte(bucketIndex)).Bucket(group)
	var expired [][]byte
	c := index.Cursor()
	for k, _ := c.First(); k != nil && len(expired) < budget; k, _ = c.Next() {
		id, err := decodeID(k)
		if err != nil {
			return 0, 0, err
		}
		if id.MS >= cutoffMS {
			break
		}
		expired = append(expired, bytes.Clone(k))
	}
	for _, key := range expired {
		pending, err := deleteEvent(p, group, key)
		if err != nil {
			return deleted, unacked, err
		}
		deleted++
		if pending {
			unacked++
		}
	}
	if k, _ := index.Cursor().First(); k == nil {
		if err := dropGroup(p, group); err != nil {
			return deleted, unacked, err
		}
	}
	return deleted, unacked, nil
}

// deleteEvent removes every trace of the event under key. pending reports
// that it was still in the queue: neither acked nor dead-lettered.
func deleteEvent(p *bbolt.Bucket, group, key []byte) (pending bool, err error) {
	events := p.Bucket([]byte(bucketEvents))
	if b := events.Get(key); b != nil {
		rec, err := decodeEvent(b)
		if err != nil {
			return false, err
		}
		if rec.providerEventID != "" {
			dedup := p.Bucket([]byte(bucketDedup))
			dkey := dedupKey(rec.registrationID, rec.providerEventID)
			if bytes.Equal(dedup.Get(dkey), key) {
				if err := dedup.Delete(dkey); err != nil {
					return false, fmt.Errorf("delete dedup record: %w", err)
				}
			}
		}
	}
	if q := p.Bucket([]byte(bucketPending)).Bucket(group); q != nil && q.Get(key) != nil {
		if err := q.Delete(key); err != nil {
			return false, fmt.Errorf("dequeue expired event: %w", err)
		}
		if err := addCount(p, group, -1); err != nil {
			return false, err
		}
		pending = true
	}
	for _, sub := range [...]string{bucketEvents, bucketDeliveries, bucketDead} {
		if err := p.Bucket([]byte(sub)).Delete(key); err != nil {
			return pending, fmt.Errorf("delete expired event from %s: %w", sub, err)
		}
	}
	if err := p.Bucket([]byte(bucketIndex)).Bucket(group).Delete(key); err != nil {
		return pending, fmt.Errorf("unindex expired event: %w", err)
	}
	return pending, nil
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
