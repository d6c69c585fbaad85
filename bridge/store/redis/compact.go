package redis

import (
	"context"
	"fmt"
	"slices"

	"github.com/hookgate/hookgate/bridge/store"
)

// compactChunk bounds the events one compaction script deletes: Redis runs
// one script at a time, so a long one would stall every webhook behind it.
const compactChunk = 500

// compactLua deletes up to budget of the principal's expired events, walking
// each group's index from its oldest event and stopping at the first within
// its registration's TTL. Each goes with its dedup record, queue entries,
// delivery count and dead-letter reason; an emptied group goes entirely.
// It answers {deleted, unacked}: unacked is {label, n, ...}, the deleted
// events that were still pending, by label.
//
// The stream is shared by registrations with different TTLs, so the events
// go by XDEL one at a time rather than by XTRIM MINID, which could only cut
// the whole stream at one age.
//
// ARGV: now, budget, default TTL in ms.
const compactLua = luaPrelude + `
local now, budget, defTTL = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local deleted, unacked, unackedAt = 0, {}, {}
for _, g in ipairs(groups('')) do
  if deleted >= budget then break end
  local reg = groupReg(g)
  local r, ttl = registration(reg), defTTL
  if r and type(r.ttl) == 'number' and r.ttl > 0 then ttl = math.floor(r.ttl / 1000000) end
  local cutoff = pad(string.format('%d', math.max(now - ttl, 0))) .. '-' .. pad('0')
  local idx = P .. 'idx:' .. g
  for _, m in ipairs(redis.call('ZRANGEBYLEX', idx, '-', '(' .. cutoff, 'LIMIT', 0, budget - deleted)) do
    local id = dec(m)
    local fs = entry(id)
    if fs then
      local pid = field(fs, 'providerEventId')
      if pid ~= '' then
        local df = dedupField(reg, pid)
        if redis.call('HGET', P .. 'dedup', df) == id then redis.call('HDEL', P .. 'dedup', df) end
      end
      redis.call('XDEL', P .. 'log', id)
    end
    if redis.call('ZREM', P .. 'pend:' .. g, m) == 1 then countLabel(unacked, unackedAt, groupLabel(g)) end
    for _, set in ipairs({'idx:', 'ready:', 'wait:', 'dead:'}) do
      redis.call('ZREM', P .. set .. g, m)
    end
    redis.call('HDEL', P .. 'tries', id)
    redis.call('HDEL', P .. 'why', id)
    deleted = deleted + 1
  end
  if redis.call('ZCARD', idx) == 0 then
    redis.call('DEL', idx, P .. 'pend:' .. g, P .. 'ready:' .. g, P .. 'wait:' .. g, P .. 'dead:' .. g)
    redis.call('ZREM', P .. 'groups', g)
  end
end
return {deleted, unacked}
`

// Compact implements store.Store, one principal and one chunk at a time. It
// does not wait for replicas: a deletion lost in a failover is redone by
// the next run.
func (s *redisStore) Compact(ctx context.Context) (store.CompactResult, error) {
	const what = "compact"
	var total store.CompactResult
	if err := s.gate.Enter(ctx); err != nil {
		return total, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	principals, err := s.principals(ctx)
	if err != nil {
		return total, fail(ctx, what, err)
	}
	now := s.nowMS()
	for _, p := range principals {
		for {
			reply, err := s.run(ctx, s.rdb, s.scripts.compact, p, now, compactChunk, store.DefaultTTL.Milliseconds()).Slice()
			if err != nil {
				return total, fail(ctx, fmt.Sprintf("%s principal %q", what, p), err)
			}
			if len(reply) != 2 {
				return total, fmt.Errorf("%s principal %q: %w: reply %v", what, p, errCorrupt, reply)
			}
			n, _ := reply[0].(int64)
			unacked, err := decodeLabelCounts(p, reply[1])
			if err != nil {
				return total, fmt.Errorf("%s principal %q: %w", what, p, err)
			}
			total.Deleted += int(n)
			for _, d := range unacked {
				total.Unacked = store.CountDropped(total.Unacked, d.Principal, d.Label, d.Events)
			}
			if n < compactChunk {
				break
			}
		}
	}
	if total.Deleted > 0 {
		s.log.Info("redis store compacted", "deleted", total.Deleted)
	}
	return total, nil
}

// decodeLabelCounts decodes a script's {label, n, ...} reply as the
// principal's counts by label.
func decodeLabelCounts(principal string, v any) ([]store.Dropped, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("%w: label counts %v", errCorrupt, v)
	}
	var out []store.Dropped
	for i := 0; i < len(list); i += 2 {
		label, ok1 := list[i].(string)
		n, ok2 := list[i+1].(int64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: label counts %v", errCorrupt, v)
		}
		out = store.CountDropped(out, principal, label, int(n))
	}
	return out, nil
}

// principals lists every principal that may have events: those that own a
// registration, and those whose log Append created (see notePrincipal).
func (s *redisStore) principals(ctx context.Context) ([]string, error) {
	noted, err := s.rdb.SMembers(ctx, s.keys.global(keyPrincipals)).Result()
	if err != nil {
		return nil, err
	}
	owners, err := s.rdb.HVals(ctx, s.keys.global(keyRegistrations)).Result()
	if err != nil {
		return nil, err
	}
	all := append(noted, owners...)
	slices.Sort(all)
	return slices.Compact(all), nil
}
