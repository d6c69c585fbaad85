package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// verifyGeneric checks X-Webhook-Signature, the hex HMAC-SHA256 of the raw
// body that many smaller senders use. Senders disagree on GitHub's
// "sha256=" prefix, so it is optional. The hex is decoded before comparing,
// so either letter case is accepted.
func verifyGeneric(r *request) (Result, error) {
	const name = "X-Webhook-Signature"
	sig := r.header.Get(name)
	if sig == "" {
		return Result{}, missing(name)
	}
	mac, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
	if err != nil {
		return Result{}, malformed(name, "not hex")
	}
	if !r.matches(sha256.New, [][]byte{mac}, r.body) {
		return Result{}, errNoMatch
	}

	var b struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	decodeJSON(r.body, &b)
	id := r.header.Get("X-Webhook-Id")
	if id == "" {
		id = b.ID
	}
	return Result{EventType: b.Type, ProviderEventID: id}, nil
}
