package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// verifyGitHub checks X-Hub-Signature-256, "sha256=<hex>" of the raw body
// (for a form-encoded delivery, the form bytes, not the decoded payload).
//
// The legacy X-Hub-Signature ("sha1=<hex>") is used only when
// X-Hub-Signature-256 is absent, so a bad SHA-256 signature is never
// rescued by a good SHA-1 one. GitHub sends both whenever a secret is set;
// a delivery with SHA-1 alone comes from an older sender (the shared
// vectors include one from go-github's tests and expect it to pass), and
// HMAC-SHA1 remains unforgeable without the secret.
func verifyGitHub(r *request) (Result, error) {
	name, prefix, h := "X-Hub-Signature-256", "sha256=", sha256.New
	sig := r.header.Get(name)
	if sig == "" {
		name, prefix, h = "X-Hub-Signature", "sha1=", sha1.New
		if sig = r.header.Get(name); sig == "" {
			return Result{}, missing("X-Hub-Signature-256")
		}
	}
	hexMAC, ok := strings.CutPrefix(sig, prefix)
	if !ok {
		return Result{}, malformed(name, "no "+prefix+" prefix")
	}
	mac, err := hex.DecodeString(hexMAC)
	if err != nil {
		return Result{}, malformed(name, "not hex")
	}
	if !r.matches(h, [][]byte{mac}, r.body) {
		return Result{}, errNoMatch
	}

	var b struct {
		Action string `json:"action"`
	}
	doc, _ := document(r.body)
	decodeJSON(doc, &b)
	typ := r.header.Get("X-GitHub-Event")
	if typ != "" && b.Action != "" {
		typ += "." + b.Action
	}
	return Result{EventType: typ, ProviderEventID: r.header.Get("X-GitHub-Delivery")}, nil
}
