package verify

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-github/v92/github"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v85/webhook"
)

// These tests check the verifiers against the providers' official (or, for
// GitHub, de-facto) Go libraries: what the library signs, we accept; what we
// accept or refuse, the library accepts or refuses too. The libraries read
// time.Now when verifying with a tolerance, so only their signers and their
// tolerance-free verifiers are used, with timestamps near the fixed clock.

var crossBodies = [][]byte{
	[]byte(`{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}`),
	[]byte("{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}"),
	[]byte(`{"data":{"id":">id<","note":"ünïcödé \u2028"}}`),
	[]byte(""),
	{0x00, 0xff, 0xfe, '.', '\n'},
	bytes.Repeat([]byte("0123456789abcdef"), 4096),
}

// tamper returns body with one byte changed, or one byte added if empty.
func tamper(body []byte) []byte {
	if len(body) == 0 {
		return []byte{'x'}
	}
	b := bytes.Clone(body)
	b[len(b)/2] ^= 0x20
	return b
}

func TestStripeGo(t *testing.T) {
	const secret = "whsec_test_secret"
	for i, body := range crossBodies {
		at := testNow.Add(-time.Duration(i*37) * time.Second)
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
			Payload: body, Secret: secret, Timestamp: at,
		})
		h := headerOf("Stripe-Signature", signed.Header)

		res, err := Verify("stripe", []string{"whsec_other", secret}, "", h, body, testNow)
		if err != nil {
			t.Fatalf("body %d: stripe-go signature refused: %v", i, err)
		}
		if !res.Timestamp.Equal(time.Unix(at.Unix(), 0)) {
			t.Errorf("body %d: Timestamp = %v, want %v", i, res.Timestamp, at)
		}

		// Our test signer produces exactly stripe-go's header, and stripe-go
		// accepts it.
		ours := signStripe(secret, "", body, at, nil).Get("Stripe-Signature")
		if ours != signed.Header {
			t.Errorf("body %d: signer header %q, stripe-go %q", i, ours, signed.Header)
		}
		if err := webhook.ValidatePayloadIgnoringTolerance(body, ours, secret); err != nil {
			t.Errorf("body %d: stripe-go refuses our signature: %v", i, err)
		}

		bad := tamper(body)
		if _, err := Verify("stripe", []string{secret}, "", h, bad, testNow); err == nil {
			t.Errorf("body %d: tampered body accepted", i)
		}
		if err := webhook.ValidatePayloadIgnoringTolerance(bad, signed.Header, secret); err == nil {
			t.Errorf("body %d: stripe-go accepted a tampered body", i)
		}
	}

	// stripe-go's test events add a v0 signature; it must be ignored, not
	// needed, and not enough.
	body := crossBodies[0]
	v0 := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: body, Secret: secret, Timestamp: testNow, Scheme: "v0",
	})
	if _, err := Verify("stripe", []string{secret}, "", headerOf("Stripe-Signature", v0.Header), body, testNow); err == nil {
		t.Error("v0-only header accepted")
	}
	if err := webhook.ValidatePayloadIgnoringTolerance(body, v0.Header, secret); err == nil {
		t.Error("stripe-go accepted a v0-only header")
	}
}

func TestGoGitHub(t *testing.T) {
	const secret = "It's a Secret to Everybody"
	for i, body := range crossBodies {
		for _, bad := range []bool{false, true} {
			h := signGitHub(secret, "", body, testNow, nil)
			sig := h.Get("X-Hub-Signature-256")
			payload := body
			if bad {
				payload = tamper(body)
			}
			_, ours := Verify("github", []string{secret}, "", h, payload, testNow)
			theirs := github.ValidateSignature(sig, payload, []byte(secret))
			if (ours == nil) != (theirs == nil) {
				t.Errorf("body %d tampered=%v: ours %v, go-github %v", i, bad, ours, theirs)
			}
			if (ours == nil) == bad {
				t.Errorf("body %d tampered=%v: ours %v", i, bad, ours)
			}
		}
	}

	// Form-encoded delivery: the MAC covers the form bytes. go-github's
	// ValidatePayloadFromBody decodes the form after checking them.
	form := []byte("payload=%7B%22action%22%3A%22opened%22%7D")
	h := signGitHub(secret, "", form, testNow, nil)
	h.Set("X-GitHub-Event", "issues")
	payload, err := github.ValidatePayloadFromBody("application/x-www-form-urlencoded",
		bytes.NewReader(form), h.Get("X-Hub-Signature-256"), []byte(secret))
	if err != nil {
		t.Fatalf("go-github refuses form delivery: %v", err)
	}
	if string(payload) != `{"action":"opened"}` {
		t.Errorf("go-github payload = %s", payload)
	}
	res, err := Verify("github", []string{secret}, "", h, form, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if res.EventType != "issues.opened" {
		t.Errorf("EventType = %q, want issues.opened", res.EventType)
	}

	// The legacy SHA-1 header, which go-github also accepts.
	legacy := signIntercom(secret, "", form, testNow, nil).Get("X-Hub-Signature")
	if err := github.ValidateSignature(legacy, form, []byte(secret)); err != nil {
		t.Fatalf("go-github refuses sha1: %v", err)
	}
	if _, err := Verify("github", []string{secret}, "", headerOf("X-Hub-Signature", legacy), form, testNow); err != nil {
		t.Errorf("sha1-only delivery refused: %v", err)
	}
}

func TestStandardWebhooksLibrary(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	rolled, err := standardwebhooks.NewWebhook(secretB)
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range crossBodies {
		id := "msg_" + strconv.Itoa(i)
		at := testNow.Add(time.Duration(i*41) * time.Second)
		sig, err := wh.Sign(id, at, body)
		if err != nil {
			t.Fatal(err)
		}
		old, err := rolled.Sign(id, at, body)
		if err != nil {
			t.Fatal(err)
		}
		ts := strconv.FormatInt(at.Unix(), 10)
		for _, list := range []string{sig, old + " " + sig} {
			for _, h := range []http.Header{
				headerOf("webhook-id", id, "webhook-timestamp", ts, "webhook-signature", list),
				headerOf("svix-id", id, "svix-timestamp", ts, "svix-signature", list),
			} {
				scheme := "svix"
				if h.Get("webhook-id") != "" {
					scheme = "standard-webhooks"
					if err := wh.VerifyIgnoringTimestamp(body, h); err != nil {
						t.Fatalf("library refuses its own signature: %v", err)
					}
				}
				res, err := Verify(scheme, []string{secret}, "", h, body, testNow)
				if err != nil {
					t.Errorf("body %d %s %q: %v", i, scheme, list, err)
					continue
				}
				if res.ProviderEventID != id || !res.Timestamp.Equal(time.Unix(at.Unix(), 0)) {
					t.Errorf("body %d %s: result %+v", i, scheme, res)
				}
				if _, err := Verify(scheme, []string{secret}, "", h, tamper(body), testNow); err == nil {
					t.Errorf("body %d %s: tampered body accepted", i, scheme)
				}
			}
		}

		// The library accepts what our signer produces, and refuses a
		// tampered body just as we do.
		ours := signStandardWebhooks(secret, "", body, at, nil)
		if err := wh.VerifyIgnoringTimestamp(body, ours); err != nil {
			t.Errorf("body %d: library refuses our signature: %v", i, err)
		}
		if err := wh.VerifyIgnoringTimestamp(tamper(body), ours); err == nil {
			t.Errorf("body %d: library accepted a tampered body", i)
		}
	}
}
