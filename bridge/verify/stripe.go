package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// verifyStripe checks Stripe-Signature, "t=<unix>,v1=<hex>[,v1=<hex>…]",
// each v1 being the HMAC-SHA256 of "<t>.<body>" keyed by the whole
// whsec_… string. The timestamp window applies both ways, although
// stripe-go only refuses old timestamps: a future t is no more plausible
// from Stripe than an old one.
func verifyStripe(r *request) (Result, error) {
	const name = "Stripe-Signature"
	h := r.header.Get(name)
	if h == "" {
		return Result{}, missing(name)
	}
	t, at, sigs, err := parseStripeHeader(h)
	if err != nil {
		return Result{}, err
	}
	if !r.matches(sha256.New, sigs, []byte(t), []byte("."), r.body) {
		return Result{}, errNoMatch
	}
	if err := r.fresh(at, 0); err != nil {
		return Result{}, err
	}

	var b struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Created int64  `json:"created"`
	}
	decodeJSON(r.body, &b)
	return Result{EventType: b.Type, ProviderEventID: b.ID, Timestamp: at, OccurredAt: unixSeconds(b.Created)}, nil
}

// parseStripeHeader returns the header's timestamp, as sent and as a time,
// and its v1 signatures. Only v1 entries are kept: Stripe adds v0 to test
// events and advises ignoring every other scheme so that a header cannot be
// downgraded. Like stripe-go, it skips v1 values that are not hex, since a
// rolled secret's entry may be unreadable while another one matches.
func parseStripeHeader(h string) (t string, at time.Time, sigs [][]byte, err error) {
	const name = "Stripe-Signature"
	for part := range strings.SplitSeq(h, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return "", time.Time{}, nil, malformed(name, "element without '='")
		}
		switch k {
		case "t":
			if t != "" {
				return "", time.Time{}, nil, malformed(name, "repeated t")
			}
			var ok bool
			if at, ok = parseUnix(v); !ok {
				return "", time.Time{}, nil, malformed(name, "t is not a Unix time")
			}
			t = v
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	if t == "" {
		return "", time.Time{}, nil, malformed(name, "no t")
	}
	if len(sigs) == 0 {
		return "", time.Time{}, nil, malformed(name, "no v1 signature")
	}
	return t, at, sigs, nil
}
