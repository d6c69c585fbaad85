package subscribe

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Secret bounds of the extension: whsec_ followed by the base64 of 24 to
// 64 bytes.
const (
	secretPrefix   = "whsec_"
	minSecretBytes = 24
	maxSecretBytes = 64
)

// parseSecret checks a delivery.secret and returns its key. Standard
// base64, padded or not; the URL-safe alphabet and whitespace are refused,
// since the receiver's Standard Webhooks library would decode them
// differently or not at all.
func parseSecret(secret string) ([]byte, error) {
	text, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("must start with %s", secretPrefix)
	}
	if strings.ContainsAny(text, "-_ \t\r\n") {
		return nil, fmt.Errorf("must be standard base64 after %s", secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(text)
	}
	if err != nil {
		return nil, fmt.Errorf("must be standard base64 after %s", secretPrefix)
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return nil, fmt.Errorf("must decode to %d-%d bytes, not %d", minSecretBytes, maxSecretBytes, len(key))
	}
	return key, nil
}

// signedHeaders sets the Standard Webhooks headers of one attempt: the
// message ID, the attempt's own timestamp, and one v1 signature per key
// (several while a replaced secret is still in its grace period), each an
// HMAC-SHA256 over "id.timestamp." and the exact body bytes sent.
func signedHeaders(h http.Header, msgID string, at time.Time, body []byte, keys [][]byte) {
	ts := strconv.FormatInt(at.Unix(), 10)
	sigs := make([]string, len(keys))
	for i, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(msgID))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	h.Set("Content-Type", "application/json")
	h.Set("webhook-id", msgID)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", strings.Join(sigs, " "))
}

// randomToken is 32 random bytes, URL-safe: challenge nonces and control
// message IDs.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}
