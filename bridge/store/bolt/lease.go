package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// reasonLeaseExpired is the dead-letter reason when an event's last allowed
// lease ran out without an ack.
const reasonLeaseExpired = "max attempts reached: lease expired without ack"

// Lease implements store.Store. It walks the pending queue oldest first,
// so its cost is the number of events leased to others (skipped) plus the
// batch, never the whole log. When the batch fills before the walk reaches
// the end of the queue, Remaining costs one more walk over the label's
// pending queue (see countAvailable); a poll that empties the queue, or
// finds nothing, gets Remaining 0 without it.
func (s *boltStore) Lease(ctx context.Context, principalName string, q store.LeaseQuery) (store.LeaseResult, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return store.LeaseResult{}, fmt.Errorf("lease events: %w", err)
	}
	defer s.gate.Leave()
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultLeaseLimit
	}
	length := q.For
	if length <= 0 {
		length = store.DefaultLease
	}

	// Most polls find nothing to hand out. Answer those from a read-only
	// transaction instead of paying for a commit and an fsync; anything
	// that arrives meanwhile is no different from arriving just after.
	res := store.LeaseResult{Events: []store.Event{}}
	idle := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		p := principal(tx, principalName)
		if p == nil {
			idle = true
			return nil
		}
		lease, dead, _, err := scanQueue(tx, p, q.Label, limit, q.MaxBytes, s.nowMS())
		if err != nil {
			return err
		}
		// Nothing to lease or dead-letter means the walk went through the
		// whole queue (the byte bound always admits a batch's first event)
		// and found nothing available: Remaining is 0, as the leased and
		// delayed events it met are not counted.
		idle = len(lease) == 0 && len(dead) == 0
		return nil
	})
	if err != nil {
		return store.LeaseResult{}, fmt.Errorf("lease events: %w", err)
	}
	if idle {
		return res, nil
	}

	err = s.committer.do(ctx, func(tx *bbolt.Tx) error {
		var err error
		res, err = s.leaseTx(tx, principalName, q.Label, limit, q.MaxBytes, length)
		return err
	})
	if err != nil {
		return store.LeaseResult{}, fmt.Errorf("lease events: %w", err)
	}
	return res, nil
}

// queued is a pending event picked by a lease scan.
type queued struct {
	group []byte
	key   []byte
	state leaseState
}

// scanQueue picks, oldest first, up to limit events of the principal's
// queue to lease now, no more than maxBytes allows (see
// store.LeaseQuery.MaxBytes), and the events met on the way that have used
// up their attempts. The walk stops at the first event the byte bound
// leaves out, so that event and every later one stay untouched for the
// next lease. more reports that the walk stopped before the end of the
// queue (the batch filled or the bound ended it): only then may events
// available now be left for a next lease.
func scanQueue(tx *bbolt.Tx, p *bbolt.Bucket, label string, limit, maxBytes int, now int64) (lease, dead []queued, more bool, err error) {
	var prefix []byte
	if label != "" {
		prefix = labelPrefix(label)
	}
	attempts := maxAttemptsCache{tx: tx}
	budget := store.Budget{Max: maxBytes}
	it := newGroupIter(p.Bucket([]byte(bucketPending)), prefix)
	k, v := it.seek(nil)
	for ; k != nil && len(lease) < limit; k, v = it.next() {
		st, err := decodeLeaseState(v)
		if err != nil {
			return nil, nil, false, err
		}
		if !st.available(now) {
			continue
		}
		q := queued{group: bytes.Clone(it.group()), key: bytes.Clone(k), state: st}
		allowed, err := attempts.get(q.group)
		if err != nil {
			return nil, nil, false, err
		}
		if int(st.deliveries) >= allowed {
			dead = append(dead, q)
			continue
		}
		if budget.Bounded() {
			// The queue holds lease state only: size the event from its
			// record, but only when there is a bound to check.
			size, err := eventSize(p, k)
			if err != nil {
				return nil, nil, false, err
			}
			if !budget.Admit(size) {
				break
			}
		}
		lease = append(lease, q)
	}
	return lease, dead, k != nil, nil
}

// countAvailable counts the events of the principal's queue (one label, or
// all for "") that a lease made now would hand out: available (not leased,
// nack delay passed) and with attempts left, since one that has used them
// up would be dead-lettered instead. It walks every queued event of the
// label, leased or not, but the queue holds only the 20-byte lease state of
// each (no event record is read) and the attempt limit is looked up once
// per group, so the walk is a plain cursor scan of small values, bounded by
// the events retention keeps pending.
func countAvailable(tx *bbolt.Tx, p *bbolt.Bucket, label string, now int64) (int, error) {
	var prefix []byte
	if label != "" {
		prefix = labelPrefix(label)
	}
	pending := p.Bucket([]byte(bucketPending))
	attempts := maxAttemptsCache{tx: tx}
	n := 0
	c := pending.Cursor()
	for group, v := c.Seek(prefix); group != nil && bytes.HasPrefix(group, prefix); group, v = c.Next() {
		if v != nil {
			continue // not a bucket
		}
		allowed, err := attempts.get(group)
		if err != nil {
			return 0, err
		}
		err = pending.Bucket(group).ForEach(func(_, v []byte) error {
			st, err := decodeLeaseState(v)
			if err != nil {
				return err
			}
			if st.available(now) && int(st.deliveries) < allowed {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (s *boltStore) leaseTx(tx *bbolt.Tx, principalName, label string, limit, maxBytes int, length time.Duration) (store.LeaseResult, error) {
	res := store.LeaseResult{Events: []store.Event{}}
	p := principal(tx, principalName)
	if p == nil {
		return res, nil
	}
	now := s.nowMS()
	// Decide first and write afterwards: bbolt cursors do not survive
	// writes to the bucket they walk.
	lease, dead, more, err := scanQueue(tx, p, label, limit, maxBytes, now)
	if err != nil {
		return res, err
	}
	for _, q := range dead {
		if err := moveToDead(p, q.group, q.key, now, reasonLeaseExpired); err != nil {
			return res, err
		}
		label, _, err := splitGroupKey(q.group)
		if err != nil {
			return res, err
		}
		res.DeadLettered = store.CountDropped(res.DeadLettered, principalName, label, 1)
	}
	pending := p.Bucket([]byte(bucketPending))
	until := now + length.Milliseconds()
	for _, q := range lease {
		st := leaseState{deliveries: q.state.deliveries + 1, leaseUntil: until}
		if err := pending.Bucket(q.group).Put(q.key, st.marshal()); err != nil {
			return res, fmt.Errorf("put lease: %w", err)
		}
		if err := setDeliveries(p, q.key, st.deliveries); err != nil {
			return res, err
		}
		e, err := loadEvent(p, q.key)
		if err != nil {
			return res, err
		}
		res.Events = append(res.Events, e)
	}
	if more {
		// Counted after the writes above: the batch is leased now and the
		// dead letters are out of the queue, so neither is counted.
		if res.Remaining, err = countAvailable(tx, p, label, now); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Ack implements store.Store. It checks every ID before changing anything,
// so an unknown ID leaves the others untouched. It returns how many events
// it took out of the queue: acking again counts nothing.
func (s *boltStore) Ack(ctx context.Context, principalName string, ids []store.ID) (int, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return 0, fmt.Errorf("ack events: %w", err)
	}
	defer s.gate.Leave()
	if len(ids) == 0 {
		return 0, nil
	}
	var n int
	err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
		n = 0
		p := principal(tx, principalName)
		if p == nil {
			return fmt.Errorf("event %s: %w", ids[0], store.ErrNotFound)
		}
		events := p.Bucket([]byte(bucketEvents))
		groups := make([][]byte, len(ids))
		for i, id := range ids {
			b := events.Get(id.Key())
			if b == nil {
				return fmt.Errorf("event %s: %w", id, store.ErrNotFound)
			}
			rec, err := decodeEvent(b)
			if err != nil {
				return fmt.Errorf("event %s: %w", id, err)
			}
			groups[i] = groupKey(rec.label, rec.registrationID)
		}
		pending := p.Bucket([]byte(bucketPending))
		for i, id := range ids {
			q := pending.Bucket(groups[i])
			key := id.Key()
			if q == nil || q.Get(key) == nil {
				continue // acked, dead, or its registration deleted
			}
			if err := q.Delete(key); err != nil {
				return fmt.Errorf("dequeue event %s: %w", id, err)
			}
			if err := addCount(p, groups[i], -1); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ack events: %w", err)
	}
	return n, nil
}

// Nack implements store.Store. Nacking an event that is not pending
// changes nothing; dead reports whether it is dead-lettered.
func (s *boltStore) Nack(ctx context.Context, principalName string, id store.ID, delay time.Duration, reason string) (bool, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return false, fmt.Errorf("nack event %s: %w", id, err)
	}
	defer s.gate.Leave()
	var dead bool
	err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
		var err error
		dead, err = s.nackTx(tx, principalName, id, delay, reason)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("nack event %s: %w", id, err)
	}
	return dead, nil
}

func (s *boltStore) nackTx(tx *bbolt.Tx, principalName string, id store.ID, delay time.Duration, reason string) (bool, error) {
	p := principal(tx, principalName)
	if p == nil {
		return false, store.ErrNotFound
	}
	key := id.Key()
	b := p.Bucket([]byte(bucketEvents)).Get(key)
	if b == nil {
		return false, store.ErrNotFound
	}
	rec, err := decodeEvent(b)
	if err != nil {
		return false, err
	}
	group := groupKey(rec.label, rec.registrationID)
	q := p.Bucket([]byte(bucketPending)).Bucket(group)
	var v []byte
	if q != nil {
		v = q.Get(key)
	}
	if v == nil {
		return p.Bucket([]byte(bucketDead)).Get(key) != nil, nil
	}
	st, err := decodeLeaseState(v)
	if err != nil {
		return false, err
	}
	allowed, err := maxAttempts(tx, rec.registrationID)
	if err != nil {
		return false, err
	}
	now := s.nowMS()
	if int(st.deliveries) >= allowed {
		return true, moveToDead(p, group, key, now, reason)
	}
	st.leaseUntil = 0
	st.notBefore = now + max(delay, 0).Milliseconds()
	if err := q.Put(key, st.marshal()); err != nil {
		return false, fmt.Errorf("put lease: %w", err)
	}
	return false, nil
}

// Pending implements store.Store from the per-group counters, so its cost
// is the number of groups, not of events.
func (s *boltStore) Pending(ctx context.Context, principalName, label string) (int, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return 0, fmt.Errorf("count pending events: %w", err)
	}
	defer s.gate.Leave()
	var n int
	err := s.db.View(func(tx *bbolt.Tx) error {
		if p := principal(tx, principalName); p != nil {
			n = countPending(p, label)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count pending events: %w", err)
	}
	return n, nil
}

func countPending(p *bbolt.Bucket, label string) int {
	var prefix []byte
	if label != "" {
		prefix = labelPrefix(label)
	}
	n := 0
	c := p.Bucket([]byte(bucketCounts)).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		n += int(decodeUint64(v))
	}
	return n
}

// moveToDead takes the event under key out of group's queue and records
// it as dead.
func moveToDead(p *bbolt.Bucket, group, key []byte, now int64, reason string) error {
	if err := p.Bucket([]byte(bucketPending)).Bucket(group).Delete(key); err != nil {
		return fmt.Errorf("dequeue dead event: %w", err)
	}
	if err := addCount(p, group, -1); err != nil {
		return err
	}
	if err := p.Bucket([]byte(bucketDead)).Put(key, deadRecord{at: now, reason: reason}.marshal()); err != nil {
		return fmt.Errorf("put dead letter: %w", err)
	}
	return nil
}

func setDeliveries(p *bbolt.Bucket, key []byte, n uint32) error {
	if err := p.Bucket([]byte(bucketDeliveries)).Put(key, binary.BigEndian.AppendUint32(nil, n)); err != nil {
		return fmt.Errorf("put delivery count: %w", err)
	}
	return nil
}

// maxAttemptsCache looks up each group's registration once per scan.
type maxAttemptsCache struct {
	tx    *bbolt.Tx
	byReg map[string]int
}

func (c *maxAttemptsCache) get(group []byte) (int, error) {
	_, regID, err := splitGroupKey(group)
	if err != nil {
		return 0, err
	}
	if n, ok := c.byReg[regID]; ok {
		return n, nil
	}
	n, err := maxAttempts(c.tx, regID)
	if err != nil {
		return 0, err
	}
	if c.byReg == nil {
		c.byReg = make(map[string]int)
	}
	c.byReg[regID] = n
	return n, nil
}

// maxAttempts returns the registration's limit on leases, or the default
// for an unknown registration.
func maxAttempts(tx *bbolt.Tx, regID string) (int, error) {
	reg, err := registrationTx(tx, regID)
	if err != nil && !isNotFound(err) {
		return 0, err
	}
	if reg.MaxAttempts > 0 {
		return reg.MaxAttempts, nil
	}
	return store.DefaultMaxAttempts, nil
}
