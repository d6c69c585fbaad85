package subscribe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/hookgate/hookgate/bridge/store"
)

// Event types. Each registration is one event type named by its label; the
// provider's event type (Stripe's payment_intent.payment_failed, GitHub's
// issues.opened) is a filter argument, not part of the name:
//
//	{"name": "stripe-payment", "arguments": {"type": "payment_intent.payment_failed"}}
//
// subscribes to payment failures only, {"type": "payment_intent.*"} to every
// payment_intent event, {"type": ["charge.failed", "charge.refunded"]} to
// either. Names are the identity of every subscription and must stay stable
// for as long as they are served, while the provider types seen change with
// every new webhook; keeping types out of the name keeps the catalog one
// descriptor per registration, lets a filter name a type before its first
// occurrence, and means list_changed fires only when a registration is
// added or removed.

// eventDescriptor is one entry of events/list.
type eventDescriptor struct {
	Name          string          `json:"name"`
	Description   string          `json:"description"`
	Delivery      []string        `json:"delivery"`
	InputSchema   json.RawMessage `json:"inputSchema"`
	PayloadSchema json.RawMessage `json:"payloadSchema"`
	Meta          map[string]any  `json:"_meta,omitempty"`
}

// inputSchema is the same for every event type: an optional filter on the
// provider's event type. It may only ever grow (a webhook refresh re-sends
// old arguments, which must stay valid).
const inputSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"type":{"description":"Only occurrences whose provider event type (data.type) matches: an exact type such as payment_intent.payment_failed, a prefix ending in * such as payment_intent.*, or a list of either. Omit for every event of this webhook.","anyOf":[{"type":"string","minLength":1},{"type":"array","items":{"type":"string","minLength":1},"minItems":1}]}},"additionalProperties":false}`

// payloadSchema describes data: the event object every hookgate path
// delivers (see the contract).
const payloadSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"id":{"type":"string","description":"hookgate's event ID, <unix-ms>-<seq>; the cursor"},"label":{"type":"string","description":"the webhook's label (the event name)"},"source":{"type":"string","description":"the provider, e.g. stripe"},"type":{"type":"string","description":"the provider's event type, e.g. payment_intent.payment_failed; empty when the provider names none, or in a webhook body too large to send (_meta[\"hookgate/typeOmitted\"])"},"providerEventId":{"type":"string","description":"the provider's own event ID, empty when it has none"},"receivedAt":{"type":"string","format":"date-time"},"verified":{"type":"boolean","description":"the provider's signature verified"},"deliveryCount":{"type":"integer","minimum":0},"payload":{"description":"the provider's body: parsed JSON, form fields as an object, or {contentType, base64}; null when the occurrence was too large to send (read it from _meta[\"hookgate/resourceUri\"])"}},"required":["id","label","source","type","providerEventId","receivedAt","verified","deliveryCount","payload"]}`

// describe returns the descriptor of one registration.
func describe(r store.Registration) eventDescriptor {
	return eventDescriptor{
		Name: r.Label,
		Description: fmt.Sprintf("Webhooks received from %s at the endpoint labelled %q. data is the hookgate event; "+
			"data.payload is the provider's body. Narrow it with arguments.type, e.g. {\"type\":\"payment_intent.payment_failed\"} "+
			"or {\"type\":\"payment_intent.*\"}.", r.Provider, r.Label),
		Delivery:      []string{"poll", "push", "webhook"}, // every mode, for every type
		InputSchema:   json.RawMessage(inputSchema),
		PayloadSchema: json.RawMessage(payloadSchema),
		Meta:          map[string]any{"hookgate/provider": r.Provider, "hookgate/resourceUri": WebhookURI(r.Label)},
	}
}

// eventFilter is parsed subscription arguments.
type eventFilter struct {
	types []string // exact types, or prefixes ending in "*"; empty matches all
}

// match reports whether e passes the filter.
func (f eventFilter) match(e store.Event) bool {
	if len(f.types) == 0 {
		return true
	}
	for _, t := range f.types {
		if prefix, ok := strings.CutSuffix(t, "*"); ok {
			if strings.HasPrefix(e.Type, prefix) {
				return true
			}
		} else if e.Type == t {
			return true
		}
	}
	return false
}

// parseArguments validates raw against inputSchema and returns the filter
// with the canonical form of the arguments (the subscription key's part).
// Absent or null arguments are {}.
func parseArguments(raw json.RawMessage) (eventFilter, string, error) {
	args, err := decodeObject(raw)
	if err != nil {
		return eventFilter{}, "", invalidParams("arguments", "%v", err)
	}
	var f eventFilter
	for key, v := range args {
		if key != "type" {
			return eventFilter{}, "", invalidParams("arguments."+key, "unknown argument; the only one is type")
		}
		switch t := v.(type) {
		case string:
			f.types = []string{t}
		case []any:
			if len(t) == 0 {
				return eventFilter{}, "", invalidParams("arguments.type", "an empty list matches nothing; omit type for every event")
			}
			for _, item := range t {
				s, ok := item.(string)
				if !ok {
					return eventFilter{}, "", invalidParams("arguments.type", "every item must be a string")
				}
				f.types = append(f.types, s)
			}
		default:
			return eventFilter{}, "", invalidParams("arguments.type", "want a string or a list of strings")
		}
	}
	for _, t := range f.types {
		if t == "" {
			return eventFilter{}, "", invalidParams("arguments.type", "types must be non-empty")
		}
	}
	canonical, err := canonicalJSON(args)
	if err != nil {
		return eventFilter{}, "", invalidParams("arguments", "%v", err)
	}
	return f, canonical, nil
}

// decodeObject decodes a JSON object keeping numbers as written, so that
// the canonical form is stable: {"a":1} and {"a":1.0} stay different.
func decodeObject(raw json.RawMessage) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object")
	}
	return obj, nil
}

// canonicalJSON encodes v with sorted keys, no insignificant space and no
// HTML escaping: equal arguments in any key order encode the same, across
// restarts and replicas.
func canonicalJSON(v any) (string, error) {
	var b bytes.Buffer
	if err := writeCanonical(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeCanonical(b *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, k); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := writeCanonical(b, t[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, item := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, item); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	default:
		enc := json.NewEncoder(b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(t); err != nil {
			return err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
	}
	return nil
}
