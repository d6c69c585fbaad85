package subscribe

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func secretOf(n int) string {
	return secretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, n))
}

func TestParseSecret(t *testing.T) {
	for _, c := range []struct {
		secret string
		ok     bool
	}{
		{secretOf(24), true},
		{secretOf(64), true},
		{strings.TrimRight(secretOf(32), "="), true}, // unpadded
		{secretOf(23), false},
		{secretOf(65), false},
		{"", false},
		{"abc", false},
		{base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)), false}, // no prefix
		{"whsec_!!!", false},
		{secretPrefix + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 30)), false}, // URL alphabet
		{secretOf(32)[:20] + " " + secretOf(32)[20:], false},
	} {
		if _, err := parseSecret(c.secret); (err == nil) != c.ok {
			t.Errorf("parseSecret(%q) = %v, want ok %v", c.secret, err, c.ok)
		}
	}
}

// TestSignedHeadersVerify checks the signature with the official Standard
// Webhooks library, one secret and two (rotation).
func TestSignedHeadersVerify(t *testing.T) {
	body := []byte(`{"eventId":"evt_1","name":"orders"}`)
	s1, s2 := secretOf(32), secretOf(40)
	k1, _ := parseSecret(s1)
	k2, _ := parseSecret(s2)
	h := http.Header{}
	signedHeaders(h, "evt_1", time.Now(), body, [][]byte{k2, k1})
	if got := len(strings.Fields(h.Get("webhook-signature"))); got != 2 {
		t.Fatalf("%d signatures, want 2", got)
	}
	for _, s := range []string{s1, s2} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("verify with %.12s...: %v", s, err)
		}
		if err := wh.Verify(append(body, ' '), h); err == nil {
			t.Error("a changed body verified")
		}
	}
}
