package bridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"unicode/utf8"
)

// MaxPayloadDepth is the deepest nesting of arrays and objects a JSON body
// may have to be delivered as JSON. Every path wraps the payload in a few
// more levels (the event, a batch, a JSON-RPC result), and decoders refuse
// deep input: Go's at 10,000 levels, Python's near 1,000 by its recursion
// limit. A body nested deeper is kept exactly, in the base64 form, so it is
// delivered on every path instead of breaking the reply that carries it.
const MaxPayloadDepth = 512

// payloadJSON turns a verified request body into the event's payload: JSON
// stays as sent (never re-serialised, so the bytes the provider signed are
// the bytes an agent reads), a form body becomes an object of its fields, and
// anything else is carried as base64 with its content type. So is JSON that
// some path could not deliver as it is: nested past MaxPayloadDepth, or not
// valid UTF-8 (which JSON text must be, and strict decoders refuse).
func payloadJSON(contentType string, body []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && json.Valid(trimmed) && utf8.Valid(trimmed) && jsonDepth(trimmed) <= MaxPayloadDepth {
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

// maxResultDepth is the deepest a result that carries events may nest: the
// JSON decoders of the SDKs refuse 10,000 levels, and the transports wrap a
// result in a few more (the JSON-RPC message, the tool result).
const maxResultDepth = 10_000 - 16

// EncodeResult encodes a reply that carries events, or says why it cannot
// be sent. Ingress keeps every payload it stores far inside these bounds;
// this is the check that an event stored otherwise (by an older version,
// say) fails its call at once instead of leaving the caller without an
// answer.
func EncodeResult(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	if d := jsonDepth(b); d > maxResultDepth {
		return nil, fmt.Errorf("encode result: it nests %d levels deep, past the %d a reply may", d, maxResultDepth)
	}
	return b, nil
}

// jsonDepth returns how deeply valid JSON nests arrays and objects: 0 for a
// scalar, 1 for a flat object.
func jsonDepth(data []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
