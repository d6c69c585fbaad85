package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/bridge/store"
)

// putRegistrationLua stores a registration in its principal's keys and
// keeps the label index right in the same step, so two registrations
// racing for a label cannot both win. Deleting a live registration drops
// its pending events from the queues. It answers 'ok', 'taken' (the label
// belongs to another live registration) or 'conflict' (the stored record
// is not the expected one).
//
// ARGV: registration ID, label, deleted ('1' or '0'), JSON, the JSON the
// caller expects to replace (empty for whatever is stored).
const putRegistrationLua = luaPrelude + `
local id, label, deleted, json, expect = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4], ARGV[5]
local regs, labels = P .. 'regs', P .. 'labels'
local current = redis.call('HGET', regs, id)
if expect ~= '' and current ~= expect then return 'conflict' end
if not deleted then
  local holder = redis.call('HGET', labels, label)
  if holder and holder ~= id then return 'taken' end
end
local old = current and cjson.decode(current)
if old and not old.deleted then
  if (deleted or old.label ~= label) and redis.call('HGET', labels, old.label) == id then
    redis.call('HDEL', labels, old.label)
  end
  if deleted then
    for _, g in ipairs(groups('')) do
      if groupReg(g) == id then
        redis.call('DEL', P .. 'pend:' .. g, P .. 'ready:' .. g, P .. 'wait:' .. g)
      end
    end
  end
end
if not deleted then redis.call('HSET', labels, label, id) end
redis.call('HSET', regs, id, json)
return 'ok'
`

// registrationByLabelLua answers the JSON of the principal's live
// registration with a label, or nil. ARGV: label.
const registrationByLabelLua = luaPrelude + `
local id = redis.call('HGET', P .. 'labels', ARGV[1])
if not id then return false end
return redis.call('HGET', P .. 'regs', id)
`

// registrationsLua answers the JSON of every live registration of the
// principal.
const registrationsLua = luaPrelude + `
local out = {}
for _, id in ipairs(redis.call('HVALS', P .. 'labels')) do
  local j = redis.call('HGET', P .. 'regs', id)
  if j then out[#out + 1] = j end
end
return out
`

// casAttempts bounds DeleteRegistration's retries when the registration
// changes between its read and its write.
const casAttempts = 10

// errConflict: the registration changed between read and write.
var errConflict = errors.New("registration changed concurrently")

// regsKey names the hash of principal's registrations.
func (s *redisStore) regsKey(principal string) string { return s.keys.principal(principal) + "regs" }

// PutRegistration implements store.Store. The registration lives in its
// principal's keys, where scripts can check labels, deletion and limits
// atomically; a global hash maps its ID to the principal for lookups by ID.
func (s *redisStore) PutRegistration(ctx context.Context, r store.Registration) error {
	what := fmt.Sprintf("put registration %q", r.ID)
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	if r.ID == "" || r.Principal == "" || r.Label == "" {
		return fmt.Errorf("%s: id, principal and label are required", what)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	err = s.write(ctx, func(c goredis.Cmdable) error {
		return s.putRegistration(ctx, c, r, b, "")
	})
	if err != nil {
		return fail(ctx, what, err)
	}
	return nil
}

// putRegistration claims r.ID for r.Principal in the global index, then
// stores r (encoded as b) if the stored record is expect ("" for any). The
// two steps live in different slots and cannot share a script; a claim
// left behind by a refused store names a registration that does not exist,
// which lookups treat as unknown, and is removed at once anyway.
func (s *redisStore) putRegistration(ctx context.Context, c goredis.Cmdable, r store.Registration, b []byte, expect string) error {
	index := s.keys.global(keyRegistrations)
	claimed, err := c.HSetNX(ctx, index, r.ID, r.Principal).Result()
	if err != nil {
		return err
	}
	if !claimed {
		owner, err := c.HGet(ctx, index, r.ID).Result()
		if err != nil && !isNil(err) {
			return err
		}
		if owner != r.Principal {
			return errors.New("registration belongs to another principal")
		}
	}
	deleted := "0"
	if r.Deleted {
		deleted = "1"
	}
	status, err := s.run(ctx, c, s.scripts.putRegistration, r.Principal, r.ID, r.Label, deleted, b, expect).Text()
	if err == nil && status != "ok" && claimed {
		if err := c.HDel(ctx, index, r.ID).Err(); err != nil {
			s.log.Warn("redis store: cannot drop refused registration claim", "registration", r.ID, "err", err)
		}
	}
	switch {
	case err != nil:
		return err
	case status == "taken":
		return fmt.Errorf("label %q is already registered", r.Label)
	case status == "conflict":
		return errConflict
	}
	return nil
}

// Registration implements store.Store.
func (s *redisStore) Registration(ctx context.Context, id string) (store.Registration, error) {
	what := fmt.Sprintf("get registration %q", id)
	if err := s.gate.Enter(ctx); err != nil {
		return store.Registration{}, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	principal, err := s.rdb.HGet(ctx, s.keys.global(keyRegistrations), id).Result()
	if isNil(err) {
		return store.Registration{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return store.Registration{}, fail(ctx, what, err)
	}
	raw, err := s.rdb.HGet(ctx, s.regsKey(principal), id).Result()
	if isNil(err) {
		return store.Registration{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return store.Registration{}, fail(ctx, what, err)
	}
	r, err := decodeRegistration(raw)
	if err != nil {
		return store.Registration{}, fmt.Errorf("%s: %w", what, err)
	}
	return r, nil
}

// RegistrationByLabel implements store.Store.
func (s *redisStore) RegistrationByLabel(ctx context.Context, principal, label string) (store.Registration, error) {
	what := fmt.Sprintf("get registration %q", label)
	if err := s.gate.Enter(ctx); err != nil {
		return store.Registration{}, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	r, _, err := s.registrationByLabel(ctx, principal, label)
	if err != nil {
		return store.Registration{}, fail(ctx, what, err)
	}
	return r, nil
}

// registrationByLabel returns the live registration with label and its
// stored JSON.
func (s *redisStore) registrationByLabel(ctx context.Context, principal, label string) (store.Registration, string, error) {
	raw, err := s.run(ctx, s.rdb, s.scripts.registrationByLabel, principal, label).Text()
	if isNil(err) {
		return store.Registration{}, "", store.ErrNotFound
	}
	if err != nil {
		return store.Registration{}, "", err
	}
	r, err := decodeRegistration(raw)
	return r, raw, err
}

// Registrations implements store.Store.
func (s *redisStore) Registrations(ctx context.Context, principal string) ([]store.Registration, error) {
	const what = "list registrations"
	if err := s.gate.Enter(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	raws, err := s.run(ctx, s.rdb, s.scripts.registrations, principal).StringSlice()
	if err != nil {
		return nil, fail(ctx, what, err)
	}
	regs := make([]store.Registration, 0, len(raws))
	for _, raw := range raws {
		r, err := decodeRegistration(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		regs = append(regs, r)
	}
	slices.SortFunc(regs, func(a, b store.Registration) int { return strings.Compare(a.Label, b.Label) })
	return regs, nil
}

// DeleteRegistration implements store.Store. The registration is kept,
// marked deleted, so that ingress can answer 410 for its URL; its events
// stay readable until compaction but leave the lease queue. The record is
// read, changed and written back only if nobody changed it meanwhile.
func (s *redisStore) DeleteRegistration(ctx context.Context, principal, label string) error {
	what := fmt.Sprintf("delete registration %q", label)
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	for range casAttempts {
		r, raw, err := s.registrationByLabel(ctx, principal, label)
		if err != nil {
			return fail(ctx, what, err)
		}
		r.Deleted = true
		r.DeletedAt = s.now()
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		err = s.write(ctx, func(c goredis.Cmdable) error {
			return s.putRegistration(ctx, c, r, b, raw)
		})
		if !errors.Is(err, errConflict) {
			if err != nil {
				return fail(ctx, what, err)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: %w", what, errConflict)
}

func decodeRegistration(raw string) (store.Registration, error) {
	var r store.Registration
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return store.Registration{}, fmt.Errorf("%w: registration: %w", errCorrupt, err)
	}
	return r, nil
}

// PutToken implements store.Store.
func (s *redisStore) PutToken(ctx context.Context, t store.Token) error {
	const what = "put token"
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	if t.Hash == "" {
		return fmt.Errorf("%s: hash is empty", what)
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	err = s.write(ctx, func(c goredis.Cmdable) error {
		return c.HSet(ctx, s.keys.global(keyTokens), t.Hash, b).Err()
	})
	if err != nil {
		return fail(ctx, what, err)
	}
	return nil
}

// TokenByHash implements store.Store.
func (s *redisStore) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	const what = "get token"
	if err := s.gate.Enter(ctx); err != nil {
		return store.Token{}, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	if hash == "" {
		return store.Token{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	raw, err := s.rdb.HGet(ctx, s.keys.global(keyTokens), hash).Result()
	if isNil(err) {
		return store.Token{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fail(ctx, what, err)
	}
	var t store.Token
	if err := json.Unmarshal([]byte(raw), &t); err != nil {
		return store.Token{}, fmt.Errorf("%s: %w: %w", what, errCorrupt, err)
	}
	return t, nil
}

// Tokens implements store.Store.
func (s *redisStore) Tokens(ctx context.Context) ([]store.Token, error) {
	const what = "list tokens"
	if err := s.gate.Enter(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	all, err := s.rdb.HGetAll(ctx, s.keys.global(keyTokens)).Result()
	if err != nil {
		return nil, fail(ctx, what, err)
	}
	tokens := make([]store.Token, 0, len(all))
	for _, raw := range all {
		var t store.Token
		if err := json.Unmarshal([]byte(raw), &t); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", what, errCorrupt, err)
		}
		tokens = append(tokens, t)
	}
	slices.SortFunc(tokens, func(a, b store.Token) int { return strings.Compare(a.Hash, b.Hash) })
	return tokens, nil
}

// DeleteToken implements store.Store.
func (s *redisStore) DeleteToken(ctx context.Context, hash string) error {
	const what = "delete token"
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	if hash == "" {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	var n int64
	err := s.write(ctx, func(c goredis.Cmdable) error {
		var err error
		n, err = c.HDel(ctx, s.keys.global(keyTokens), hash).Result()
		return err
	})
	if err != nil {
		return fail(ctx, what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
