package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/bridge/store"
)

// appendLua is the whole of an append, atomic because a script runs alone:
// the deleted-registration check, the dedup check, the choice of ID, XADD
// with that ID and the queue and index entries. It answers {'gone'},
// {'dup', firstID}, or {'new', id} ({'first', id} when it created the
// principal's log).
//
// The ID comes from hookgate's clock (ARGV[1]), not from XADD's "*", so that
// IDs, lease expiry and retention all follow one clock: the clock's
// millisecond, or the last ID's when the clock is behind it, with the
// sequence counting up within a millisecond. Redis refuses 0-0, which a
// clock at the epoch would produce. The last ID is kept in its own key
// because XINFO STREAM, which knows it too, also copies out the stream's
// first and last entries; it is consulted only if that key went missing
// beside a stream, which XADD would otherwise refuse to extend.
//
// ARGV: now, registration ID, label, provider event ID (empty for none), touch
// ('1': rewrite a duplicate's dedup record, so that the WAIT that follows
// covers the first copy even if another connection wrote it), then the
// entry's field-value pairs.
const appendLua = luaPrelude + `
local now, reg, label, pid, touch = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local r = registration(reg)
if r and r.deleted then return {'gone'} end
local df = pid ~= '' and dedupField(reg, pid)
if df then
  local first = redis.call('HGET', P .. 'dedup', df)
  if first then
    if touch == '1' then redis.call('HSET', P .. 'dedup', df, first) end
    return {'dup', first}
  end
end
local ms, seq = now, 0
local last = redis.call('GET', P .. 'last')
local known = last
if not last and redis.call('EXISTS', P .. 'log') == 1 then
  local info = redis.call('XINFO', 'STREAM', P .. 'log')
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
if last then
  local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
  lms = tonumber(lms)
  if ms <= lms then ms, seq = lms, tonumber(lseq) + 1 end
end
if ms == 0 and seq == 0 then seq = 1 end
local id = string.format('%d-%d', ms, seq)
redis.call('XADD', P .. 'log', id, unpack(ARGV, 6))
redis.call('SET', P .. 'last', id)
local g, m = group(label, reg), enc(id)
redis.call('ZADD', P .. 'groups', 0, g)
redis.call('ZADD', P .. 'idx:' .. g, 0, m)
redis.call('ZADD', P .. 'pend:' .. g, 0, m)
redis.call('ZADD', P .. 'ready:' .. g, 0, m)
if df then redis.call('HSET', P .. 'dedup', df, id) end
if known then return {'new', id} end
return {'first', id}
`

// Append implements store.Store. An append to a registration marked
// deleted fails with store.ErrGone, checked in the same atomic step as the
// write so that no pending event can appear behind a deletion; one whose
// registration was never stored is accepted with the default TTL and
// attempt limit.
func (s *redisStore) Append(ctx context.Context, e store.NewEvent) (store.AppendResult, error) {
	const what = "append event"
	if err := s.gate.Enter(ctx); err != nil {
		return store.AppendResult{}, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	if err := checkNewEvent(e); err != nil {
		return store.AppendResult{}, fmt.Errorf("%s: %w", what, err)
	}
	touch, verified := "0", "0"
	if s.waitReplicas > 0 {
		touch = "1"
	}
	if e.Verified {
		verified = "1"
	}
	args := []any{
		s.nowMS(), e.RegistrationID, e.Label, e.ProviderEventID, touch,
		fieldRegistration, e.RegistrationID,
		fieldLabel, e.Label,
		fieldSource, e.Source,
		fieldType, e.Type,
		fieldProviderID, e.ProviderEventID,
		fieldReceivedAt, e.ReceivedAt.Format(time.RFC3339Nano),
		fieldVerified, verified,
		fieldPayload, []byte(e.Payload),
	}
	var reply []any
	err := s.write(ctx, func(c goredis.Cmdable) error {
		var err error
		reply, err = s.run(ctx, c, s.scripts.append, e.Principal, args...).Slice()
		return err
	})
	if err != nil {
		return store.AppendResult{}, fail(ctx, what, err)
	}
	status, idText := replyString(reply, 0), replyString(reply, 1)
	if status == "gone" {
		return store.AppendResult{}, fmt.Errorf("%s: registration %s: %w", what, e.RegistrationID, store.ErrGone)
	}
	id, err := store.ParseID(idText)
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("%s: reply %v: %w", what, reply, err)
	}
	if status == "first" {
		s.notePrincipal(ctx, e.Principal)
	}
	return store.AppendResult{ID: id, Duplicate: status == "dup"}, nil
}

// notePrincipal records that principal has a log, so that Compact finds it
// even if it has no registration. Registered principals are found through
// their registrations as well, so a failure here only delays compaction of
// events appended without one, and does not fail the append.
func (s *redisStore) notePrincipal(ctx context.Context, principal string) {
	if err := s.rdb.SAdd(ctx, s.keys.global(keyPrincipals), principal).Err(); err != nil {
		s.log.Warn("redis store: cannot record principal for compaction", "principal", principal, "err", err)
	}
}

func checkNewEvent(e store.NewEvent) error {
	switch {
	case e.Principal == "":
		return errors.New("no principal")
	case e.RegistrationID == "":
		return errors.New("no registration id")
	case !json.Valid(e.Payload):
		return errors.New("payload is not valid JSON")
	}
	return nil
}

// replyString returns element i of a script's reply if it is a string.
func replyString(reply []any, i int) string {
	if i >= len(reply) {
		return ""
	}
	s, _ := reply[i].(string)
	return s
}
