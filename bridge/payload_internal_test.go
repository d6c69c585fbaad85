package bridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func nested(depth int) []byte {
	return []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
}

// Each body is either kept as the JSON it is or carried in the base64 form
// holding its exact bytes; never lost, never changed.
func TestPayloadForms(t *testing.T) {
	cases := []struct {
		name   string
		body   []byte
		inline bool
	}{
		{"object", []byte(`{"a":[1,{"b":"c"}]}`), true},
		{"brackets inside strings do not nest", []byte(`{"a":"[[[[{{{{\"[["}`), true},
		{"depth at the bound", nested(MaxPayloadDepth), true},
		{"depth past the bound", nested(MaxPayloadDepth + 1), false},
		{"depth 9,999", nested(9_999), false},
		{"depth 10,000", nested(10_000), false},
		{"depth 100,000", nested(100_000), false},
		{"invalid UTF-8 in a string", []byte("{\"a\":\"\xff\xfe\"}"), false},
		{"numbers a float64 holds", []byte(`[123456789012345678901234567890,1e308,-1e-400,0.5e-7]`), true},
		{"a number past float64", []byte(`{"huge":1e400}`), false},
		{"a negative number past float64", []byte(`[-1.5e309]`), false},
		{"a number-like string", []byte(`{"s":"1e400"}`), true},
		{"not JSON", []byte("hello"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := payloadJSON("application/json", c.body)
			if err != nil {
				t.Fatal(err)
			}
			if c.inline {
				if !bytes.Equal(got, c.body) {
					t.Fatalf("payload %.80q, want the body as sent", got)
				}
				return
			}
			var wrapped struct {
				ContentType string `json:"contentType"`
				Base64      string `json:"base64"`
			}
			if err := json.Unmarshal(got, &wrapped); err != nil {
				t.Fatalf("payload %.80q is not the base64 form: %v", got, err)
			}
			raw, err := base64.StdEncoding.DecodeString(wrapped.Base64)
			if err != nil || !bytes.Equal(raw, c.body) || wrapped.ContentType != "application/json" {
				t.Fatalf("base64 form %q does not hold the exact body", wrapped.ContentType)
			}
			if d := jsonDepth(got); d > MaxPayloadDepth {
				t.Fatalf("stored form nests %d deep", d)
			}
		})
	}
}

func TestJSONDepth(t *testing.T) {
	for text, want := range map[string]int{
		`1`: 0, `"[{"`: 0, `{}`: 1, `[[],[[]]]`: 3, `{"a\\":"]","b":[{}]}`: 3,
	} {
		if got := jsonDepth([]byte(text)); got != want {
			t.Errorf("jsonDepth(%s) = %d, want %d", text, got, want)
		}
	}
}

// FuzzJSONDepth checks the scan against encoding/json's decoder: its depth
// against the tokenizer's, and its verdict on numbers against decoding
// into any, which fails only on a number past float64 (json.Valid has
// already refused input nested past 10,000 levels).
func FuzzJSONDepth(f *testing.F) {
	for _, s := range []string{`{"a":[1,"]"]}`, `[[["\\"]"]]]`, `{"\u005b":{}}`, `[1e400,"1e400",-0.0e-999]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		want := decodedDepth(data)
		depth, overflows := measureJSON(data, true)
		if depth != want {
			t.Fatalf("measureJSON(%q) depth %d, decoder says %d", data, depth, want)
		}
		var v any
		if decodeErr := json.Unmarshal(data, &v); overflows != (decodeErr != nil) {
			t.Fatalf("measureJSON(%q) overflows = %v, decoding into any: %v", data, overflows, decodeErr)
		}
	})
}

// decodedDepth measures nesting with encoding/json's tokenizer.
func decodedDepth(data []byte) int {
	dec := json.NewDecoder(bytes.NewReader(data))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '[' || d == '{' {
				depth++
				deepest = max(deepest, depth)
			} else {
				depth--
			}
		}
	}
}

// BenchmarkPayloadRules measures what the UTF-8 and depth rules add to the
// JSON check ingress already made, on a 12 KB webhook body.
func BenchmarkPayloadRules(b *testing.B) {
	body := []byte(`{"id":"evt_1","type":"push","commits":[` + strings.Repeat(`{"id":"0123456789abcdef","message":"fix: a thing \u00e9","added":["a.go","b.go"]},`, 120) + `{}]}`)
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_ = json.Valid(body)
		}
	})
	b.Run("payloadJSON", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_, _ = payloadJSON("application/json", body)
		}
	})
}
