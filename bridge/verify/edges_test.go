package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests in this file pin down scheme-specific rules that the shared
// vectors and the generic table do not reach.

func TestStripeHeader(t *testing.T) {
	body := `{"id":"evt_1","type":"charge.succeeded"}`
	ts := strconv.FormatInt(testNow.Unix(), 10)
	v1 := hex.EncodeToString(mac(sha256.New, []byte(secretA), []byte(ts+"."+body)))
	hdr := func(v string) http.Header { return headerOf("Stripe-Signature", v) }
	runVerifyErrs(t, []verifyErr{
		{name: "plain", header: hdr("t=" + ts + ",v1=" + v1)},
		{name: "order does not matter", header: hdr("v1=" + v1 + ",t=" + ts)},
		{name: "unknown scheme ignored", header: hdr("t=" + ts + ",v2=abcd,v1=" + v1 + ",foo=bar")},
		{name: "v0 never accepted", header: hdr("t=" + ts + ",v0=" + v1), want: ErrBadSignature},
		{name: "v0 beside a wrong v1", header: hdr("t=" + ts + ",v1=" + strings.Repeat("0", 64) + ",v0=" + v1), want: ErrBadSignature},
		{name: "element without =", header: hdr("t=" + ts + ",v1=" + v1 + ",junk"), want: ErrBadSignature},
		{name: "repeated t", header: hdr("t=" + ts + ",t=" + ts + ",v1=" + v1), want: ErrBadSignature},
		{name: "t not a number", header: hdr("t=now,v1=" + v1), want: ErrBadSignature},
		{name: "no v1", header: hdr("t=" + ts), want: ErrBadSignature},
		{name: "signed t differs", header: hdr("t=" + strconv.FormatInt(testNow.Unix()+1, 10) + ",v1=" + v1), want: ErrBadSignature},
		{name: "key is the whole whsec string", header: hdr("t=" + ts + ",v1=" +
			hex.EncodeToString(mac(sha256.New, []byte(strings.TrimPrefix(secretA, "whsec_")), []byte(ts+"."+body)))), want: ErrBadSignature},
	}, "stripe", body)
}

func TestGitHubSHA1Fallback(t *testing.T) {
	body := `{"action":"opened"}`
	s256 := "sha256=" + hex.EncodeToString(mac(sha256.New, []byte(secretA), []byte(body)))
	s1 := "sha1=" + hex.EncodeToString(mac(sha1.New, []byte(secretA), []byte(body)))
	bad256 := "sha256=" + strings.Repeat("ab", 32)
	runVerifyErrs(t, []verifyErr{
		{name: "sha256", header: headerOf("X-Hub-Signature-256", s256)},
		{name: "both", header: headerOf("X-Hub-Signature-256", s256, "X-Hub-Signature", s1)},
		{name: "sha1 alone", header: headerOf("X-Hub-Signature", s1)},
		{name: "bad sha256 not rescued by sha1", header: headerOf("X-Hub-Signature-256", bad256, "X-Hub-Signature", s1), want: ErrBadSignature},
		{name: "bare hex", header: headerOf("X-Hub-Signature-256", strings.TrimPrefix(s256, "sha256=")), want: ErrBadSignature},
		{name: "sha1 prefix in sha256 header", header: headerOf("X-Hub-Signature-256", s1), want: ErrBadSignature},
		{name: "sha256 in legacy header", header: headerOf("X-Hub-Signature", s256), want: ErrBadSignature},
		{name: "neither", header: headerOf("X-GitHub-Event", "ping"), want: ErrMissingSignature},
	}, "github", body)
}

func TestStandardWebhooksRules(t *testing.T) {
	body := `{"type":"a.b"}`
	at := strconv.FormatInt(testNow.Unix(), 10)
	sig := standardSignature(secretA, testID, []byte(body), testNow, nil)
	valid := func(kv ...string) http.Header {
		return headerOf(append([]string{"webhook-id", testID, "webhook-timestamp", at, "webhook-signature", sig}, kv...)...)
	}
	dotted := headerOf("webhook-id", "msg.1", "webhook-timestamp", at,
		"webhook-signature", standardSignature(secretA, "msg.1", []byte(body), testNow, nil))
	runVerifyErrs(t, []verifyErr{
		{name: "whsec secret", header: valid()},
		{name: "bare base64 secret", secrets: []string{strings.TrimPrefix(secretA, "whsec_")}, header: valid()},
		{name: "undecodable secret skipped", secrets: []string{"whsec_not base64!", secretA}, header: valid()},
		{name: "only undecodable secrets", secrets: []string{"whsec_not base64!"}, header: valid(), want: ErrNoSecret},
		{name: "v1a ignored", header: valid("webhook-signature", "v1a,"+strings.TrimPrefix(sig, "v1,")+" "+sig)},
		{name: "only v1a", header: valid("webhook-signature", "v1a,"+strings.TrimPrefix(sig, "v1,")), want: ErrBadSignature},
		{name: "extra spaces", header: valid("webhook-signature", "  v1,AAAA   "+sig+"  ")},
		{name: "dot in id", header: dotted, want: ErrBadSignature},
		{name: "timestamp not a number", header: valid("webhook-timestamp", at+".0"), want: ErrBadSignature},
		{name: "no timestamp", header: valid("webhook-timestamp", ""), want: ErrMissingSignature},
		{name: "svix headers ignored", scheme: "standard-webhooks",
			header: headerOf("svix-id", testID, "svix-timestamp", at, "svix-signature", sig), want: ErrMissingSignature},
	}, "standard-webhooks", body)

	svix := headerOf("svix-id", testID, "svix-timestamp", at, "svix-signature", sig)
	runVerifyErrs(t, []verifyErr{
		{name: "svix headers", header: svix},
		{name: "webhook headers", header: valid()},
		{name: "svix set preferred", header: valid("svix-id", testID, "svix-timestamp", at, "svix-signature", sig,
			"webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))},
		{name: "incomplete svix set falls back", header: valid("svix-id", testID, "svix-timestamp", at)},
		{name: "incomplete svix set alone", header: headerOf("svix-id", testID, "svix-signature", sig), want: ErrMissingSignature},
	}, "svix", body)
}

func TestSlackRules(t *testing.T) {
	// Slack's published example, which the shared vectors only use tampered
	// or stale.
	const (
		secret = "8f742231b10e8888abcd99yyyzzz85a5"
		body   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
		sig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
		ts     = "1531420618"
	)
	at := time.Unix(1531420618, 0)
	hdr := func(sig, ts string) http.Header {
		return headerOf("X-Slack-Signature", sig, "X-Slack-Request-Timestamp", ts)
	}
	runVerifyErrs(t, []verifyErr{
		{name: "docs example", secrets: []string{secret}, header: hdr(sig, ts), now: at},
		{name: "docs example 300 s later", secrets: []string{secret}, header: hdr(sig, ts), now: at.Add(300 * time.Second)},
		{name: "other version", secrets: []string{secret}, header: hdr("v1="+strings.TrimPrefix(sig, "v0="), ts), now: at, want: ErrBadSignature},
		{name: "no timestamp", secrets: []string{secret}, header: hdr(sig, ""), now: at, want: ErrMissingSignature},
		{name: "timestamp not a number", secrets: []string{secret}, header: hdr(sig, "1531420618.5"), now: at, want: ErrBadSignature},
		{name: "timestamp is signed", secrets: []string{secret}, header: hdr(sig, "1531420619"), now: at, want: ErrBadSignature},
	}, "slack", body)

	res, err := Verify("slack", []string{secret}, "", hdr(sig, ts), []byte(body), at)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, Result{EventType: "slash_command", Timestamp: at})
}

func TestTwilioRules(t *testing.T) {
	const (
		token = "12345"
		base  = "https://mycompany.com/myapp.php?foo=1&bar=2"
		form  = "To=%2B1555&Body=b&Body=a&MessageSid=SM1"
	)
	json := `{"property": "value", "boolean": true}`
	jsonURL := bodySHA256URL(base, []byte(json))
	upperURL := jsonURL[:len(jsonURL)-64] + strings.ToUpper(jsonURL[len(jsonURL)-64:])
	sign := func(url, body string) http.Header {
		return signTwilio(token, url, []byte(body), testNow, nil)
	}
	firstValueOnly := headerOf("X-Twilio-Signature", base64.StdEncoding.EncodeToString(
		mac(sha1.New, []byte(token), []byte(base+"Bodyb"+"MessageSidSM1"+"To+1555"))))
	tests := []verifyErr{
		{name: "form, repeated values all signed and sorted", url: base, header: sign(base, form), body: form},
		{name: "repeated values, first only", url: base, header: firstValueOnly, body: form, want: ErrBadSignature},
		{name: "form changed", url: base, header: sign(base, form), body: form + "&X=1", want: ErrBadSignature},
		{name: "not a form", url: base, header: sign(base, ""), body: "a=%zz", want: ErrBadSignature},
		{name: "url is signed", url: base + "&baz=3", header: sign(base, form), body: form, want: ErrBadSignature},
		{name: "no url", url: "", header: sign(base, form), body: form, want: ErrBadSignature},
		{name: "unparseable url", url: "https://exa mple.com/%zz", header: sign(base, form), body: form, want: ErrBadSignature},
		{name: "https signed with :443", url: base, header: sign("https://mycompany.com:443/myapp.php?foo=1&bar=2", form), body: form},
		{name: "http signed with :80", url: "http://mycompany.com/x", header: sign("http://mycompany.com:80/x", form), body: form},
		{name: "port kept", url: "https://mycompany.com:8443/x", header: sign("https://mycompany.com:8443/x", form), body: form},
		{name: "port dropped", url: "https://mycompany.com:8443/x", header: sign("https://mycompany.com/x", form), body: form},
		{name: "other port", url: "https://mycompany.com:8443/x", header: sign("https://mycompany.com:9443/x", form), body: form, want: ErrBadSignature},
		{name: "userinfo kept", url: "https://u:p@mycompany.com:8443/x", header: sign("https://u:p@mycompany.com/x", form), body: form},
		{name: "ipv6 port dropped", url: "https://[::1]:8443/x", header: sign("https://[::1]/x", form), body: form},
		{name: "ipv6 port added", url: "https://[::1]/x", header: sign("https://[::1]:443/x", form), body: form},
		{name: "json", url: jsonURL, header: sign(jsonURL, json), body: json},
		{name: "json body tampered", url: jsonURL, header: sign(jsonURL, json), body: json + " ", want: ErrBadSignature},
		{name: "json body hash not hex", url: base + "&bodySHA256=zz", header: sign(base+"&bodySHA256=zz", json), body: json, want: ErrBadSignature},
		{name: "json hash in upper case", url: upperURL, header: sign(upperURL, json), body: json},
	}
	for i := range tests {
		tests[i].secrets = []string{token}
	}
	runVerifyErrs(t, tests, "twilio", "")
}

func TestLinearRules(t *testing.T) {
	body := func(ms int64) string {
		return fmt.Sprintf(`{"type":"Issue","action":"create","webhookTimestamp":%d}`, ms)
	}
	sign := func(b string) http.Header { return signLinear(secretA, "", []byte(b), testNow, nil) }
	now := testNow.UnixMilli()
	tests := []verifyErr{
		{name: "now", body: body(now)},
		{name: "59.999 s old", body: body(now - 59999)},
		{name: "60 s old", body: body(now - 60000)},
		{name: "60.001 s old", body: body(now - 60001), want: ErrStale},
		{name: "60.001 s ahead", body: body(now + 60001), want: ErrStale},
		{name: "wide tolerance does not widen", body: body(now - 61000), opts: Options{Tolerance: time.Hour}, want: ErrStale},
		{name: "seconds, not milliseconds", body: body(testNow.Unix()), want: ErrStale},
		{name: "no webhookTimestamp", body: `{"type":"Issue","action":"create"}`, want: ErrBadSignature},
		{name: "webhookTimestamp not a number", body: `{"type":"Issue","webhookTimestamp":"soon"}`, want: ErrBadSignature},
		{name: "not JSON", body: "webhookTimestamp=1", want: ErrBadSignature},
	}
	for i := range tests {
		tests[i].header = sign(tests[i].body)
	}
	runVerifyErrs(t, tests, "linear", "")
}

func TestZendeskRules(t *testing.T) {
	body := `{"id":"1"}`
	ts := testNow.Format(time.RFC3339)
	sig := func(ts string) string {
		return base64.StdEncoding.EncodeToString(mac(sha256.New, []byte(secretA), []byte(ts+body)))
	}
	hdr := func(sig, ts string) http.Header {
		return headerOf("X-Zendesk-Webhook-Signature", sig, "X-Zendesk-Webhook-Signature-Timestamp", ts)
	}
	fractional := testNow.Format("2006-01-02T15:04:05.000Z07:00")
	runVerifyErrs(t, []verifyErr{
		{name: "valid", header: hdr(sig(ts), ts)},
		{name: "fractional seconds", header: hdr(sig(fractional), fractional)},
		{name: "body then timestamp", header: hdr(base64.StdEncoding.EncodeToString(mac(sha256.New, []byte(secretA), []byte(body+ts))), ts), want: ErrBadSignature},
		{name: "secret is not decoded", secrets: []string{base64.StdEncoding.EncodeToString([]byte(secretA))}, header: hdr(sig(ts), ts), want: ErrBadSignature},
		{name: "timestamp not ISO-8601", header: hdr(sig("yesterday"), "yesterday"), want: ErrBadSignature},
		{name: "no timestamp", header: hdr(sig(ts), ""), want: ErrMissingSignature},
	}, "zendesk", body)
}

func TestPagerDutyList(t *testing.T) {
	body := `{"event":{"event_type":"incident.triggered"}}`
	good := hex.EncodeToString(mac(sha256.New, []byte(secretA), []byte(body)))
	other := hex.EncodeToString(mac(sha256.New, []byte(secretB), []byte(body)))
	hdr := func(v string) http.Header { return headerOf("X-PagerDuty-Signature", v) }
	runVerifyErrs(t, []verifyErr{
		{name: "second entry", header: hdr("v1=" + other + ",v1=" + good)},
		{name: "spaces", header: hdr("v1=" + other + ", v1=" + good + " ")},
		{name: "undecodable entry skipped", header: hdr("v1=zz,v1=" + good)},
		{name: "unknown version skipped", header: hdr("v2=" + other + ",v1=" + good)},
		{name: "only other secrets", header: hdr("v1=" + other), want: ErrBadSignature},
		{name: "wrong version", header: hdr("v2=" + good), want: ErrBadSignature},
		{name: "only commas", header: hdr(",,"), want: ErrBadSignature},
	}, "pagerduty", body)
}

func TestIntercomPrefix(t *testing.T) {
	body := `{"id":"notif_1","topic":"ping"}`
	s1 := hex.EncodeToString(mac(sha1.New, []byte(secretA), []byte(body)))
	runVerifyErrs(t, []verifyErr{
		{name: "sha1", header: headerOf("X-Hub-Signature", "sha1="+s1)},
		{name: "bare hex", header: headerOf("X-Hub-Signature", s1), want: ErrBadSignature},
		{name: "sha256", header: headerOf("X-Hub-Signature", "sha256="+hex.EncodeToString(mac(sha256.New, []byte(secretA), []byte(body)))), want: ErrBadSignature},
	}, "intercom", body)
}

func TestSquareURL(t *testing.T) {
	const u = "https://hooks.example.com/h/sq"
	body := `{"type":"payment.created"}`
	runVerifyErrs(t, []verifyErr{
		{name: "valid", url: u, header: signSquare(secretA, u, []byte(body), testNow, nil), body: body},
		{name: "empty body is still checked", url: u, header: signSquare(secretA, u, []byte(body), testNow, nil), body: "", want: ErrBadSignature},
		{name: "empty body signed", url: u, header: signSquare(secretA, u, nil, testNow, nil), body: ""},
		{name: "other url", url: u + "/", header: signSquare(secretA, u, []byte(body), testNow, nil), body: body, want: ErrBadSignature},
		{name: "no url", url: "", header: signSquare(secretA, "", []byte(body), testNow, nil), body: body, want: ErrBadSignature},
	}, "square", "")
}

func TestGenericPrefixAndCase(t *testing.T) {
	body := `{"type":"x"}`
	h := hex.EncodeToString(mac(sha256.New, []byte(secretA), []byte(body)))
	hdr := func(v string) http.Header { return headerOf("X-Webhook-Signature", v) }
	runVerifyErrs(t, []verifyErr{
		{name: "bare", header: hdr(h)},
		{name: "prefixed", header: hdr("sha256=" + h)},
		{name: "upper case", header: hdr(strings.ToUpper(h))},
		{name: "upper-case prefix", header: hdr("SHA256=" + h), want: ErrBadSignature},
		{name: "other prefix", header: hdr("sha1=" + h), want: ErrBadSignature},
		{name: "odd length", header: hdr(h[:63]), want: ErrBadSignature},
	}, "generic", body)
}

// TestNoWallClock guards the package's promise that only the caller's
// clock is consulted.
func TestNoWallClock(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, banned := range []string{"time.Now", "time.Since", "time.Until"} {
			if strings.Contains(string(src), banned) {
				t.Errorf("%s uses %s", f, banned)
			}
		}
	}
}
