package redis

import "github.com/hookgate/hookgate/bridge/store"

// The scripts' eventSize spells store.EventEnvelope as 160, since a
// constant cannot be formatted into the prelude; these fail to compile if
// the two ever differ.
var (
	_ [store.EventEnvelope - 160]struct{}
	_ [160 - store.EventEnvelope]struct{}
)

// Field names of a stream entry. They are the event's JSON names, so an
// operator reading the stream with redis-cli sees the contract's shape.
const (
	fieldRegistration = "registrationId"
	fieldLabel        = "label"
	fieldSource       = "source"
	fieldType         = "type"
	fieldProviderID   = "providerEventId"
	fieldReceivedAt   = "receivedAt"
	fieldVerified     = "verified"
	fieldPayload      = "payload"
)

// luaPrelude starts every script: the principal's key names and the helpers
// the scripts share. Every script gets the principal's stream as KEYS[1] and
// derives the other key names from it; a script cannot declare keys it
// learns only while it runs (the groups of a label), and Cluster accepts
// undeclared keys in the declared key's slot, which the shared hash tag
// guarantees.
//
// Sorted-set members are event IDs with both numbers padded to 20 digits,
// so that Redis's byte order (ZRANGEBYLEX, ZRANGE on equal scores) is ID
// order. Hash fields keyed by event use the plain "<ms>-<seq>" form.
const luaPrelude = `
local P = string.sub(KEYS[1], 1, -4)

local function pad(n) return string.rep('0', 20 - #n) .. n end

local function enc(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return pad(ms) .. '-' .. pad(seq)
end

local function dec(m)
  local ms, seq = string.match(m, '^0*(%d+)-0*(%d+)$')
  return ms .. '-' .. seq
end

-- Lua compares strings with strcoll, in the server's locale; members are
-- compared byte by byte instead, as Redis orders them.
local function before(a, b)
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end

-- A group holds the events of one (label, registration) pair. The length
-- prefix keeps one label's groups apart from a longer label's.
local function group(label, reg) return #label .. ':' .. label .. ':' .. reg end

local function groupReg(g)
  local n = string.match(g, '^(%d+):')
  return string.sub(g, #n + tonumber(n) + 3)
end

local function groupLabel(g)
  local n = string.match(g, '^(%d+):')
  return string.sub(g, #n + 2, #n + 1 + tonumber(n))
end

-- countLabel adds one to label's count in the flat list
-- {label, n, label, n, ...} that at maps into (label to index of n).
local function countLabel(list, at, label)
  local i = at[label]
  if not i then
    list[#list + 1] = label
    list[#list + 1] = 0
    i = #list
    at[label] = i
  end
  list[i] = list[i] + 1
end

-- groups returns the groups of label, or every group for ''.
local function groups(label)
  if label == '' then return redis.call('ZRANGE', P .. 'groups', 0, -1) end
  local pre = #label .. ':' .. label .. ':'
  return redis.call('ZRANGEBYLEX', P .. 'groups', '[' .. pre, '(' .. string.sub(pre, 1, -2) .. ';')
end

local function dedupField(reg, pid) return #reg .. ':' .. reg .. ':' .. pid end

local regCache = {}

-- registration returns the decoded registration, or false if unknown.
local function registration(reg)
  local r = regCache[reg]
  if r == nil then
    local j = redis.call('HGET', P .. 'regs', reg)
    r = j and cjson.decode(j) or false
    regCache[reg] = r
  end
  return r
end

local function maxAttempts(reg, default)
  local r = registration(reg)
  if r and type(r.maxAttempts) == 'number' and r.maxAttempts > 0 then return r.maxAttempts end
  return default
end

local function field(fs, name)
  for i = 1, #fs, 2 do
    if fs[i] == name then return fs[i + 1] end
  end
  return ''
end

-- sized names the fields whose lengths eventSize adds up.
local sized = {payload = true, label = true, source = true, type = true, providerEventId = true}

-- eventSize is store.EventSize of the stream entry's fields fs: the
-- lengths of the variable fields plus store.EventEnvelope (160), so that a
-- byte bound ends a batch where the embedded store ends it.
local function eventSize(fs)
  local n = 160
  for i = 1, #fs, 2 do
    if sized[fs[i]] then n = n + #fs[i + 1] end
  end
  return n
end

-- fits reports whether an event of size bytes may join a batch of count
-- events totalling used bytes under the bound maxBytes: the first always
-- does, and maxBytes <= 0 bounds nothing.
local function fits(maxBytes, count, used, size)
  return maxBytes <= 0 or count == 0 or used + size <= maxBytes
end

-- entry returns the stream entry's fields, or nil if there is none.
local function entry(id)
  local e = redis.call('XRANGE', P .. 'log', id, id)
  if #e == 0 then return nil end
  return e[1][2]
end

-- load returns an event as the Go side decodes it: ID, deliveries, fields.
local function load(id)
  local fs = entry(id)
  if not fs then return nil end
  return {id, tonumber(redis.call('HGET', P .. 'tries', id)) or 0, fs}
end

local function deadLetter(g, m, id, now, reason)
  redis.call('ZREM', P .. 'pend:' .. g, m)
  redis.call('ZREM', P .. 'ready:' .. g, m)
  redis.call('ZREM', P .. 'wait:' .. g, m)
  redis.call('ZADD', P .. 'dead:' .. g, 0, m)
  redis.call('HSET', P .. 'why', id, string.format('%d', now) .. ' ' .. reason)
end
`
