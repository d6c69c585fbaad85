package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/bridge/store"
)

// Read modes: which events a read walks.
const (
	readLog     = "log"  // every retained event
	readPending = "pend" // pending events
	readDead    = "dead" // dead letters
)

// readLua returns up to limit events after an ID, in ID order, with their
// delivery counts, ending the batch where the byte bound says (see
// store.Query.MaxBytes). Every retained event without a label filter is
// an XRANGE walk on the stream: one call for the whole batch when there is
// no byte bound, else chunks of readChunk entries, so that the events past
// the bound copied into the script's memory are at most a chunk, not the
// rest of the batch's Limit (a Limit of huge events). Otherwise
// the groups' sorted sets of the mode (idx for every event, pend, dead) are
// merged and the events loaded one by one until the bound ends the batch.
//
// ARGV: mode ('log', 'pend' or 'dead'), label (empty for all), after, limit,
// byte bound (<= 0 for none).
const readLua = luaPrelude + `
local mode, label, after, limit, maxBytes = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local out, used = {}, 0
-- add puts the event into the batch if the bound lets it, and reports
-- whether it did: once it says no, the batch is complete.
local function add(id, tries, fs)
  if maxBytes > 0 then
    local size = eventSize(fs)
    if not fits(maxBytes, #out, used, size) then return false end
    used = used + size
  end
  out[#out + 1] = {id, tries, fs}
  return true
end
if mode == 'log' and label == '' then
  local chunk = limit
  if maxBytes > 0 then chunk = ` + readChunk + ` end
  local start = '(' .. after
  while #out < limit do
    local want = math.min(chunk, limit - #out)
    local es = redis.call('XRANGE', P .. 'log', start, '+', 'COUNT', want)
    for _, e in ipairs(es) do
      if not add(e[1], tonumber(redis.call('HGET', P .. 'tries', e[1])) or 0, e[2]) then return out end
    end
    if #es < want then break end
    start = '(' .. es[#es][1]
  end
  return out
end
if mode == 'log' then mode = 'idx' end
local min, found = '(' .. enc(after), {}
for _, g in ipairs(groups(label)) do
  for _, m in ipairs(redis.call('ZRANGEBYLEX', P .. mode .. ':' .. g, min, '+', 'LIMIT', 0, limit)) do
    found[#found + 1] = m
  end
end
table.sort(found, before)
for i = 1, math.min(limit, #found) do
  local ev = load(dec(found[i]))
  if ev and not add(ev[1], ev[2], ev[3]) then break end
end
return out
`

// readChunk is how many stream entries readLua copies at a time when a
// byte bound may end the batch early: few enough that the entries copied
// past the bound cost little, enough that a batch of ordinary events
// takes few calls.
const readChunk = "32"

// getLua returns one event, or an empty reply. ARGV: the event's ID.
const getLua = luaPrelude + `
return load(ARGV[1]) or {}
`

// Read implements store.Store.
func (s *redisStore) Read(ctx context.Context, principal string, q store.Query) ([]store.Event, error) {
	return s.read(ctx, "read events", principal, readLog, q)
}

// ReadPending implements store.Store from the pending sets, so acked
// events cost nothing.
func (s *redisStore) ReadPending(ctx context.Context, principal string, q store.Query) ([]store.Event, error) {
	return s.read(ctx, "read pending events", principal, readPending, q)
}

// DeadLetters implements store.Store.
func (s *redisStore) DeadLetters(ctx context.Context, principal string, q store.Query) ([]store.Event, error) {
	return s.read(ctx, "read dead letters", principal, readDead, q)
}

func (s *redisStore) read(ctx context.Context, what, principal, mode string, q store.Query) ([]store.Event, error) {
	if err := s.gate.Enter(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultReadLimit
	}
	if q.After.MS == math.MaxUint64 && q.After.Seq == math.MaxUint64 {
		// Nothing is after the last possible ID, and XRANGE refuses an
		// exclusive start there.
		return []store.Event{}, nil
	}
	reply, err := s.run(ctx, s.rdb, s.scripts.read, principal, mode, q.Label, q.After.String(), limit, max(q.MaxBytes, 0)).Slice()
	if err != nil {
		return nil, fail(ctx, what, err)
	}
	events := make([]store.Event, 0, len(reply))
	for _, v := range reply {
		e, err := decodeEvent(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// Get implements store.Store.
func (s *redisStore) Get(ctx context.Context, principal string, id store.ID) (store.Event, error) {
	what := "get event " + id.String()
	if err := s.gate.Enter(ctx); err != nil {
		return store.Event{}, fmt.Errorf("%s: %w", what, err)
	}
	defer s.gate.Leave()
	reply, err := s.run(ctx, s.rdb, s.scripts.get, principal, id.String()).Slice()
	if err != nil {
		return store.Event{}, fail(ctx, what, err)
	}
	if len(reply) == 0 {
		return store.Event{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	e, err := decodeEvent(reply)
	if err != nil {
		return store.Event{}, fmt.Errorf("%s: %w", what, err)
	}
	return e, nil
}

// errCorrupt reports a stored event or reply that does not decode: written
// by an incompatible version, or changed by hand.
var errCorrupt = errors.New("corrupt record")

// decodeEvent decodes an event as the scripts return it: {ID, delivery
// count, the stream entry's field-value pairs}.
func decodeEvent(v any) (store.Event, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 3 {
		return store.Event{}, fmt.Errorf("%w: event reply %v", errCorrupt, v)
	}
	idText, _ := a[0].(string)
	id, err := store.ParseID(idText)
	if err != nil {
		return store.Event{}, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	deliveries, _ := a[1].(int64)
	fields, _ := a[2].([]any)
	e := store.Event{ID: id, DeliveryCount: int(deliveries)}
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		value, _ := fields[i+1].(string)
		switch name {
		case fieldLabel:
			e.Label = value
		case fieldSource:
			e.Source = value
		case fieldType:
			e.Type = value
		case fieldProviderID:
			e.ProviderEventID = value
		case fieldVerified:
			e.Verified = value == "1"
		case fieldPayload:
			e.Payload = json.RawMessage(value)
		case fieldReceivedAt:
			if e.ReceivedAt, err = time.Parse(time.RFC3339Nano, value); err != nil {
				return store.Event{}, fmt.Errorf("%w: event %s receivedAt: %w", errCorrupt, id, err)
			}
		}
	}
	if e.Payload == nil {
		return store.Event{}, fmt.Errorf("%w: event %s has no payload", errCorrupt, id)
	}
	return e, nil
}

// isNil reports whether err is Redis's "no value" answer.
func isNil(err error) bool { return errors.Is(err, goredis.Nil) }
