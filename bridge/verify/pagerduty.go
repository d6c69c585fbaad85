package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// verifyPagerDuty checks X-PagerDuty-Signature, a comma-separated list of
// "v1=<hex>", one HMAC-SHA256 of the raw body per active secret so that a
// secret can be rotated without downtime. Any v1 match is enough; entries
// of other versions or without a version are ignored. PagerDuty signs no
// timestamp.
func verifyPagerDuty(r *request) (Result, error) {
	const name = "X-PagerDuty-Signature"
	h := r.header.Get(name)
	if h == "" {
		return Result{}, missing(name)
	}
	var sigs [][]byte
	for entry := range strings.SplitSeq(h, ",") {
		hexMAC, ok := strings.CutPrefix(strings.TrimSpace(entry), "v1=")
		if !ok {
			continue
		}
		if mac, err := hex.DecodeString(hexMAC); err == nil {
			sigs = append(sigs, mac)
		}
	}
	if len(sigs) == 0 {
		return Result{}, malformed(name, "no v1 signature")
	}
	if !r.matches(sha256.New, sigs, r.body) {
		return Result{}, errNoMatch
	}

	var b struct {
		Event struct {
			EventType  string `json:"event_type"`
			OccurredAt string `json:"occurred_at"`
		} `json:"event"`
	}
	decodeJSON(r.body, &b)
	occurred := parseRFC3339(b.Event.OccurredAt)
	return Result{
		EventType:       b.Event.EventType,
		ProviderEventID: r.header.Get("X-Webhook-Id"),
		Timestamp:       occurred,
		OccurredAt:      occurred,
	}, nil
}
