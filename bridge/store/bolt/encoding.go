package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// Records are encoded by hand rather than as JSON: an event is written once
// and read by every delivery path, so decoding must not re-validate or copy
// the payload more than once, and the small lease records are rewritten on
// every lease.

// eventVersion tags the event record layout so a later layout can coexist.
const eventVersion = 1

// errCorrupt reports a record that does not decode; it means the file was
// damaged or written by an incompatible version.
var errCorrupt = errors.New("corrupt record")

// eventRecord is an event as stored under its ID: everything in store.Event
// except the ID (the key) and the delivery count (kept apart because it
// changes on every lease while the payload never does), plus the
// registration that received it.
type eventRecord struct {
	registrationID  string
	label           string
	source          string
	typ             string
	providerEventID string
	receivedAt      time.Time
	verified        bool
	payload         []byte // aliases the decoded buffer until toEvent copies it
}

func newEventRecord(e store.NewEvent) eventRecord {
	return eventRecord{
		registrationID:  e.RegistrationID,
		label:           e.Label,
		source:          e.Source,
		typ:             e.Type,
		providerEventID: e.ProviderEventID,
		receivedAt:      e.ReceivedAt,
		verified:        e.Verified,
		payload:         e.Payload,
	}
}

func (r eventRecord) marshal() ([]byte, error) {
	at, err := r.receivedAt.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode receivedAt: %w", err)
	}
	size := 2 + len(r.payload) + len(at)
	for _, s := range [...]string{r.registrationID, r.label, r.source, r.typ, r.providerEventID} {
		size += binary.MaxVarintLen64 + len(s)
	}
	b := make([]byte, 0, size+binary.MaxVarintLen64)
	b = append(b, eventVersion)
	b = appendString(b, r.registrationID)
	b = appendString(b, r.label)
	b = appendString(b, r.source)
	b = appendString(b, r.typ)
	b = appendString(b, r.providerEventID)
	b = appendBytes(b, at)
	if r.verified {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, r.payload...), nil
}

// decodeEvent decodes b without copying the payload, so that filters can look
// at the header of a record cheaply.
func decodeEvent(b []byte) (eventRecord, error) {
	d := decoder{b: b}
	if v := d.byte(); v != eventVersion {
		return eventRecord{}, fmt.Errorf("%w: event record version %d", errCorrupt, v)
	}
	r := eventRecord{
		registrationID:  d.string(),
		label:           d.string(),
		source:          d.string(),
		typ:             d.string(),
		providerEventID: d.string(),
	}
	at := d.bytes()
	r.verified = d.byte() == 1
	r.payload = d.rest()
	if d.err != nil {
		return eventRecord{}, fmt.Errorf("%w: event record: %w", errCorrupt, d.err)
	}
	if err := r.receivedAt.UnmarshalBinary(at); err != nil {
		return eventRecord{}, fmt.Errorf("%w: event receivedAt: %w", errCorrupt, err)
	}
	return r, nil
}

// toEvent builds the public event, copying the payload out of the database
// page it may alias.
func (r eventRecord) toEvent(id store.ID, deliveries int) store.Event {
	return store.Event{
		ID:              id,
		Label:           r.label,
		Source:          r.source,
		Type:            r.typ,
		ProviderEventID: r.providerEventID,
		ReceivedAt:      r.receivedAt,
		Verified:        r.verified,
		DeliveryCount:   deliveries,
		Payload:         append([]byte(nil), r.payload...),
	}
}

// leaseState is the record of a pending event in the lease queue.
type leaseState struct {
	deliveries uint32 // leases so far
	leaseUntil int64  // unix ms the current lease runs out; 0 when not leased
	notBefore  int64  // unix ms before which a nacked event stays hidden
}

const leaseStateSize = 4 + 8 + 8

func (l leaseState) marshal() []byte {
	b := make([]byte, leaseStateSize)
	binary.BigEndian.PutUint32(b, l.deliveries)
	binary.BigEndian.PutUint64(b[4:], uint64(l.leaseUntil))
	binary.BigEndian.PutUint64(b[12:], uint64(l.notBefore))
	return b
}

func decodeLeaseState(b []byte) (leaseState, error) {
	if len(b) != leaseStateSize {
		return leaseState{}, fmt.Errorf("%w: lease state of %d bytes", errCorrupt, len(b))
	}
	return leaseState{
		deliveries: binary.BigEndian.Uint32(b),
		leaseUntil: int64(binary.BigEndian.Uint64(b[4:])),
		notBefore:  int64(binary.BigEndian.Uint64(b[12:])),
	}, nil
}

// available reports whether the event may be handed out at nowMS.
func (l leaseState) available(nowMS int64) bool {
	return nowMS >= l.leaseUntil && nowMS >= l.notBefore
}

// deadRecord says why and when an event was dead-lettered.
type deadRecord struct {
	at     int64 // unix ms
	reason string
}

func (r deadRecord) marshal() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(r.reason)), uint64(r.at))
	return append(b, r.reason...)
}

// groupKey names the (label, registration) group that an event belongs to.
// Events are indexed and queued per group: a label filter reads the groups
// with that label prefix, and compaction walks one registration's groups.
// The label is length-prefixed so that no label's prefix is another's.
func groupKey(label, registrationID string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(label)+len(registrationID))
	b = appendString(b, label)
	return append(b, registrationID...)
}

// labelPrefix is the prefix every group key of label starts with.
func labelPrefix(label string) []byte {
	return appendString(make([]byte, 0, binary.MaxVarintLen64+len(label)), label)
}

func splitGroupKey(k []byte) (label, registrationID string, err error) {
	d := decoder{b: k}
	label = d.string()
	registrationID = string(d.rest())
	if d.err != nil {
		return "", "", fmt.Errorf("%w: group key: %w", errCorrupt, d.err)
	}
	return label, registrationID, nil
}

// dedupKey is the key of the (registration, providerEventId) record.
func dedupKey(registrationID, providerEventID string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(registrationID)+len(providerEventID))
	b = appendString(b, registrationID)
	return append(b, providerEventID...)
}

func decodeID(b []byte) (store.ID, error) {
	id, err := store.IDFromKey(b)
	if err != nil {
		return store.ID{}, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return id, nil
}

func encodeUint64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func decodeUint64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads length-prefixed fields, remembering the first error so the
// caller checks once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	if d.err != nil {
		return nil
	}
	n, w := binary.Uvarint(d.b)
	if w <= 0 || uint64(len(d.b)-w) < n {
		d.fail()
		return nil
	}
	s := d.b[w : w+int(n)]
	d.b = d.b[w+int(n):]
	return s
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) rest() []byte {
	s := d.b
	d.b = nil
	return s
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errors.New("truncated")
	}
}
