package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// reasonLeaseExpired is the dead-letter reason when an event's last allowed
// lease ran out without an ack.
const reasonLeaseExpired = "max attempts reached: lease expired without ack"

// leaseLua hands out the oldest available events of a label's groups.
// First it moves the events whose lease or nack delay has run out from each
// group's wait set to its ready set; then it repeatedly takes the least
// head of the ready sets, dead-letters it if its deliveries reached the
// registration's limit and otherwise leases it: one more delivery, and back
// into wait until the lease ends. The byte bound is checked before a head
// is taken out of its ready set, so the event that ends the batch is left
// exactly as it was (not leased, its deliveries not counted) for the next
// call. It answers {remaining, events, dead}: dead is {label, n, ...}, the
// events it dead-lettered, by label.
//
// remaining is what a next lease would hand out (see
// store.LeaseResult.Remaining): the ready events left after the loop, less
// those that have used up their attempts. To count it with one ZCOUNT per
// group, a ready set scores an event 1 if it had used up its attempts when
// it was moved from wait (its last allowed lease ran out), 0 otherwise
// (appended, requeued, nacked with attempts left, or moved with attempts
// left). The score only counts: the loop still decides by the event's
// deliveries, and takes heads in ID order whatever their score, so dead
// letters happen in the same order as before. The count is off only for
// events whose registration's MaxAttempts changed after they became ready
// (and for ready events moved by a version without the scores, all 0).
//
// ARGV: now, label (empty for all), limit, lease length in ms, default
// attempt limit, dead-letter reason, byte bound (<= 0 for none).
const leaseLua = luaPrelude + `
local now, label, limit, length = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local defMax, reason, maxBytes = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local gs, heads, spent, headSpent = groups(label), {}, {}, {}
-- head sets heads[i] to the least event of group i's ready set, in ID
-- order across both scores, and headSpent[i] to whether it scores 1.
local function head(i)
  local ready = P .. 'ready:' .. gs[i]
  local h = redis.call('ZRANGE', ready, 0, 0)[1]
  headSpent[i] = false
  if spent[i] > 0 then
    local s = redis.call('ZRANGEBYSCORE', ready, 1, 1, 'LIMIT', 0, 1)[1]
    if s and (s == h or before(s, h)) then h, headSpent[i] = s, true end
  end
  heads[i] = h
end
for i, g in ipairs(gs) do
  local wait, ready = P .. 'wait:' .. g, P .. 'ready:' .. g
  local due = redis.call('ZRANGEBYSCORE', wait, '-inf', now)
  if #due > 0 then
    local allowed = maxAttempts(groupReg(g), defMax)
    for _, m in ipairs(due) do
      local n = tonumber(redis.call('HGET', P .. 'tries', dec(m))) or 0
      redis.call('ZADD', ready, n >= allowed and 1 or 0, m)
    end
    redis.call('ZREMRANGEBYSCORE', wait, '-inf', now)
  end
  spent[i] = redis.call('ZCOUNT', ready, 1, 1)
  head(i)
end
local out, dead, deadAt, used = {}, {}, {}, 0
while #out < limit do
  local best
  for i = 1, #gs do
    if heads[i] and (not best or before(heads[i], heads[best])) then best = i end
  end
  if not best then break end
  local g, m = gs[best], heads[best]
  local id = dec(m)
  local n = tonumber(redis.call('HGET', P .. 'tries', id)) or 0
  if n >= maxAttempts(groupReg(g), defMax) then
    deadLetter(g, m, id, now, reason)
    countLabel(dead, deadAt, groupLabel(g))
  else
    local fs = entry(id)
    if fs and maxBytes > 0 then
      local size = eventSize(fs)
      if not fits(maxBytes, #out, used, size) then break end
      used = used + size
    end
    redis.call('ZREM', P .. 'ready:' .. g, m)
    redis.call('HSET', P .. 'tries', id, n + 1)
    redis.call('ZADD', P .. 'wait:' .. g, now + length, m)
    if fs then out[#out + 1] = {id, n + 1, fs} end
  end
  if headSpent[best] then spent[best] = spent[best] - 1 end
  head(best)
end
local remaining = 0
for _, g in ipairs(gs) do remaining = remaining + redis.call('ZCOUNT', P .. 'ready:' .. g, 0, 0) end
return {remaining, out, dead}
`

// ackLua takes events out of the queue. It checks that every ID names an
// event before changing anything, and answers {-1, id} for the first that
// does not, or {n}: how many were pending.
//
// ARGV: the IDs.
const ackLua = luaPrelude + `
local gs = {}
for i, id in ipairs(ARGV) do
  local fs = entry(id)
  if not fs then return {-1, id} end
  gs[i] = group(field(fs, 'label'), field(fs, 'registrationId'))
end
local n = 0
for i, id in ipairs(ARGV) do
  local g, m = gs[i], enc(id)
  if redis.call('ZREM', P .. 'pend:' .. g, m) == 1 then
    redis.call('ZREM', P .. 'ready:' .. g, m)
    redis.call('ZREM', P .. 'wait:' .. g, m)
    n = n + 1
  end
end
return {n}
`

// nackLua ends an event's lease: dead letter if its attempts are used up,
// else leasable again after the delay. It answers -1 for an unknown event,
// 1 if the event is (now or already) dead, 0 otherwise; an event that is
// not pending is left as it is.
//
// ARGV: now, ID, delay in ms, reason, default attempt limit.
const nackLua = luaPrelude + `
local now, id, delay, reason, defMax = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local fs = entry(id)
if not fs then return -1 end
local reg = field(fs, 'registrationId')
local g, m = group(field(fs, 'label'), reg), enc(id)
if not redis.call('ZSCORE', P .. 'pend:' .. g, m) then
  if redis.call('ZSCORE', P .. 'dead:' .. g, m) then return 1 end
  return 0
end
local n = tonumber(redis.call('HGET', P .. 'tries', id)) or 0
if n >= maxAttempts(reg, defMax) then
  deadLetter(g, m, id, now, reason)
  return 1
end
redis.call('ZREM', P .. 'ready:' .. g, m)
redis.call('ZREM', P .. 'wait:' .. g, m)
if delay > 0 then
  redis.call('ZADD', P .. 'wait:' .. g, now + delay, m)
else
  redis.call('ZADD', P .. 'ready:' .. g, 0, m)
end
return 0
`

// pendingLua counts a label's pending events, one ZCARD per group.
//
// ARGV: label (empty for all).
const pendingLua = luaPrelude + `
local n = 0
for _, g in ipairs(groups(ARGV[1])) do n = n + redis.call('ZCARD', P .. 'pend:' .. g) end
return n
`

// Lease implements store.Store. Its cost is the events whose time came
// since the last lease, plus the batch, plus one step per group of the
// label: events leased to others are never scanned, and Remaining is one
// ZCOUNT per group.
//
// Lease, Ack and Nack do not wait for replicas (Options.WaitReplicas):
// losing lease state in a failover only brings an event back early, which
// at-least-once delivery allows, whereas failing them while a replica is
// away would leave events leased behind an error and use up their
// attempts.
func (s *redisStore) Lease(ctx context.Context, principal string, q store.LeaseQuery) (store.LeaseResult, error) {
	const what = "lease events"
	if err := s.gate.Enter(ctx); err != nil {
		return store.LeaseResult{}, fmt.Errorf("%s: %w", what, err)
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
	reply, err := s.run(ctx, s.rdb, s.scripts.lease, principal,
		s.nowMS(), q.Label, limit, length.Milliseconds(), store.DefaultMaxAttempts, reasonLeaseExpired, max(q.MaxBytes, 0)).Slice()
	if err != nil {
		return store.LeaseResult{}, fail(ctx, what, err)
	}
	if len(reply) != 3 {
		return store.LeaseResult{}, fmt.Errorf("%s: %w: reply %v", what, errCorrupt, reply)
	}
	remaining, _ := reply[0].(int64)
	list, _ := reply[1].([]any)
	res := store.LeaseResult{Events: make([]store.Event, 0, len(list)), Remaining: int(remaining)}
	if res.DeadLettered, err = decodeLabelCounts(principal, reply[2]); err != nil {
		return store.LeaseResult{}, fmt.Errorf("%s: %w", what, err)
	}
	for _, v := range list {
		e, err := decodeEvent(v)
		if err != nil {
			return store.LeaseResult{}, fmt.Errorf("%s: %w", what, err)
		}
		res.Events = append(res.Events, e)
	}
	return res, nil
}

// Ack implements store.Store. It returns how many events it took out of
// the queue: acking again counts nothing.
func (s *redisStore) Ack(ctx context.Context, principal string, ids []store.ID) (int, error) {
	const what = "ack events"
	if err := s.gate.Enter(ctx); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	if len(ids) == 0 {
		return 0, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id.String()
	}
	reply, err := s.run(ctx, s.rdb, s.scripts.ack, principal, args...).Slice()
	if err != nil {
		return 0, fail(ctx, what, err)
	}
	if len(reply) == 0 {
		return 0, fmt.Errorf("%s: %w: empty reply", what, errCorrupt)
	}
	n, _ := reply[0].(int64)
	if n < 0 {
		return 0, fmt.Errorf("%s: event %s: %w", what, replyString(reply, 1), store.ErrNotFound)
	}
	return int(n), nil
}

// Nack implements store.Store.
func (s *redisStore) Nack(ctx context.Context, principal string, id store.ID, delay time.Duration, reason string) (bool, error) {
	what := "nack event " + id.String()
	if err := s.gate.Enter(ctx); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	n, err := s.run(ctx, s.rdb, s.scripts.nack, principal,
		s.nowMS(), id.String(), max(delay, 0).Milliseconds(), reason, store.DefaultMaxAttempts).Int64()
	if err != nil {
		return false, fail(ctx, what, err)
	}
	if n < 0 {
		return false, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return n == 1, nil
}

// Pending implements store.Store.
func (s *redisStore) Pending(ctx context.Context, principal, label string) (int, error) {
	const what = "count pending events"
	if err := s.gate.Enter(ctx); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	n, err := s.run(ctx, s.rdb, s.scripts.pending, principal, label).Int64()
	if err != nil {
		return 0, fail(ctx, what, err)
	}
	return int(n), nil
}
