package verify

import (
	"bytes"
	"encoding/json"
	"net/url"
	"time"
)

// The helpers in this file read a body that has already been verified.
// The body's shape is the provider's business, not a reason to refuse an
// authentic delivery, so none of them fail: a field that cannot be read
// stays empty.

// decodeJSON fills the fields of v that data provides. json.Unmarshal
// leaves v untouched for invalid JSON and skips fields of the wrong type,
// which is the leniency wanted here.
func decodeJSON(data []byte, v any) {
	_ = json.Unmarshal(data, v)
}

// document returns the JSON a body carries and, for a form-encoded body,
// the parsed form. GitHub and Slack can deliver their JSON form-encoded
// in a field named payload.
func document(body []byte) (doc []byte, form url.Values) {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return body, nil
	}
	// ParseQuery returns what it could parse along with the first error.
	form, _ = url.ParseQuery(string(body))
	return []byte(form.Get("payload")), form
}

// unixSeconds is a Unix time in seconds as a time, or zero for a value
// that is absent (zero) or negative.
func unixSeconds(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// parseRFC3339 parses a stated time, returning the zero Time if it is
// absent or malformed.
func parseRFC3339(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
