package bolt

import (
	"bytes"
	"slices"
	"sync"

	"go.etcd.io/bbolt"

	"github.com/hookgate/hookgate/bridge/store"
)

// regCache keeps registrations decoded. Every webhook looks its registration
// up twice (ingress, then the append inside the serial committer), and
// decoding its JSON each time was a quarter of ingest CPU. An entry is used
// only while the stored bytes are identical to the ones it was decoded
// from, so the cache can never serve a stale registration and needs no
// invalidation.
type regCache struct {
	mu      sync.Mutex
	entries map[string]regEntry
}

type regEntry struct {
	raw []byte
	reg store.Registration
}

// get returns the registration stored under id as tx sees it.
func (c *regCache) get(tx *bbolt.Tx, id string) (store.Registration, error) {
	if id == "" {
		return store.Registration{}, store.ErrNotFound
	}
	raw := tx.Bucket([]byte(bucketRegistrations)).Get([]byte(id))
	if raw == nil {
		return store.Registration{}, store.ErrNotFound
	}
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && bytes.Equal(e.raw, raw) {
		return cloneRegistration(e.reg), nil
	}
	reg, err := registrationTx(tx, id)
	if err != nil {
		return store.Registration{}, err
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = make(map[string]regEntry)
	}
	// raw lives in the mmap only while tx is open: keep a copy.
	c.entries[id] = regEntry{raw: bytes.Clone(raw), reg: reg}
	c.mu.Unlock()
	return cloneRegistration(reg), nil
}

// cloneRegistration copies the one field a caller could change in place.
func cloneRegistration(r store.Registration) store.Registration {
	r.Secrets = slices.Clone(r.Secrets)
	return r
}
