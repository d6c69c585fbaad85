package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// Read implements store.Store. Without a label it walks the principal's
// events; with one it merges that label's index groups.
func (s *boltStore) Read(ctx context.Context, principalName string, q store.Query) ([]store.Event, error) {
	events, err := s.readWalk(ctx, principalName, q, func(p *bbolt.Bucket) iterator {
		if q.Label == "" {
			return &cursorIter{c: p.Bucket([]byte(bucketEvents)).Cursor()}
		}
		return newGroupIter(p.Bucket([]byte(bucketIndex)), labelPrefix(q.Label))
	})
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return events, nil
}

// ReadPending implements store.Store by merging the lease queues of the
// principal's groups (one label's, or all), so acked events cost nothing.
func (s *boltStore) ReadPending(ctx context.Context, principalName string, q store.Query) ([]store.Event, error) {
	events, err := s.readWalk(ctx, principalName, q, func(p *bbolt.Bucket) iterator {
		var prefix []byte
		if q.Label != "" {
			prefix = labelPrefix(q.Label)
		}
		return newGroupIter(p.Bucket([]byte(bucketPending)), prefix)
	})
	if err != nil {
		return nil, fmt.Errorf("read pending events: %w", err)
	}
	return events, nil
}

// readWalk loads up to q.Limit events after q.After, no more than
// q.MaxBytes allows, from the walk that walk opens over the principal's
// buckets.
func (s *boltStore) readWalk(ctx context.Context, principalName string, q store.Query, walk func(p *bbolt.Bucket) iterator) ([]store.Event, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return nil, err
	}
	defer s.gate.Leave()
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultReadLimit
	}
	events := []store.Event{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		p := principal(tx, principalName)
		if p == nil {
			return nil
		}
		budget := store.Budget{Max: q.MaxBytes}
		it := walk(p)
		for k, _ := seekAfter(it, q.After); k != nil && len(events) < limit; k, _ = it.next() {
			e, err := loadEvent(p, k)
			if err != nil {
				return err
			}
			if !budget.Admit(store.EventSize(e)) {
				break
			}
			events = append(events, e)
		}
		return nil
	})
	return events, err
}

// Get implements store.Store.
func (s *boltStore) Get(ctx context.Context, principalName string, id store.ID) (store.Event, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return store.Event{}, fmt.Errorf("get event %s: %w", id, err)
	}
	defer s.gate.Leave()
	var e store.Event
	err := s.db.View(func(tx *bbolt.Tx) error {
		p := principal(tx, principalName)
		if p == nil {
			return store.ErrNotFound
		}
		var err error
		e, err = loadEvent(p, id.Key())
		return err
	})
	if err != nil {
		return store.Event{}, fmt.Errorf("get event %s: %w", id, err)
	}
	return e, nil
}

// DeadLetters implements store.Store. Dead letters are few, so a label
// filter checks each record rather than keeping another index.
func (s *boltStore) DeadLetters(ctx context.Context, principalName string, q store.Query) ([]store.Event, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	defer s.gate.Leave()
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultReadLimit
	}
	events := []store.Event{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		p := principal(tx, principalName)
		if p == nil {
			return nil
		}
		budget := store.Budget{Max: q.MaxBytes}
		it := &cursorIter{c: p.Bucket([]byte(bucketDead)).Cursor()}
		for k, _ := seekAfter(it, q.After); k != nil && len(events) < limit; k, _ = it.next() {
			e, err := loadEvent(p, k)
			if err != nil {
				return err
			}
			if q.Label != "" && e.Label != q.Label {
				continue
			}
			if !budget.Admit(store.EventSize(e)) {
				break
			}
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	return events, nil
}

// loadEvent reads the event under key with its current delivery count.
func loadEvent(p *bbolt.Bucket, key []byte) (store.Event, error) {
	id, rec, err := loadRecord(p, key)
	if err != nil {
		return store.Event{}, err
	}
	return rec.toEvent(id, deliveries(p, key)), nil
}

// eventSize returns store.EventSize of the event under key without
// copying its payload out of the database page.
func eventSize(p *bbolt.Bucket, key []byte) (int, error) {
	_, rec, err := loadRecord(p, key)
	if err != nil {
		return 0, err
	}
	return store.EventSize(store.Event{
		Label:           rec.label,
		Source:          rec.source,
		Type:            rec.typ,
		ProviderEventID: rec.providerEventID,
		Payload:         rec.payload,
	}), nil
}

// loadRecord decodes the stored record under key, its payload still in
// the database page.
func loadRecord(p *bbolt.Bucket, key []byte) (store.ID, eventRecord, error) {
	id, err := decodeID(key)
	if err != nil {
		return store.ID{}, eventRecord{}, err
	}
	b := p.Bucket([]byte(bucketEvents)).Get(key)
	if b == nil {
		return id, eventRecord{}, fmt.Errorf("event %s: %w", id, store.ErrNotFound)
	}
	rec, err := decodeEvent(b)
	if err != nil {
		return id, eventRecord{}, fmt.Errorf("event %s: %w", id, err)
	}
	return id, rec, nil
}

// deliveries returns how many times the event under key was leased.
func deliveries(p *bbolt.Bucket, key []byte) int {
	b := p.Bucket([]byte(bucketDeliveries)).Get(key)
	if len(b) != 4 {
		return 0
	}
	return int(binary.BigEndian.Uint32(b))
}

// An iterator walks event ID keys in ID order.
type iterator interface {
	seek(key []byte) (k, v []byte)
	next() (k, v []byte)
}

// seekAfter positions it at the first key after id.
func seekAfter(it iterator, id store.ID) (k, v []byte) {
	after := id.Key()
	k, v = it.seek(after)
	if k != nil && bytes.Equal(k, after) {
		k, v = it.next()
	}
	return k, v
}

// cursorIter iterates one bucket.
type cursorIter struct{ c *bbolt.Cursor }

func (it *cursorIter) seek(key []byte) (k, v []byte) { return it.c.Seek(key) }
func (it *cursorIter) next() (k, v []byte)           { return it.c.Next() }

// groupIter merges the group buckets of parent whose names start with
// prefix (all of them for an empty prefix) into one walk in ID order. A
// principal has few groups, so picking the least head each step beats a
// heap.
type groupIter struct {
	groups  [][]byte // group names, parallel to cursors
	cursors []*bbolt.Cursor
	keys    [][]byte
	vals    [][]byte
	cur     int // index of the group the last key came from; -1 at the end
}

func newGroupIter(parent *bbolt.Bucket, prefix []byte) *groupIter {
	it := &groupIter{cur: -1}
	c := parent.Cursor()
	for name, v := c.Seek(prefix); name != nil && bytes.HasPrefix(name, prefix); name, v = c.Next() {
		if v != nil {
			continue // not a bucket
		}
		it.groups = append(it.groups, name)
		it.cursors = append(it.cursors, parent.Bucket(name).Cursor())
	}
	it.keys = make([][]byte, len(it.cursors))
	it.vals = make([][]byte, len(it.cursors))
	return it
}

func (it *groupIter) seek(key []byte) (k, v []byte) {
	for i, c := range it.cursors {
		it.keys[i], it.vals[i] = c.Seek(key)
	}
	return it.least()
}

func (it *groupIter) next() (k, v []byte) {
	if it.cur < 0 {
		return nil, nil
	}
	it.keys[it.cur], it.vals[it.cur] = it.cursors[it.cur].Next()
	return it.least()
}

func (it *groupIter) least() (k, v []byte) {
	it.cur = -1
	for i, key := range it.keys {
		if key != nil && (it.cur < 0 || bytes.Compare(key, it.keys[it.cur]) < 0) {
			it.cur = i
		}
	}
	if it.cur < 0 {
		return nil, nil
	}
	return it.keys[it.cur], it.vals[it.cur]
}

// group returns the name of the group the last key came from.
func (it *groupIter) group() []byte { return it.groups[it.cur] }
