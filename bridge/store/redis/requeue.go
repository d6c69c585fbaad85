package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/bridge/store"
)

// requeueLua puts acked and dead-lettered events back into their group's
// queue as if new: no deliveries, no dead-letter record. Pending events
// keep their lease, and events of a deleted registration stay out. Like
// ackLua it checks every ID first and answers {-1, id} for the first
// unknown one, or {n}: how many became pending.
//
// ARGV: the IDs.
const requeueLua = luaPrelude + `
local regs, gs = {}, {}
for i, id in ipairs(ARGV) do
  local fs = entry(id)
  if not fs then return {-1, id} end
  regs[i] = field(fs, 'registrationId')
  gs[i] = group(field(fs, 'label'), regs[i])
end
local n = 0
for i, id in ipairs(ARGV) do
  local r, g, m = registration(regs[i]), gs[i], enc(id)
  if not (r and r.deleted) and not redis.call('ZSCORE', P .. 'pend:' .. g, m) then
    redis.call('ZADD', P .. 'pend:' .. g, 0, m)
    redis.call('ZADD', P .. 'ready:' .. g, 0, m)
    redis.call('ZREM', P .. 'dead:' .. g, m)
    redis.call('HDEL', P .. 'tries', id)
    redis.call('HDEL', P .. 'why', id)
    n = n + 1
  end
end
return {n}
`

// Requeue implements store.Store. Unlike the lease calls it waits for
// replicas (Options.WaitReplicas): it is an operator's request to redo
// work, and losing it in a failover would silently drop that work.
func (s *redisStore) Requeue(ctx context.Context, principal string, ids []store.ID) (int, error) {
	const what = "requeue events"
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
	var reply []any
	err := s.write(ctx, func(c goredis.Cmdable) error {
		var err error
		reply, err = s.run(ctx, c, s.scripts.requeue, principal, args...).Slice()
		return err
	})
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
