package redis

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultKeyPrefix starts every key the store writes unless
// Options.KeyPrefix says otherwise.
const DefaultKeyPrefix = "hookgate:"

// Global key names, after the prefix. They carry no hash tag, so each lives
// in its own Cluster slot.
const (
	keyRegistrations = "registrations" // hash: registration ID → principal
	keyTokens        = "tokens"        // hash: token hash → token JSON
	keySubscriptions = "subscriptions" // hash: principal NUL subscription ID → JSON
	keyPrincipals    = "principals"    // set: principals that have a log
	keyPing          = "ping"          // string: written by Ping
)

// keyLog is the name, after a principal's key prefix, of the principal's
// stream. Every script is passed it as KEYS[1]: it routes the script to the
// principal's slot, and the script derives the principal's other keys from
// it (see luaPrelude).
const keyLog = "log"

// keys names the Redis keys of one store.
type keys struct {
	prefix string
}

func newKeys(prefix string) (keys, error) {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	// A brace in the prefix would become the hash tag of every key and put
	// all principals in one Cluster slot.
	if strings.ContainsAny(prefix, "{}") {
		return keys{}, errors.New("key prefix must not contain { or }")
	}
	return keys{prefix: prefix}, nil
}

func (k keys) global(name string) string { return k.prefix + name }

// principal returns the prefix of every key of principal p: the store's
// prefix, then p as a Cluster hash tag, so all of p's keys share a slot and
// a script may touch any of them.
func (k keys) principal(p string) string { return k.prefix + "{" + hashTag(p) + "}:" }

// log returns the key of p's stream, the key a script declares.
func (k keys) log(p string) string { return k.principal(p) + keyLog }

// hashTag returns p in a form that can stand between braces. Cluster hashes
// only the text before the first "}", so braces are escaped, and "%" too so
// that the escaping cannot make two principals equal. The empty principal
// becomes "%", which no escaped name can be, because Cluster ignores an
// empty tag "{}".
func hashTag(p string) string {
	if p == "" {
		return "%"
	}
	if !strings.ContainsAny(p, "{}%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '{', '}', '%':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
