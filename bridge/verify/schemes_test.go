package verify

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// testNow is the verifier's clock in tests that do not take it from a vector.
var testNow = time.Date(2026, 11, 25, 6, 40, 0, 0, time.UTC)

const (
	secretA = "whsec_c2VjcmV0LW51bWJlci1vbmUtZm9yLXRlc3Rz" // base64 after whsec_, so Standard Webhooks can use it too
	secretB = "whsec_c2Vjb25kLXNlY3JldC1hZnRlci1yb3RhdGlvbg=="
)

// schemeCase is what the table tests need to know about one scheme.
type schemeCase struct {
	scheme    string
	sigHeader string                    // removed to test ErrMissingSignature
	window    time.Duration             // default timestamp window; 0 if the scheme signs no time
	url       string                    // the URL the provider called
	body      func(at time.Time) []byte // a delivery body sent at time at
}

func jsonBody(time.Time) []byte {
	return []byte(`{"id":"evt_1","type":"thing.happened","data":{"note":"<b>&amp;</b> ünïcode"}}`)
}

func schemeCases() []schemeCase {
	return []schemeCase{
		{scheme: "generic", sigHeader: "X-Webhook-Signature", body: jsonBody},
		{scheme: "stripe", sigHeader: "Stripe-Signature", window: 300 * time.Second, body: jsonBody},
		{scheme: "github", sigHeader: "X-Hub-Signature-256", body: jsonBody},
		{scheme: "shopify", sigHeader: "X-Shopify-Hmac-Sha256", body: jsonBody},
		{scheme: "zendesk", sigHeader: "X-Zendesk-Webhook-Signature", window: 300 * time.Second, body: jsonBody},
		{scheme: "slack", sigHeader: "X-Slack-Signature", window: 300 * time.Second, body: jsonBody},
		{scheme: "standard-webhooks", sigHeader: "webhook-signature", window: 300 * time.Second, body: jsonBody},
		{scheme: "svix", sigHeader: "svix-signature", window: 300 * time.Second, body: jsonBody},
		{
			scheme: "twilio", sigHeader: "X-Twilio-Signature",
			url: "https://hooks.example.com/h/abc?x=1",
			body: func(time.Time) []byte {
				return []byte("MessageSid=SM123&MessageStatus=delivered&To=%2B15550001111&Body=hi+there&Body=again")
			},
		},
		{
			scheme: "linear", sigHeader: "Linear-Signature", window: 60 * time.Second,
			body: func(at time.Time) []byte {
				return fmt.Appendf(nil, `{"action":"create","type":"Issue","data":{"id":"i1"},"webhookTimestamp":%d}`, at.UnixMilli())
			},
		},
		{scheme: "intercom", sigHeader: "X-Hub-Signature", body: jsonBody},
		{scheme: "pagerduty", sigHeader: "X-PagerDuty-Signature", body: jsonBody},
		{scheme: "square", sigHeader: "x-square-hmacsha256-signature", url: "https://hooks.example.com/h/sq", body: jsonBody},
	}
}

// sign signs c's body sent at time at with secret.
func (c schemeCase) sign(secret string, at time.Time) (http.Header, []byte) {
	body := c.body(at)
	return testSigners[c.scheme](secret, c.url, body, at, nil), body
}

func TestSchemeCasesCoverEveryScheme(t *testing.T) {
	var names []string
	for _, c := range schemeCases() {
		names = append(names, c.scheme)
		if testSigners[c.scheme] == nil {
			t.Errorf("no test signer for %q", c.scheme)
		}
	}
	slices.Sort(names)
	if got := Schemes(); !slices.Equal(got, names) {
		t.Errorf("Schemes() = %v, table covers %v", got, names)
	}
}

func TestSchemes(t *testing.T) {
	want := []string{"generic", "github", "intercom", "linear", "pagerduty", "shopify", "slack",
		"square", "standard-webhooks", "stripe", "svix", "twilio", "zendesk"}
	if got := Schemes(); !slices.Equal(got, want) {
		t.Errorf("Schemes() = %v, want %v", got, want)
	}
	// The result is the caller's to modify.
	Schemes()[0] = "mutated"
	if got := Schemes(); !slices.Equal(got, want) {
		t.Errorf("Schemes() after a caller modified its result = %v", got)
	}
	for _, s := range want {
		if !Known(s) {
			t.Errorf("Known(%q) = false", s)
		}
	}
	for _, s := range []string{"", "Stripe", "github ", "standard_webhooks", "hmac"} {
		if Known(s) {
			t.Errorf("Known(%q) = true", s)
		}
	}
}

func TestUnknownScheme(t *testing.T) {
	_, err := Verify("stripe-v2", []string{secretA}, "", http.Header{}, nil, testNow)
	if !errors.Is(err, ErrUnknownScheme) {
		t.Fatalf("err = %v, want ErrUnknownScheme", err)
	}
}

func TestPerScheme(t *testing.T) {
	for _, c := range schemeCases() {
		t.Run(c.scheme, func(t *testing.T) {
			verify := func(o Options, secrets []string, h http.Header, body []byte) (Result, error) {
				return o.Verify(c.scheme, secrets, c.url, h, body, testNow)
			}
			wantErr := func(t *testing.T, err, want error) {
				t.Helper()
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
				if !strings.HasPrefix(err.Error(), c.scheme+": ") {
					t.Errorf("error %q does not name the scheme", err)
				}
			}

			t.Run("valid", func(t *testing.T) {
				h, body := c.sign(secretA, testNow)
				res, err := verify(Options{}, []string{secretA}, h, body)
				if err != nil {
					t.Fatal(err)
				}
				if c.window > 0 && !res.Timestamp.Equal(testNow) {
					t.Errorf("Timestamp = %v, want %v", res.Timestamp, testNow)
				}
			})

			t.Run("rotation", func(t *testing.T) {
				h, body := c.sign(secretB, testNow)
				if _, err := verify(Options{}, []string{secretA, secretB}, h, body); err != nil {
					t.Fatalf("second secret: %v", err)
				}
				_, err := verify(Options{}, []string{secretA}, h, body)
				wantErr(t, err, ErrBadSignature)
			})

			t.Run("blank secrets skipped", func(t *testing.T) {
				h, body := c.sign(secretA, testNow)
				if _, err := verify(Options{}, []string{"", secretA}, h, body); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("no secret", func(t *testing.T) {
				h, body := c.sign(secretA, testNow)
				for _, secrets := range [][]string{nil, {}, {""}} {
					_, err := verify(Options{}, secrets, h, body)
					wantErr(t, err, ErrNoSecret)
				}
			})

			t.Run("missing header", func(t *testing.T) {
				h, body := c.sign(secretA, testNow)
				h.Del(c.sigHeader)
				_, err := verify(Options{}, []string{secretA}, h, body)
				wantErr(t, err, ErrMissingSignature)
				_, err = verify(Options{}, []string{secretA}, nil, body)
				wantErr(t, err, ErrMissingSignature)
			})

			t.Run("tampered body", func(t *testing.T) {
				h, body := c.sign(secretA, testNow)
				for _, i := range []int{0, len(body) / 2, len(body) - 1} {
					tampered := bytes.Clone(body)
					tampered[i] ^= 0x01
					_, err := verify(Options{}, []string{secretA}, h, tampered)
					wantErr(t, err, ErrBadSignature)
				}
				_, err := verify(Options{}, []string{secretA}, h, append(bytes.Clone(body), ' '))
				wantErr(t, err, ErrBadSignature)
			})

			t.Run("wrong length", func(t *testing.T) {
				body := c.body(testNow)
				for _, mangle := range []func([]byte) []byte{
					func(b []byte) []byte { return b[:len(b)-1] },
					func(b []byte) []byte { return append(b, 0) },
					func(b []byte) []byte { return b[:len(b)/2] },
					func(b []byte) []byte { return b[:1] },
				} {
					h := testSigners[c.scheme](secretA, c.url, body, testNow, mangle)
					_, err := verify(Options{}, []string{secretA}, h, body)
					wantErr(t, err, ErrBadSignature)
				}
			})

			if c.window == 0 {
				t.Run("no timestamp", func(t *testing.T) {
					// Schemes without a signed time accept any clock.
					h, body := c.sign(secretA, testNow)
					for _, now := range []time.Time{testNow.Add(-1000 * time.Hour), testNow.Add(1000 * time.Hour)} {
						if _, err := Verify(c.scheme, []string{secretA}, c.url, h, body, now); err != nil {
							t.Errorf("now %v: %v", now, err)
						}
					}
				})
				return
			}

			t.Run("window edges", func(t *testing.T) {
				for _, at := range []time.Time{testNow.Add(-c.window), testNow.Add(c.window)} {
					h, body := c.sign(secretA, at)
					if _, err := verify(Options{}, []string{secretA}, h, body); err != nil {
						t.Errorf("signed at now%+v: %v", at.Sub(testNow), err)
					}
				}
			})

			t.Run("stale", func(t *testing.T) {
				h, body := c.sign(secretA, testNow.Add(-c.window-time.Second))
				_, err := verify(Options{}, []string{secretA}, h, body)
				wantErr(t, err, ErrStale)
			})

			t.Run("future", func(t *testing.T) {
				h, body := c.sign(secretA, testNow.Add(c.window+time.Second))
				_, err := verify(Options{}, []string{secretA}, h, body)
				wantErr(t, err, ErrStale)
			})

			t.Run("stale and forged", func(t *testing.T) {
				// Staleness is reported only for authentic deliveries, so
				// forgeries are never counted as replays.
				h, body := c.sign(secretB, testNow.Add(-24*time.Hour))
				_, err := verify(Options{}, []string{secretA}, h, body)
				wantErr(t, err, ErrBadSignature)
			})

			t.Run("tolerance narrows", func(t *testing.T) {
				o := Options{Tolerance: c.window / 2}
				h, body := c.sign(secretA, testNow.Add(-c.window/2-time.Second))
				_, err := verify(o, []string{secretA}, h, body)
				wantErr(t, err, ErrStale)
				h, body = c.sign(secretA, testNow.Add(c.window/2+time.Second))
				_, err = verify(o, []string{secretA}, h, body)
				wantErr(t, err, ErrStale)
				h, body = c.sign(secretA, testNow.Add(-c.window/2))
				if _, err := verify(o, []string{secretA}, h, body); err != nil {
					t.Errorf("inside narrowed window: %v", err)
				}
			})

			t.Run("tolerance widens", func(t *testing.T) {
				o := Options{Tolerance: 10 * time.Minute}
				h, body := c.sign(secretA, testNow.Add(-9*time.Minute))
				_, err := verify(o, []string{secretA}, h, body)
				if c.scheme == "linear" {
					// Linear's window stays at its SDK's 60 s.
					wantErr(t, err, ErrStale)
					return
				}
				if err != nil {
					t.Fatalf("inside widened window: %v", err)
				}
				_, err = verify(Options{}, []string{secretA}, h, body)
				wantErr(t, err, ErrStale)
			})

			t.Run("negative tolerance is the default", func(t *testing.T) {
				h, body := c.sign(secretA, testNow.Add(-c.window))
				if _, err := verify(Options{Tolerance: -time.Second}, []string{secretA}, h, body); err != nil {
					t.Errorf("at the default window's edge: %v", err)
				}
				h, body = c.sign(secretA, testNow.Add(-c.window-time.Second))
				_, err := verify(Options{Tolerance: -time.Second}, []string{secretA}, h, body)
				wantErr(t, err, ErrStale)
			})
		})
	}
}
