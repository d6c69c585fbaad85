package bridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/url"
)

// payloadJSON turns a verified request body into the event's payload: JSON
// stays as sent (never re-serialised, so the bytes the provider signed are
// the bytes an agent reads), a form body becomes an object of its fields, and
// anything else is carried as base64 with its content type.
func payloadJSON(contentType string, body []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && json.Valid(trimmed) {
		return json.RawMessage(trimmed), nil
	}
	mediaType, _, _ := mime.ParseMediaType(contentType)
	if mediaType == "application/x-www-form-urlencoded" {
		if values, err := url.ParseQuery(string(body)); err == nil {
			return json.Marshal(formObject(values))
		}
	}
	return json.Marshal(struct {
		ContentType string `json:"contentType"`
		Base64      string `json:"base64"`
	}{contentType, base64.StdEncoding.EncodeToString(body)})
}

// formObject keeps a single value as a string and repeated fields as a list,
// which is how providers that post forms (Twilio, Slack commands) document
// their fields.
func formObject(values url.Values) map[string]any {
	out := make(map[string]any, len(values))
	for k, vs := range values {
		if len(vs) == 1 {
			out[k] = vs[0]
		} else {
			out[k] = vs
		}
	}
	return out
}
