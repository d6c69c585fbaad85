package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// PutRegistration implements store.Store. The label index of the principal
// is updated in the same transaction, so two registrations racing for one
// label cannot both win.
func (s *boltStore) PutRegistration(ctx context.Context, r store.Registration) error {
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("put registration %s: %w", r.ID, err)
	}
	defer s.gate.Leave()
	switch {
	case r.ID == "" || r.Principal == "" || r.Label == "":
		return fmt.Errorf("put registration %q: id, principal and label are required", r.ID)
	case len(r.ID) > maxNameLen || len(r.Principal) > maxNameLen || len(r.Label) > maxNameLen:
		return fmt.Errorf("put registration %q: id, principal or label longer than %d bytes", r.ID, maxNameLen)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put registration %s: %w", r.ID, err)
	}
	err = s.committer.do(ctx, func(tx *bbolt.Tx) error {
		return putRegistrationTx(tx, r, b)
	})
	if err != nil {
		return fmt.Errorf("put registration %s: %w", r.ID, err)
	}
	return nil
}

func putRegistrationTx(tx *bbolt.Tx, r store.Registration, b []byte) error {
	old, err := registrationTx(tx, r.ID)
	known := err == nil
	if err != nil && !isNotFound(err) {
		return err
	}
	if known && old.Principal != r.Principal {
		return fmt.Errorf("registration belongs to another principal")
	}
	p, err := createPrincipal(tx, r.Principal)
	if err != nil {
		return err
	}
	labels := p.Bucket([]byte(bucketLabels))
	if !r.Deleted {
		if holder := labels.Get([]byte(r.Label)); holder != nil && string(holder) != r.ID {
			return fmt.Errorf("label %q is already registered", r.Label)
		}
	}
	if known && !old.Deleted && (r.Deleted || old.Label != r.Label) {
		if err := labels.Delete([]byte(old.Label)); err != nil {
			return fmt.Errorf("delete label: %w", err)
		}
	}
	if known && !old.Deleted && r.Deleted {
		if err := dropQueue(p, r.ID); err != nil {
			return err
		}
	}
	if !r.Deleted {
		if err := labels.Put([]byte(r.Label), []byte(r.ID)); err != nil {
			return fmt.Errorf("put label: %w", err)
		}
	}
	if err := tx.Bucket([]byte(bucketRegistrations)).Put([]byte(r.ID), b); err != nil {
		return fmt.Errorf("put registration: %w", err)
	}
	return nil
}

// Registration implements store.Store.
func (s *boltStore) Registration(ctx context.Context, id string) (store.Registration, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return store.Registration{}, fmt.Errorf("get registration %s: %w", id, err)
	}
	defer s.gate.Leave()
	var r store.Registration
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		r, err = s.regs.get(tx, id)
		return err
	})
	if err != nil {
		return store.Registration{}, fmt.Errorf("get registration %s: %w", id, err)
	}
	return r, nil
}

// RegistrationByLabel implements store.Store.
func (s *boltStore) RegistrationByLabel(ctx context.Context, principalName, label string) (store.Registration, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return store.Registration{}, fmt.Errorf("get registration %q: %w", label, err)
	}
	defer s.gate.Leave()
	var r store.Registration
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		r, err = registrationByLabelTx(tx, principalName, label)
		return err
	})
	if err != nil {
		return store.Registration{}, fmt.Errorf("get registration %q: %w", label, err)
	}
	return r, nil
}

// Registrations implements store.Store: the label index is already sorted.
func (s *boltStore) Registrations(ctx context.Context, principalName string) ([]store.Registration, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return nil, fmt.Errorf("list registrations: %w", err)
	}
	defer s.gate.Leave()
	regs := []store.Registration{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		p := principal(tx, principalName)
		if p == nil {
			return nil
		}
		return p.Bucket([]byte(bucketLabels)).ForEach(func(_, id []byte) error {
			r, err := registrationTx(tx, string(id))
			if err != nil {
				return err
			}
			regs = append(regs, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list registrations: %w", err)
	}
	return regs, nil
}

// DeleteRegistration implements store.Store. The registration is kept,
// marked deleted, so that ingress can answer 410 for its URL; its events
// stay readable until compaction, but leave the lease queue.
func (s *boltStore) DeleteRegistration(ctx context.Context, principalName, label string) error {
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("delete registration %q: %w", label, err)
	}
	defer s.gate.Leave()
	err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
		r, err := registrationByLabelTx(tx, principalName, label)
		if err != nil {
			return err
		}
		r.Deleted = true
		r.DeletedAt = s.now()
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return putRegistrationTx(tx, r, b)
	})
	if err != nil {
		return fmt.Errorf("delete registration %q: %w", label, err)
	}
	return nil
}

// dropQueue removes every pending event of the registration from the lease
// queue, whatever label the events were stored under.
func dropQueue(p *bbolt.Bucket, regID string) error {
	pending := p.Bucket([]byte(bucketPending))
	var groups [][]byte
	err := pending.ForEachBucket(func(group []byte) error {
		_, id, err := splitGroupKey(group)
		if err == nil && id == regID {
			groups = append(groups, bytes.Clone(group))
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, group := range groups {
		if err := pending.DeleteBucket(group); err != nil {
			return fmt.Errorf("drop queue: %w", err)
		}
		if err := p.Bucket([]byte(bucketCounts)).Delete(group); err != nil {
			return fmt.Errorf("drop pending count: %w", err)
		}
	}
	return nil
}

func registrationTx(tx *bbolt.Tx, id string) (store.Registration, error) {
	if id == "" {
		return store.Registration{}, store.ErrNotFound
	}
	b := tx.Bucket([]byte(bucketRegistrations)).Get([]byte(id))
	if b == nil {
		return store.Registration{}, store.ErrNotFound
	}
	var r store.Registration
	if err := json.Unmarshal(b, &r); err != nil {
		return store.Registration{}, fmt.Errorf("%w: registration %s: %w", errCorrupt, id, err)
	}
	return r, nil
}

func registrationByLabelTx(tx *bbolt.Tx, principalName, label string) (store.Registration, error) {
	p := principal(tx, principalName)
	if p == nil || label == "" {
		return store.Registration{}, store.ErrNotFound
	}
	id := p.Bucket([]byte(bucketLabels)).Get([]byte(label))
	if id == nil {
		return store.Registration{}, store.ErrNotFound
	}
	return registrationTx(tx, string(id))
}

// PutToken implements store.Store.
func (s *boltStore) PutToken(ctx context.Context, t store.Token) error {
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	defer s.gate.Leave()
	if t.Hash == "" || len(t.Hash) > maxNameLen {
		return errors.New("put token: hash is empty or too long")
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	err = s.committer.do(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketTokens)).Put([]byte(t.Hash), b)
	})
	if err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	return nil
}

// TokenByHash implements store.Store.
func (s *boltStore) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return store.Token{}, fmt.Errorf("get token: %w", err)
	}
	defer s.gate.Leave()
	var t store.Token
	err := s.db.View(func(tx *bbolt.Tx) error {
		if hash == "" {
			return store.ErrNotFound
		}
		b := tx.Bucket([]byte(bucketTokens)).Get([]byte(hash))
		if b == nil {
			return store.ErrNotFound
		}
		if err := json.Unmarshal(b, &t); err != nil {
			return fmt.Errorf("%w: token: %w", errCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return store.Token{}, fmt.Errorf("get token: %w", err)
	}
	return t, nil
}

// Tokens implements store.Store.
func (s *boltStore) Tokens(ctx context.Context) ([]store.Token, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer s.gate.Leave()
	tokens := []store.Token{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketTokens)).ForEach(func(_, b []byte) error {
			var t store.Token
			if err := json.Unmarshal(b, &t); err != nil {
				return fmt.Errorf("%w: token: %w", errCorrupt, err)
			}
			tokens = append(tokens, t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return tokens, nil
}

// DeleteToken implements store.Store.
func (s *boltStore) DeleteToken(ctx context.Context, hash string) error {
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	defer s.gate.Leave()
	err := s.committer.do(ctx, func(tx *bbolt.Tx) error {
		tokens := tx.Bucket([]byte(bucketTokens))
		if hash == "" || tokens.Get([]byte(hash)) == nil {
			return store.ErrNotFound
		}
		return tokens.Delete([]byte(hash))
	})
	if err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
