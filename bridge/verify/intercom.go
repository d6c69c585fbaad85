package verify

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// verifyIntercom checks X-Hub-Signature, "sha1=<hex>" of the HMAC-SHA1 of
// the raw body keyed by the app's client secret. Intercom signs no
// timestamp, so deduplication on the notification ID is the only replay
// defence.
func verifyIntercom(r *request) (Result, error) {
	const name = "X-Hub-Signature"
	sig := r.header.Get(name)
	if sig == "" {
		return Result{}, missing(name)
	}
	hexMAC, ok := strings.CutPrefix(sig, "sha1=")
	if !ok {
		return Result{}, malformed(name, "no sha1= prefix")
	}
	mac, err := hex.DecodeString(hexMAC)
	if err != nil {
		return Result{}, malformed(name, "not hex")
	}
	if !r.matches(sha1.New, [][]byte{mac}, r.body) {
		return Result{}, errNoMatch
	}

	var b struct {
		ID        string `json:"id"`
		Topic     string `json:"topic"`
		CreatedAt int64  `json:"created_at"`
	}
	decodeJSON(r.body, &b)
	at := unixSeconds(b.CreatedAt)
	return Result{EventType: b.Topic, ProviderEventID: b.ID, Timestamp: at, OccurredAt: at}, nil
}
