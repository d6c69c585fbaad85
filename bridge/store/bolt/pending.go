package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// ReadPending implements store.Store by merging the lease queues of the
// principal's groups (one label's, or all), so acked events cost nothing.
func (s *boltStore) ReadPending(ctx context.Context, principalName string, q store.Query) ([]store.Event, error) {
	if err := s.begin(ctx); err != nil {
		return nil, fmt.Errorf("read pending events: %w", err)
	}
	defer s.leave()
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
		var prefix []byte
		if q.Label != "" {
			prefix = labelPrefix(q.Label)
		}
		it := newGroupIter(p.Bucket([]byte(bucketPending)), prefix)
		for k, _ := seekAfter(it, q.After); k != nil && len(events) < limit; k, _ = it.next() {
			e, err := loadEvent(p, k)
			if err != nil {
				return err
			}
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pending events: %w", err)
	}
	return events, nil
}
