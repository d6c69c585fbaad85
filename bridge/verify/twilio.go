package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
)

// verifyTwilio checks X-Twilio-Signature, the base64 HMAC-SHA1 keyed by the
// auth token over the URL Twilio called followed by every form parameter's
// name and value, sorted by name. A JSON body is not signed directly:
// Twilio adds bodySHA256, the hex SHA-256 of the body, to the URL, signs the
// URL alone, and the body must hash to that value.
//
// Twilio keeps the port in the signed URL for some callbacks and drops it
// for others, so, like Twilio's helper libraries, the URL is tried both
// with and without its port.
func verifyTwilio(r *request) (Result, error) {
	const name = "X-Twilio-Signature"
	sig := r.header.Get(name)
	if sig == "" {
		return Result{}, missing(name)
	}
	mac, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return Result{}, malformed(name, "not base64")
	}
	if r.url == "" {
		return Result{}, fmt.Errorf("%w: twilio signs the request URL, and none was given", ErrBadSignature)
	}
	u, err := url.Parse(r.url)
	if err != nil {
		return Result{}, fmt.Errorf("%w: request URL: %v", ErrBadSignature, err)
	}

	// bodySHA256 in the URL, not Content-Type, marks a JSON delivery;
	// twilio-go decides the same way.
	bodyHash := u.Query().Get("bodySHA256")
	var params []byte
	var form url.Values
	if bodyHash == "" {
		if form, err = url.ParseQuery(string(r.body)); err != nil {
			return Result{}, fmt.Errorf("%w: body is not form-encoded: %v", ErrBadSignature, err)
		}
		params = twilioParams(form)
	}
	matched := false
	for _, signed := range twilioURLs(r.url, u) {
		if r.matches(sha1.New, [][]byte{mac}, []byte(signed), params) {
			matched = true
			break
		}
	}
	if !matched {
		return Result{}, errNoMatch
	}
	if bodyHash != "" {
		want, err := hex.DecodeString(bodyHash)
		got := sha256.Sum256(r.body)
		if err != nil || !hmac.Equal(got[:], want) {
			return Result{}, fmt.Errorf("%w: body does not match bodySHA256", ErrBadSignature)
		}
	}

	typ, id := twilioEvent(form)
	if token := r.header.Get("I-Twilio-Idempotency-Token"); token != "" {
		id = token
	}
	return Result{EventType: typ, ProviderEventID: id}, nil
}

// twilioParams concatenates the form's names and values in the order
// Twilio signs them: names sorted bytewise, case-sensitive, and, as
// twilio-python does, every value of a repeated name in sorted order
// (twilio-go keeps only the first).
func twilioParams(form url.Values) []byte {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(form)) {
		for _, v := range slices.Sorted(slices.Values(form[k])) {
			b = append(b, k...)
			b = append(b, v...)
		}
	}
	return b
}

// twilioURLs returns raw and raw with its port removed, or with the
// scheme's default port added if it had none. The host is replaced in
// place rather than by re-serializing u, which could re-encode the path
// or query and so change the signed bytes.
func twilioURLs(raw string, u *url.URL) []string {
	start := strings.Index(raw, "//")
	if start < 0 || u.Host == "" {
		return []string{raw}
	}
	start += 2
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	if at := strings.LastIndex(raw[start:end], "@"); at >= 0 {
		start += at + 1
	}
	if raw[start:end] != u.Host {
		return []string{raw}
	}
	host := u.Hostname()
	var alt string
	switch {
	case u.Port() != "" && strings.Contains(host, ":"):
		alt = "[" + host + "]"
	case u.Port() != "":
		alt = host
	case u.Scheme == "https":
		alt = net.JoinHostPort(host, "443")
	default:
		alt = net.JoinHostPort(host, "80")
	}
	return []string{raw, raw[:start] + alt + raw[end:]}
}

// twilioEvent derives an event type and ID from a form-encoded callback.
// Twilio has no event-type field (the type is implied by which URL was
// configured), so the type is the resource and its status, such as
// "message.delivered" or "call.completed".
//
// Without an idempotency token, a message's ID is its SID plus its status:
// Twilio reports each status of a message once, in its own callback. A
// call gets no ID: its voice URL, <Gather> actions and status callbacks
// can all carry the same SID and status for different events, and
// deduplicating on them would drop real ones.
func twilioEvent(form url.Values) (typ, id string) {
	if sid := form.Get("MessageSid"); sid != "" {
		status := form.Get("MessageStatus")
		if status == "" {
			status = form.Get("SmsStatus") // inbound messages
		}
		if status == "" {
			return "message", sid
		}
		return "message." + status, sid + ":" + status
	}
	if form.Get("CallSid") != "" {
		if status := form.Get("CallStatus"); status != "" {
			return "call." + status, ""
		}
		return "call", ""
	}
	return "", ""
}
