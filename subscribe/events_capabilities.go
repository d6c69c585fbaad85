package subscribe

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// advertise adds the top-level "events" capability, which ChatGPT reads, to
// the initialize (≤ 2025-11-25) and server/discover (2026-07-28) results.
// The SDK's ServerCapabilities is a fixed struct: it carries
// extensions["io.modelcontextprotocol/events"] but would silently drop a
// top-level key, so the result is wrapped and the key spliced into its JSON
// on the way out. The wrappers embed the SDK's result, so everything the
// SDK does to a result afterwards (resultType, serverInfo) still applies.
func (x *Events) advertise(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		if err != nil {
			return res, err
		}
		switch r := res.(type) {
		case *mcp.InitializeResult:
			return &initializeWithEvents{InitializeResult: r, events: x.capability()}, nil
		case *mcp.DiscoverResult:
			// Each principal has its own server, and events/list answers
			// differ by principal: no shared cache may keep this answer.
			r.CacheScope = "private"
			return &discoverWithEvents{DiscoverResult: r, events: x.capability()}, nil
		}
		return res, nil
	}
}

// initializeWithEvents is an InitializeResult whose capabilities carry the
// top-level "events" key.
type initializeWithEvents struct {
	*mcp.InitializeResult
	events map[string]any
}

// MarshalJSON implements json.Marshaler.
func (r *initializeWithEvents) MarshalJSON() ([]byte, error) {
	return withCapability(r.InitializeResult, "events", r.events)
}

// discoverWithEvents is a DiscoverResult whose capabilities carry the
// top-level "events" key.
type discoverWithEvents struct {
	*mcp.DiscoverResult
	events map[string]any
}

// MarshalJSON implements json.Marshaler.
func (r *discoverWithEvents) MarshalJSON() ([]byte, error) {
	return withCapability(r.DiscoverResult, "events", r.events)
}

// withCapability encodes result with capabilities[key] set to value.
func withCapability(result any, key string, value any) ([]byte, error) {
	raw, err := json.Marshal(result)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("add capability %s: %w", key, err)
	}
	caps := map[string]json.RawMessage{}
	if c := fields["capabilities"]; len(c) > 0 && string(c) != "null" {
		if err := json.Unmarshal(c, &caps); err != nil {
			return nil, fmt.Errorf("add capability %s: %w", key, err)
		}
	}
	if caps[key], err = json.Marshal(value); err != nil {
		return nil, err
	}
	if fields["capabilities"], err = json.Marshal(caps); err != nil {
		return nil, err
	}
	return json.Marshal(fields)
}
