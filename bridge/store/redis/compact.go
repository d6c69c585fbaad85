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
// It answers how many it deleted.
//
// The stream is shared by registrations with different TTLs, so the events
// go by XDEL one at a time rather than by XTRIM MINID, which could only cut
// the whole stream at one age.
//
// ARGV: now, budget, default TTL in ms.
const compactLua = luaPrelude + `
local now, budget, defTTL = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local deleted = 0
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
    for _, set in ipairs({'idx:', 'pend:', 'ready:', 'wait:', 'dead:'}) do
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
return deleted
`

// Compact implements store.Store, one principal and one chunk at a time. It
// does not wait for replicas: a deletion lost in a failover is redone by
// the next run.
func (s *redisStore) Compact(ctx context.Context) (int, error) {
	const what = "compact"
	if err := s.gate.Enter(ctx); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	principals, err := s.principals(ctx)
	if err != nil {
		return 0, fail(ctx, what, err)
	}
	now := s.nowMS()
	total := 0
	for _, p := range principals {
		for {
			n, err := s.run(ctx, s.rdb, s.scripts.compact, p, now, compactChunk, store.DefaultTTL.Milliseconds()).Int64()
			total += int(n)
			if err != nil {
				return total, fail(ctx, fmt.Sprintf("%s principal %q", what, p), err)
			}
			if n < compactChunk {
				break
			}
		}
	}
	if total > 0 {
		s.log.Info("redis store compacted", "deleted", total)
	}
	return total, nil
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
