package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// verifySquare checks x-square-hmacsha256-signature, the base64
// HMAC-SHA256 of the notification URL followed by the raw body, keyed by
// the subscription's signature key. The URL must be the subscription's,
// byte for byte. The legacy SHA-1 x-square-signature is not accepted:
// Square's documentation and SDK verify only the SHA-256 header, which
// Square sends alongside it.
func verifySquare(r *request) (Result, error) {
	const name = "x-square-hmacsha256-signature"
	sig := r.header.Get(name)
	if sig == "" {
		return Result{}, missing(name)
	}
	mac, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return Result{}, malformed(name, "not base64")
	}
	if r.url == "" {
		return Result{}, fmt.Errorf("%w: square signs the notification URL, and none was given", ErrBadSignature)
	}
	if !r.matches(sha256.New, [][]byte{mac}, []byte(r.url), r.body) {
		return Result{}, errNoMatch
	}

	var b struct {
		EventID   string `json:"event_id"`
		Type      string `json:"type"`
		CreatedAt string `json:"created_at"`
	}
	decodeJSON(r.body, &b)
	created := parseRFC3339(b.CreatedAt)
	return Result{EventType: b.Type, ProviderEventID: b.EventID, Timestamp: created, OccurredAt: created}, nil
}
