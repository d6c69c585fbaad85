package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The signers below play the provider: each builds the headers a delivery
// of body, signed with secret at time at, would carry. They are written
// from the providers' documentation independently of the verifiers, so a
// test that signs here and verifies there checks one against the other.
//
// mangle, when not nil, rewrites the raw MAC before it is encoded, so
// that tests can build well-formed signatures of the wrong length.
type signer func(secret, url string, body []byte, at time.Time, mangle func([]byte) []byte) http.Header

// testID is the delivery ID the signers send where the scheme signs one.
const testID = "msg_2mW5bA1sTzv0QkK1"

var testSigners = map[string]signer{
	"generic":           signGeneric,
	"github":            signGitHub,
	"intercom":          signIntercom,
	"linear":            signLinear,
	"pagerduty":         signPagerDuty,
	"shopify":           signShopify,
	"slack":             signSlack,
	"square":            signSquare,
	"standard-webhooks": signStandardWebhooks,
	"stripe":            signStripe,
	"svix":              signSvix,
	"twilio":            signTwilio,
	"zendesk":           signZendesk,
}

func mac(h func() hash.Hash, key []byte, msg ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range msg {
		m.Write(p)
	}
	return m.Sum(nil)
}

func apply(mangle func([]byte) []byte, b []byte) []byte {
	if mangle == nil {
		return b
	}
	return mangle(b)
}

func headerOf(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func signGeneric(secret, _ string, body []byte, _ time.Time, mangle func([]byte) []byte) http.Header {
	sum := apply(mangle, mac(sha256.New, []byte(secret), body))
	return headerOf("X-Webhook-Signature", hex.EncodeToString(sum))
}

func signStripe(secret, _ string, body []byte, at time.Time, mangle func([]byte) []byte) http.Header {
	t := strconv.FormatInt(at.Unix(), 10)
	sum := apply(mangle, mac(sha256.New, []byte(secret), []byte(t+"."), body))
	return headerOf("Stripe-Signature", "t="+t+",v1="+hex.EncodeToString(sum))
}

func signGitHub(secret, _ string, body []byte, _ time.Time, mangle func([]byte) []byte) http.Header {
	sum := apply(mangle, mac(sha256.New, []byte(secret), body))
	return headerOf("X-Hub-Signature-256", "sha256="+hex.EncodeToString(sum))
}

func signShopify(secret, _ string, body []byte, _ time.Time, mangle func([]byte) []byte) http.Header {
	sum := apply(mangle, mac(sha256.New, []byte(secret), body))
	return headerOf("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(sum))
}

func signZendesk(secret, _ string, body []byte, at time.Time, mangle func([]byte) []byte) http.Header {
	ts := at.UTC().Format(time.RFC3339)
	sum := apply(mangle, mac(sha256.New, []byte(secret), []byte(ts), body))
	return headerOf(
		"X-Zendesk-Webhook-Signature", base64.StdEncoding.EncodeToString(sum),
		"X-Zendesk-Webhook-Signature-Timestamp", ts,
	)
}

func signSlack(secret, _ string, body []byte, at time.Time, mangle func([]byte) []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	sum := apply(mangle, mac(sha256.New, []byte(secret), []byte("v0:"+ts+":"), body))
	return headerOf(
		"X-Slack-Signature", "v0="+hex.EncodeToString(sum),
		"X-Slack-Request-Timestamp", ts,
	)
}

// standardSignature returns "v1,<base64>" for a whsec_ secret.
func standardSignature(secret, id string, body []byte, at time.Time, mangle func([]byte) []byte) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic("test secret is not base64: " + secret)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	sum := apply(mangle, mac(sha256.New, key, []byte(id+"."+ts+"."), body))
	return "v1," + base64.StdEncoding.EncodeToString(sum)
}

func signStandardWebhooks(secret, _ string, body []byte, at time.Time, mangle func([]byte) []byte) http.Header {
	return headerOf(
		"webhook-id", testID,
		"webhook-timestamp", strconv.FormatInt(at.Unix(), 10),
		"webhook-signature", standardSignature(secret, testID, body, at, mangle),
	)
}

func signSvix(secret, _ string, body []byte, at time.Time, mangle func([]byte) []byte) http.Header {
	return headerOf(
		"svix-id", testID,
		"svix-timestamp", strconv.FormatInt(at.Unix(), 10),
		"svix-signature", standardSignature(secret, testID, body, at, mangle),
	)
}

// signTwilio signs a form body: the URL, then each name and value with
// names in byte order and a repeated name's values sorted. If the URL
// carries bodySHA256 it signs the URL alone, as Twilio does for JSON.
func signTwilio(secret, rawURL string, body []byte, _ time.Time, mangle func([]byte) []byte) http.Header {
	msg := rawURL
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	if !u.Query().Has("bodySHA256") {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			panic(err)
		}
		var names []string
		for k := range form {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			vs := slices.Clone(form[k])
			slices.Sort(vs)
			for _, v := range vs {
				msg += k + v
			}
		}
	}
	sum := apply(mangle, mac(sha1.New, []byte(secret), []byte(msg)))
	return headerOf("X-Twilio-Signature", base64.StdEncoding.EncodeToString(sum))
}

// signLinear signs body as is; the caller puts webhookTimestamp in it.
func signLinear(secret, _ string, body []byte, _ time.Time, mangle func([]byte) []byte) http.Header {
	sum := apply(mangle, mac(sha256.New, []byte(secret), body))
	return headerOf("Linear-Signature", hex.EncodeToString(sum))
}

func signIntercom(secret, _ string, body []byte, _ time.Time, mangle func([]byte) []byte) http.Header {
	sum := apply(mangle, mac(sha1.New, []byte(secret), body))
	return headerOf("X-Hub-Signature", "sha1="+hex.EncodeToString(sum))
}

func signPagerDuty(secret, _ string, body []byte, _ time.Time, mangle func([]byte) []byte) http.Header {
	sum := apply(mangle, mac(sha256.New, []byte(secret), body))
	return headerOf("X-PagerDuty-Signature", "v1="+hex.EncodeToString(sum))
}

func signSquare(secret, url string, body []byte, _ time.Time, mangle func([]byte) []byte) http.Header {
	sum := apply(mangle, mac(sha256.New, []byte(secret), []byte(url), body))
	return headerOf("x-square-hmacsha256-signature", base64.StdEncoding.EncodeToString(sum))
}

// bodySHA256URL returns rawURL with Twilio's bodySHA256 parameter for body.
func bodySHA256URL(rawURL string, body []byte) string {
	sum := sha256.Sum256(body)
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
	}
	return rawURL + sep + "bodySHA256=" + hex.EncodeToString(sum[:])
}
