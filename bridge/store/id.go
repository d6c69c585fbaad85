package store

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// ID identifies an event within one principal's log. Its text form is
// "<unix-ms>-<seq>", the form Redis Streams uses, so the two backends share it.
// IDs order numerically as the pair (MS, Seq), never as strings.
type ID struct {
	MS  uint64 // milliseconds since the Unix epoch when the event was committed
	Seq uint64 // order among events committed in the same millisecond
}

// Zero is the ID before every event: reading after Zero reads from the oldest
// retained event. Its text form is "0-0".
var Zero = ID{}

// String returns the "<ms>-<seq>" form.
func (id ID) String() string {
	return strconv.FormatUint(id.MS, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

// IsZero reports whether id is Zero.
func (id ID) IsZero() bool { return id == Zero }

// Compare returns -1, 0 or +1 as id is before, equal to or after other.
func (id ID) Compare(other ID) int {
	switch {
	case id.MS < other.MS:
		return -1
	case id.MS > other.MS:
		return 1
	case id.Seq < other.Seq:
		return -1
	case id.Seq > other.Seq:
		return 1
	}
	return 0
}

// Next returns the smallest ID after id.
func (id ID) Next() ID { return ID{MS: id.MS, Seq: id.Seq + 1} }

// Key returns a 16-byte big-endian encoding whose byte order is the ID order,
// for backends that keep events in a sorted key space.
func (id ID) Key() []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], id.MS)
	binary.BigEndian.PutUint64(b[8:], id.Seq)
	return b[:]
}

// IDFromKey decodes the result of Key.
func IDFromKey(b []byte) (ID, error) {
	if len(b) != 16 {
		return ID{}, fmt.Errorf("decode event id key: %d bytes, want 16", len(b))
	}
	return ID{MS: binary.BigEndian.Uint64(b[:8]), Seq: binary.BigEndian.Uint64(b[8:])}, nil
}

// ParseID parses the "<ms>-<seq>" form. A bare "<ms>" means "<ms>-0", as in
// Redis, so a cursor can be a plain timestamp.
func ParseID(s string) (ID, error) {
	msText, seqText, hasSeq := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(msText, 10, 64)
	if err != nil || msText == "" {
		return ID{}, fmt.Errorf("%w: %q is not <unix-ms>-<seq>", ErrBadID, s)
	}
	var seq uint64
	if hasSeq {
		seq, err = strconv.ParseUint(seqText, 10, 64)
		if err != nil || seqText == "" {
			return ID{}, fmt.Errorf("%w: %q is not <unix-ms>-<seq>", ErrBadID, s)
		}
	}
	return ID{MS: ms, Seq: seq}, nil
}

// MarshalText implements encoding.TextMarshaler so an ID is a JSON string.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	parsed, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}
