package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// linearWindow is the window of Linear's SDK. Linear's only replay defence
// is webhookTimestamp (Linear-Delivery is not signed), and the shared
// vectors expect a delivery 61 s old to be refused, so Options.Tolerance
// can narrow Linear's window but not widen it.
const linearWindow = 60 * time.Second

// verifyLinear checks Linear-Signature, the bare hex HMAC-SHA256 of the raw
// body, and then the body's webhookTimestamp (Unix milliseconds, covered by
// the signature). A body without webhookTimestamp is refused: Linear always
// sends one, and without it a captured delivery could be replayed forever.
func verifyLinear(r *request) (Result, error) {
	const name = "Linear-Signature"
	sig := r.header.Get(name)
	if sig == "" {
		return Result{}, missing(name)
	}
	mac, err := hex.DecodeString(sig)
	if err != nil {
		return Result{}, malformed(name, "not hex")
	}
	if !r.matches(sha256.New, [][]byte{mac}, r.body) {
		return Result{}, errNoMatch
	}

	var b struct {
		Type             string `json:"type"`
		Action           string `json:"action"`
		WebhookTimestamp int64  `json:"webhookTimestamp"`
		CreatedAt        string `json:"createdAt"`
	}
	decodeJSON(r.body, &b)
	if b.WebhookTimestamp == 0 {
		return Result{}, fmt.Errorf("%w: body has no webhookTimestamp", ErrBadSignature)
	}
	at := time.UnixMilli(b.WebhookTimestamp)
	if err := r.fresh(at, linearWindow); err != nil {
		return Result{}, err
	}

	// Linear-Event names only the entity ("Issue"); the signed body adds
	// the action, and "Issue.create" tells a consumer what happened, as
	// GitHub's "issues.opened" does.
	typ := b.Type
	if typ == "" {
		typ = r.header.Get("Linear-Event")
	}
	if typ != "" && b.Action != "" {
		typ += "." + b.Action
	}
	return Result{EventType: typ, ProviderEventID: r.header.Get("Linear-Delivery"), Timestamp: at, OccurredAt: parseRFC3339(b.CreatedAt)}, nil
}
