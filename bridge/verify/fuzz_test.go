package verify

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Each fuzz target feeds arbitrary header values to a parser and checks
// two properties: verification never panics and fails only with a
// sentinel error, and a delivery our own signer makes over the fuzzed body
// and time always verifies.

// seedVectors calls add for each shared vector of the given scheme.
func seedVectors(f *testing.F, scheme string, add func(v vector)) {
	for _, v := range loadVectors(f) {
		if v.scheme() == scheme {
			add(v)
		}
	}
}

// mustClassify fails unless err is nil or wraps a request-caused sentinel.
func mustClassify(t *testing.T, err error) {
	t.Helper()
	if err != nil && !classified(err) {
		t.Fatalf("unclassified error: %v", err)
	}
}

func FuzzStripeHeader(f *testing.F) {
	const secret = "whsec_test_secret"
	seedVectors(f, "stripe", func(v vector) {
		f.Add(v.Headers["Stripe-Signature"], []byte(v.Body), v.now().Unix())
	})
	f.Add("t=,v1=,v0=", []byte{}, int64(-1))
	f.Add("t=9223372036854775807,v1=00", []byte("{}"), int64(-9223372036854775808))
	f.Fuzz(func(t *testing.T, header string, body []byte, unix int64) {
		now := time.Unix(unix, 0)
		_, err := Verify("stripe", []string{secret}, "", headerOf("Stripe-Signature", header), body, now)
		mustClassify(t, err)

		res, err := Verify("stripe", []string{secret}, "", signStripe(secret, "", body, now, nil), body, now)
		if err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if !res.Timestamp.Equal(now) {
			t.Fatalf("Timestamp = %v, want %v", res.Timestamp, now)
		}
	})
}

func FuzzStandardWebhooksSignature(f *testing.F) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	seedVectors(f, "standard-webhooks", func(v vector) {
		f.Add(v.Headers["webhook-signature"], v.Headers["webhook-id"], []byte(v.Body), v.now().Unix())
	})
	f.Add("v1, v1,= v1a,AAAA ,", "msg.", []byte{}, int64(0))
	f.Fuzz(func(t *testing.T, sig, id string, body []byte, unix int64) {
		now := time.Unix(unix, 0)
		ts := strconv.FormatInt(unix, 10)
		for _, scheme := range []string{"standard-webhooks", "svix"} {
			h := headerOf("webhook-id", id, "webhook-timestamp", ts, "webhook-signature", sig)
			_, err := Verify(scheme, []string{secret}, "", h, body, now)
			mustClassify(t, err)
		}
		// A dot in the ID is refused by design, and an empty ID is absent.
		if id == "" || strings.Contains(id, ".") {
			return
		}
		signed := standardSignature(secret, id, body, now, nil)
		for _, h := range []http.Header{
			headerOf("webhook-id", id, "webhook-timestamp", ts, "webhook-signature", sig+" "+signed),
			headerOf("svix-id", id, "svix-timestamp", ts, "svix-signature", signed+" "+sig),
		} {
			scheme := "standard-webhooks"
			if h.Get("svix-id") != "" {
				scheme = "svix"
			}
			res, err := Verify(scheme, []string{secret}, "", h, body, now)
			if err != nil {
				t.Fatalf("%s: own signature refused: %v", scheme, err)
			}
			if res.ProviderEventID != id {
				t.Fatalf("%s: ProviderEventID = %q, want %q", scheme, res.ProviderEventID, id)
			}
		}
	})
}

func FuzzPagerDutyList(f *testing.F) {
	const secret = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"
	seedVectors(f, "pagerduty", func(v vector) {
		f.Add(v.Headers["X-PagerDuty-Signature"], []byte(v.Body))
	})
	f.Add(",,v1=,v1=zz, v1=00 ,", []byte{})
	f.Fuzz(func(t *testing.T, list string, body []byte) {
		_, err := Verify("pagerduty", []string{secret}, "", headerOf("X-PagerDuty-Signature", list), body, testNow)
		mustClassify(t, err)

		// A valid entry anywhere in an otherwise arbitrary list is enough.
		own := signPagerDuty(secret, "", body, testNow, nil).Get("X-PagerDuty-Signature")
		for _, h := range []string{own, list + "," + own, own + "," + list} {
			if _, err := Verify("pagerduty", []string{secret}, "", headerOf("X-PagerDuty-Signature", h), body, testNow); err != nil {
				t.Fatalf("list %q: own signature refused: %v", h, err)
			}
		}
	})
}

func FuzzGenericSignature(f *testing.F) {
	const secret = "It's a Secret to Everybody"
	seedVectors(f, "generic", func(v vector) {
		f.Add(v.Headers["X-Webhook-Signature"], []byte(v.Body))
	})
	f.Add("sha256=", []byte{})
	f.Add("sha256=sha256=00", []byte("{"))
	f.Fuzz(func(t *testing.T, sig string, body []byte) {
		_, err := Verify("generic", []string{secret}, "", headerOf("X-Webhook-Signature", sig), body, testNow)
		mustClassify(t, err)

		own := signGeneric(secret, "", body, testNow, nil).Get("X-Webhook-Signature")
		for _, s := range []string{own, "sha256=" + own, strings.ToUpper(own)} {
			if _, err := Verify("generic", []string{secret}, "", headerOf("X-Webhook-Signature", s), body, testNow); err != nil {
				t.Fatalf("%q: own signature refused: %v", s, err)
			}
		}
	})
}

func FuzzSlack(f *testing.F) {
	const secret = "8f742231b10e8888abcd99yyyzzz85a5"
	seedVectors(f, "slack", func(v vector) {
		f.Add(v.Headers["X-Slack-Signature"], v.Headers["X-Slack-Request-Timestamp"], []byte(v.Body), v.now().Unix())
	})
	f.Add("v0=", "", []byte(`{"type":"url_verification","challenge":"x"}`), int64(0))
	f.Fuzz(func(t *testing.T, sig, ts string, body []byte, unix int64) {
		now := time.Unix(unix, 0)
		h := headerOf("X-Slack-Signature", sig, "X-Slack-Request-Timestamp", ts)
		_, err := Verify("slack", []string{secret}, "", h, body, now)
		mustClassify(t, err)

		res, err := Verify("slack", []string{secret}, "", signSlack(secret, "", body, now, nil), body, now)
		if err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if !res.Timestamp.Equal(now) {
			t.Fatalf("Timestamp = %v, want %v", res.Timestamp, now)
		}
	})
}

func FuzzZendeskTimestamp(f *testing.F) {
	const secret = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
	seedVectors(f, "zendesk", func(v vector) {
		f.Add(v.Headers["X-Zendesk-Webhook-Signature-Timestamp"], v.Headers["X-Zendesk-Webhook-Signature"], []byte(v.Body), v.now().Unix())
	})
	f.Add("2021-03-25T05:09:27+14:00", "====", []byte{}, int64(0))
	f.Add("9999-99-99T99:99:99Z", "", []byte("{}"), int64(-1))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte, unix int64) {
		now := time.Unix(unix, 0)
		h := headerOf("X-Zendesk-Webhook-Signature", sig, "X-Zendesk-Webhook-Signature-Timestamp", ts)
		_, err := Verify("zendesk", []string{secret}, "", h, body, now)
		mustClassify(t, err)

		if _, err := Verify("zendesk", []string{secret}, "", signZendesk(secret, "", body, now, nil), body, now); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
	})
}

func FuzzTwilioURL(f *testing.F) {
	const secret = "12345"
	seedVectors(f, "twilio", func(v vector) {
		f.Add(v.URL, v.Headers["X-Twilio-Signature"], []byte(v.Body))
	})
	f.Add("https://h.example/hooks/x?bodySHA256=zz", "", []byte("a=1&a=0&b"))
	f.Add("://no-scheme", "AAAA", []byte("%zz"))
	f.Fuzz(func(t *testing.T, rawURL, sig string, body []byte) {
		h := headerOf("X-Twilio-Signature", sig, "Content-Type", "application/x-www-form-urlencoded")
		_, err := Verify("twilio", []string{secret}, rawURL, h, body, testNow)
		mustClassify(t, err)
	})
}
