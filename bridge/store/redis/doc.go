// Package redis is hookgate's scale-out event store: every hookgate replica
// shares one Redis, so a webhook taken in by any replica reaches agents on
// all of them. It implements store.Store and passes the storetest
// conformance suite against a real redis-server (6.2 or later; tested with
// 7.0).
//
// # Layout
//
// With P the key prefix (Options.KeyPrefix, "hookgate:" by default) and p a
// principal, the global keys are:
//
//	P registrations   hash    registration ID → principal, for lookups by ID
//	P tokens          hash    token hash → token JSON
//	P subscriptions   hash    principal NUL subscription ID → subscription JSON,
//	                          [same] NUL "cursor" → its cursor, [same] NUL "claim" → "<until ms> <owner>"
//	P principals      set     principals that have a log, for Compact
//	P ping            string  written by Ping
//
// and each principal's keys, all starting P{p}: so that they share a
// Cluster slot, are:
//
//	log      stream  every retained event; entry ID = event ID, fields named as in the event's JSON
//	last     string  the last ID handed out, kept when Compact deletes that event
//	regs     hash    registration ID → registration JSON, deleted ones included
//	labels   hash    label → ID of the live registration holding it
//	dedup    hash    len(registration):registration:providerEventId → event ID
//	tries    hash    event ID → leases so far, once leased
//	why      hash    event ID → "<unix ms> <reason>" of a dead letter
//	groups   zset    names of the principal's groups (below)
//	idx:G    zset    every retained event of group G
//	pend:G   zset    G's pending events (neither acked nor dead), leased or not
//	ready:G  zset    G's pending events that may be leased now; score 1 marks one that used up its attempts (the next lease dead-letters it), 0 the rest
//	wait:G   zset    G's leased or nack-delayed events, scored by the unix ms they may be leased again
//	dead:G   zset    G's dead letters
//
// A group is the events of one (label, registration) pair, named
// "<len(label)>:<label>:<registration ID>": a label filter reads that
// label's groups, and Compact applies each group its registration's TTL.
// Apart from wait, the sorted sets hold event IDs with both numbers padded
// to 20 digits at score 0, so that their byte order is ID order.
//
// # How the contract is kept
//
// Each operation on a principal's events is one Lua script, atomic because
// Redis runs one script at a time; scripts go by EVALSHA and are sent again
// on NOSCRIPT. Append checks deletion and deduplication, picks the ID, XADDs
// the entry and queues it in one script, so the ID is assigned in the step
// that stores the event and concurrent duplicates store one copy.
//
// IDs come from hookgate's clock (Options.Now), not from XADD's "*": the
// script takes the clock's millisecond, or the last ID's when the clock is
// behind, with the sequence counting up within a millisecond. Leases, nack
// delays and retention are measured on the same clock, so they agree with
// IDs, and tests can move time by hand. Replicas of hookgate must keep
// their clocks in sync: a replica running behind only reuses the last
// millisecond, but its leases last longer by its lag.
//
// Leases use the sorted sets above rather than consumer groups. The
// contract's lease is "the oldest pending events of a label whose lease
// and nack delay have run out": consumer groups have no label filter short
// of a stream per label, no nack delay, and XAUTOCLAIM measures idle time
// on Redis's clock. The group's pending list would also have to be kept in
// step with the delivery counts and dead letters anyway. Without consumer
// groups there is nothing to lose in a Redis restart without persistence,
// so no NOGROUP to recover from: every script creates the keys it needs.
// A lease first moves the events whose time has come from wait to ready,
// then takes the least heads of the label's ready sets, so its cost does
// not grow with the events leased to others.
//
// Deduplication records are fields of one hash per principal, written by the
// append script and deleted with their event by Compact, rather than
// SET NX EX keys: a record must live exactly as long as its event, whose
// retention is measured on hookgate's clock, so an expiry on Redis's clock
// would be wrong or redundant, and a key per event would make the key
// space grow with the log.
//
// Retention deletes each expired event with XDEL, walking each group's
// index from its oldest event: the stream is shared by registrations with
// different TTLs, which XTRIM MINID, cutting the whole stream at one age,
// cannot honour.
//
// Registrations live in their principal's keys, where scripts check label
// uniqueness, deletion and attempt limits atomically; the global
// registrations hash only maps an ID to its principal.
//
// # Durability
//
// Ingress answers 2xx once Append returns, which promises the event is
// durable. Redis keeps that promise only when it writes acknowledged
// changes to disk before answering:
//
//	appendonly yes
//	appendfsync always            # fsync before every reply
//	maxmemory-policy noeviction   # the default: refuse writes when full, never evict events
//
// With appendfsync everysec a power loss or kernel crash can lose about the
// last second of acknowledged events; with RDB snapshots alone, everything
// since the last snapshot. A Redis at maxmemory refuses writes with OOM,
// which the store reports as store.ErrUnavailable (ingress answers 503).
//
// To survive the loss of the primary's machine, set Options.WaitReplicas:
// every call that stores events, registrations, tokens or subscriptions
// then waits (Redis WAIT) until that many replicas have the change, and
// fails with store.ErrUnavailable if they do not acknowledge within
// Options.WaitTimeout. Leases, acks and nacks do not wait: losing one in a
// failover only delivers an event again, which at-least-once delivery
// allows. The change stays on the
// primary; the provider's retry of the webhook is then answered as a
// duplicate once the replicas have it. WAIT means the replicas received
// the change, not that they fsynced it, so give the replicas appendonly
// too; Redis's min-replicas-to-write is a coarser, server-side alternative.
//
// # Failures
//
// When Redis cannot be reached, times out, or refuses a call for a reason
// that passes (LOADING, READONLY, MISCONF, OOM, NOREPLICAS, BUSY, ...),
// methods return errors wrapping store.ErrUnavailable. Unless the URL sets
// dial_timeout, read_timeout, write_timeout or max_retries, a dial is
// given 2s, a read or write 3s, and calls are not retried: a call whose
// reply was lost may have run, and a blind retry of Append could store an
// event without a provider ID twice, whereas the provider's own retry is
// deduplicated. When Redis is back, connections are redialled (within about
// a second), scripts are sent again on NOSCRIPT, and the same store works
// on; a Redis that lost its data simply looks like an empty store, with IDs
// starting again from the clock.
//
// # Redis Cluster
//
// The layout is ready for Cluster: all of a principal's keys carry the hash
// tag {p} (with "{", "}" and "%" in p escaped as %7B, %7D and %25), so
// every script works in one slot, and the few global keys, each in its own
// slot, are only touched by single-key commands. Scripts declare the
// principal's stream as their one key and build the principal's other key
// names from it, which Cluster accepts because they hash to the same slot;
// a proxy that insists on every key being declared would refuse them. The
// key prefix must not contain braces. The client is not ready yet: Open
// dials a single endpoint, and Cluster would need a cluster client, with
// WAIT sent to the node that took each write.
package redis
