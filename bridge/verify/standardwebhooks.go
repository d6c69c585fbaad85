package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// verifyStandardWebhooks checks the Standard Webhooks scheme:
// webhook-signature is a space-separated list of "v1,<base64>", each the
// HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>" keyed by the
// base64-decoded secret. Several entries let a sender sign with old and new
// secrets during rotation; any v1 match is enough, and other versions
// (v1a is ed25519) are skipped.
func verifyStandardWebhooks(r *request) (Result, error) {
	return standardWebhooks(r, "webhook-")
}

// verifySvix is Standard Webhooks as Svix sends it, with svix-* headers.
// Like Svix's library, it falls back to the webhook-* headers when any of
// the svix-* ones is missing.
func verifySvix(r *request) (Result, error) {
	for _, h := range []string{"svix-id", "svix-timestamp", "svix-signature"} {
		if r.header.Get(h) == "" {
			return standardWebhooks(r, "webhook-")
		}
	}
	return standardWebhooks(r, "svix-")
}

// standardWebhooks verifies the scheme with headers named prefix+"id",
// prefix+"timestamp" and prefix+"signature".
func standardWebhooks(r *request, prefix string) (Result, error) {
	idName, tsName, sigName := prefix+"id", prefix+"timestamp", prefix+"signature"
	sig := r.header.Get(sigName)
	if sig == "" {
		return Result{}, missing(sigName)
	}
	id := r.header.Get(idName)
	if id == "" {
		return Result{}, missing(idName)
	}
	ts := r.header.Get(tsName)
	if ts == "" {
		return Result{}, missing(tsName)
	}
	// The signed content joins its fields with dots, so a dot in the ID
	// would let a signature over one (id, timestamp, body) split verify
	// another; the specification forbids it.
	if strings.Contains(id, ".") {
		return Result{}, malformed(idName, "contains '.'")
	}
	at, ok := parseUnix(ts)
	if !ok {
		return Result{}, malformed(tsName, "not a Unix time")
	}
	var sigs [][]byte
	for entry := range strings.FieldsSeq(sig) {
		version, b64, _ := strings.Cut(entry, ",")
		if version != "v1" {
			continue
		}
		if mac, err := base64.StdEncoding.DecodeString(b64); err == nil {
			sigs = append(sigs, mac)
		}
	}
	if len(sigs) == 0 {
		return Result{}, malformed(sigName, "no v1 signature")
	}
	keys, err := standardKeys(r.secrets)
	if err != nil {
		return Result{}, err
	}
	if !anyMatch(sha256.New, keys, sigs, []byte(id+"."+ts+"."), r.body) {
		return Result{}, errNoMatch
	}
	if err := r.fresh(at, 0); err != nil {
		return Result{}, err
	}

	var b struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
	}
	decodeJSON(r.body, &b)
	return Result{EventType: b.Type, ProviderEventID: id, Timestamp: at, OccurredAt: parseRFC3339(b.Timestamp)}, nil
}

// standardKeys decodes secrets serialized as "whsec_<base64>" or bare
// base64, the two forms the libraries accept. A secret that does not
// decode is skipped, since its raw bytes would never match a real sender;
// when none decodes, the error says so.
func standardKeys(secrets []string) ([][]byte, error) {
	var keys [][]byte
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err == nil && len(key) > 0 {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no secret is whsec_<base64> or base64", ErrNoSecret)
	}
	return keys, nil
}
