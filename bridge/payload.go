package bridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
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
// is stored as sent, never re-serialised (the paths' encoders still escape
// <, > and & inside its strings, as Go's JSON encoder does), a form body becomes an object of its fields, and
// anything else is carried as base64 with its content type. So is JSON that
// some path could not deliver as it is (see inlineJSON): nested past
// MaxPayloadDepth, not valid UTF-8 (which JSON text must be, and strict
// decoders refuse), or holding a number no float64 can.
func payloadJSON(contentType string, body []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if inlineJSON(trimmed) {
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

// inlineJSON reports whether a body is delivered as the JSON it is: valid
// JSON and UTF-8, nested at most MaxPayloadDepth, and no number past what
// a float64 holds.
func inlineJSON(body []byte) bool {
	if len(body) == 0 || !json.Valid(body) || !utf8.Valid(body) {
		return false
	}
	depth, overflows := measureJSON(body, true)
	return depth <= MaxPayloadDepth && !overflows
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
	depth, _ := measureJSON(data, false)
	return depth
}

// measureJSON walks valid JSON once and returns how deeply it nests and,
// when numbers is set, whether a number in it is too large for a float64:
// decoders that read numbers as float64 (the SDKs' own, decoding a result
// into map[string]any) refuse the whole message that carries one.
func measureJSON(data []byte, numbers bool) (deepest int, overflows bool) {
	depth := 0
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
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
		case numbers && (c == '-' || (c >= '0' && c <= '9')):
			end := i + 1
			for end < len(data) && strings.IndexByte("0123456789.eE+-", data[end]) >= 0 {
				end++
			}
			if _, err := strconv.ParseFloat(string(data[i:end]), 64); errors.Is(err, strconv.ErrRange) {
				overflows = true
			}
			i = end - 1
		}
	}
	return deepest, overflows
}
