package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/bridge/store"
)

// Subscriptions sit in one global hash, because every replica lists them
// all. A subscription has up to three fields there, so that every script
// about it touches one key (and one Cluster slot):
//
//	principal NUL id              the subscription's JSON, as last Put
//	principal NUL id NUL cursor   its delivery cursor "<ms>-<seq>", which only moves forward
//	principal NUL id NUL claim    "<unix ms until> <owner>": who delivers it
//
// Principals and IDs never contain NUL (PutSubscription refuses them).
const (
	suffixCursor = "\x00cursor"
	suffixClaim  = "\x00claim"
)

// subscriptionField is a subscription's field in the global hash.
func subscriptionField(principal, id string) string { return principal + "\x00" + id }

// subLuaPrelude is shared by the subscription scripts: ARGV[1] is the
// record's field, and later compares two "<ms>-<seq>" cursors.
const subLuaPrelude = `
local H, F = KEYS[1], ARGV[1]
local FC, FL = F .. '\0cursor', F .. '\0claim'

local function later(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am then return false end
  if not bm then return true end
  if tonumber(am) ~= tonumber(bm) then return tonumber(am) > tonumber(bm) end
  return tonumber(as) > tonumber(bs)
end

-- advance stores cursor c unless the stored one is later.
local function advance(c)
  local old = redis.call('HGET', H, FC)
  if not (old and later(old, c)) then redis.call('HSET', H, FC, c) end
end
`

// putSubscriptionLua stores the record and moves the cursor forward.
// ARGV: field, JSON, cursor.
const putSubscriptionLua = subLuaPrelude + `
redis.call('HSET', H, F, ARGV[2])
advance(ARGV[3])
return 1
`

// deleteSubscriptionLua deletes the record, its cursor and its claim, and
// answers 1 if the record existed. ARGV: field.
const deleteSubscriptionLua = subLuaPrelude + `
local n = redis.call('HDEL', H, F)
redis.call('HDEL', H, FC, FL)
return n
`

// claimSubscriptionLua takes, renews or (ttl <= 0) releases owner's claim,
// and answers false if there is no record, else {JSON, cursor, holder,
// until ms, 1 if owner holds the claim}, with empty strings for a missing
// cursor or holder.
// ARGV: field, owner, now ms, ttl ms.
const claimSubscriptionLua = subLuaPrelude + `
local owner, now, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rec = redis.call('HGET', H, F)
if not rec then return false end
local cursor = redis.call('HGET', H, FC) or ''
local holder, untilMS = '', 0
local c = redis.call('HGET', H, FL)
if c then
  local u, o = string.match(c, '^(%d+) (.*)$')
  holder, untilMS = o, tonumber(u)
end
local ok = 0
if holder == owner or holder == '' or untilMS <= now then
  if ttl > 0 then
    holder, untilMS, ok = owner, now + ttl, 1
    redis.call('HSET', H, FL, string.format('%d', untilMS) .. ' ' .. owner)
  elseif holder == owner then
    holder, untilMS = '', 0
    redis.call('HDEL', H, FL)
  end
end
return {rec, cursor, holder, string.format('%d', untilMS), ok}
`

// saveCursorLua moves the cursor forward if owner holds the claim, and
// answers 0, -1 if there is no record, or -2 if owner does not hold it.
// ARGV: field, owner, cursor.
const saveCursorLua = subLuaPrelude + `
if redis.call('HEXISTS', H, F) == 0 then return -1 end
local c = redis.call('HGET', H, FL)
if not c or string.match(c, '^%d+ (.*)$') ~= ARGV[2] then return -2 end
advance(ARGV[3])
return 0
`

// subscriptionScripts are the scripts on the global subscriptions hash.
type subscriptionScripts struct {
	put, del, claim, save *goredis.Script
}

func newSubscriptionScripts() subscriptionScripts {
	return subscriptionScripts{
		put:   goredis.NewScript(putSubscriptionLua),
		del:   goredis.NewScript(deleteSubscriptionLua),
		claim: goredis.NewScript(claimSubscriptionLua),
		save:  goredis.NewScript(saveCursorLua),
	}
}

// runSub runs a script on the subscriptions hash.
func (s *redisStore) runSub(ctx context.Context, c goredis.Scripter, sc *goredis.Script, args ...any) *goredis.Cmd {
	return sc.Run(ctx, c, []string{s.keys.global(keySubscriptions)}, args...)
}

// PutSubscription implements store.Store.
func (s *redisStore) PutSubscription(ctx context.Context, sub store.Subscription) error {
	what := fmt.Sprintf("put subscription %q", sub.ID)
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	if sub.ID == "" || sub.Principal == "" || strings.Contains(sub.Principal, "\x00") || strings.Contains(sub.ID, "\x00") {
		return fmt.Errorf("%s: id and principal are required, without NUL", what)
	}
	b, err := json.Marshal(sub)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	err = s.write(ctx, func(c goredis.Cmdable) error {
		return s.runSub(ctx, c, s.subScripts.put, subscriptionField(sub.Principal, sub.ID), b, sub.Cursor.String()).Err()
	})
	if err != nil {
		return fail(ctx, what, err)
	}
	return nil
}

// DeleteSubscription implements store.Store.
func (s *redisStore) DeleteSubscription(ctx context.Context, principal, id string) error {
	what := fmt.Sprintf("delete subscription %q", id)
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	err := s.write(ctx, func(c goredis.Cmdable) error {
		n, err := s.runSub(ctx, c, s.subScripts.del, subscriptionField(principal, id)).Int()
		if err == nil && n == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fail(ctx, what, err)
	}
	return nil
}

// Subscriptions implements store.Store, ordered by principal and ID.
func (s *redisStore) Subscriptions(ctx context.Context) ([]store.Subscription, error) {
	const what = "list subscriptions"
	if err := s.gate.Enter(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	all, err := s.rdb.HGetAll(ctx, s.keys.global(keySubscriptions)).Result()
	if err != nil {
		return nil, fail(ctx, what, err)
	}
	subs := make([]store.Subscription, 0, len(all))
	for field, raw := range all {
		if strings.Count(field, "\x00") != 1 {
			continue // a cursor or a claim, read with its record
		}
		sub, err := decodeSubscription(raw, all[field+suffixCursor], all[field+suffixClaim])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		subs = append(subs, sub)
	}
	slices.SortFunc(subs, func(a, b store.Subscription) int {
		return cmp.Or(strings.Compare(a.Principal, b.Principal), strings.Compare(a.ID, b.ID))
	})
	return subs, nil
}

// ClaimSubscription implements store.Store.
func (s *redisStore) ClaimSubscription(ctx context.Context, principal, id, owner string, ttl time.Duration) (store.Subscription, bool, error) {
	what := fmt.Sprintf("claim subscription %q", id)
	if err := s.gate.Enter(ctx); err != nil {
		return store.Subscription{}, false, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	var reply []any
	err := s.write(ctx, func(c goredis.Cmdable) error {
		var err error
		reply, err = s.runSub(ctx, c, s.subScripts.claim, subscriptionField(principal, id), owner, s.nowMS(), max(ttl.Milliseconds(), 0)).Slice()
		if err == goredis.Nil {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Subscription{}, false, fail(ctx, what, err)
	}
	if len(reply) != 5 {
		return store.Subscription{}, false, fmt.Errorf("%s: %w: reply %v", what, errCorrupt, reply)
	}
	rec, cursor := replyString(reply, 0), replyString(reply, 1)
	holder, until := replyString(reply, 2), replyString(reply, 3)
	claim := ""
	if holder != "" {
		claim = until + " " + holder
	}
	sub, err := decodeSubscription(rec, cursor, claim)
	if err != nil {
		return store.Subscription{}, false, fmt.Errorf("%s: %w", what, err)
	}
	ok, _ := reply[4].(int64)
	return sub, ok == 1, nil
}

// SaveSubscriptionCursor implements store.Store.
func (s *redisStore) SaveSubscriptionCursor(ctx context.Context, principal, id, owner string, cursor store.ID) error {
	what := fmt.Sprintf("save cursor of subscription %q", id)
	if err := s.gate.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	err := s.write(ctx, func(c goredis.Cmdable) error {
		n, err := s.runSub(ctx, c, s.subScripts.save, subscriptionField(principal, id), owner, cursor.String()).Int()
		switch {
		case err != nil:
			return err
		case n == -1:
			return store.ErrNotFound
		case n == -2:
			return store.ErrNotOwner
		}
		return nil
	})
	if err != nil {
		return fail(ctx, what, err)
	}
	return nil
}

// decodeSubscription decodes a record with its cursor and claim fields
// ("" when absent).
func decodeSubscription(raw, cursor, claim string) (store.Subscription, error) {
	var sub store.Subscription
	if err := json.Unmarshal([]byte(raw), &sub); err != nil {
		return sub, fmt.Errorf("%w: subscription: %w", errCorrupt, err)
	}
	if cursor != "" {
		id, err := store.ParseID(cursor)
		if err != nil {
			return sub, fmt.Errorf("%w: subscription %s cursor: %w", errCorrupt, sub.ID, err)
		}
		sub.Cursor = id
	}
	if until, owner, ok := strings.Cut(claim, " "); ok {
		ms, err := strconv.ParseInt(until, 10, 64)
		if err != nil {
			return sub, fmt.Errorf("%w: subscription %s claim: %w", errCorrupt, sub.ID, err)
		}
		sub.Owner, sub.ClaimedUntil = owner, time.UnixMilli(ms).UTC()
	}
	return sub, nil
}
