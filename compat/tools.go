// Package compat holds what exists so that clients written for older MCP
// conventions keep working unchanged: the three-tool polling pattern
// (check_pending_events, poll_events, ack_event) with the exact shapes those
// clients parse, and the dispatch of /mcp to the stateful (≤ 2025-11-25) or
// stateless (2026-07-28) SDK handler.
package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
)

// ErrUnauthenticated is returned by a tool called without a principal.
var ErrUnauthenticated = errors.New("no principal: call with Authorization: Bearer <token>")

// Principal returns the caller of a request: the per-request token (correct
// in every SDK mode), else the context's (the 2026-07-28 listen path, whose
// synthesized requests carry no Extra).
func Principal(ctx context.Context, extra *mcp.RequestExtra) string {
	if extra != nil && extra.TokenInfo != nil {
		return extra.TokenInfo.UserID
	}
	return principalFromContext(ctx)
}

// AddTools registers the webhook and polling tools on s, all served by inbox.
func AddTools(s *mcp.Server, inbox *bridge.Inbox) {
	t := tools{inbox: inbox}
	mcp.AddTool(s, &mcp.Tool{
		Name:        "register_webhook",
		Description: "Create (or update) a webhook endpoint for a provider and get its URL to paste into the provider's settings. Calling it again with the same label returns the same URL; pass secret to set the provider-issued signing secret (e.g. Stripe's whsec_...), or a list of secrets during rotation.",
	}, t.register)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "list_webhooks",
		Description: "List your webhook endpoints with their URLs and how many events are pending on each.",
	}, t.list)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "delete_webhook",
		Description: "Delete a webhook endpoint by label. Its URL then answers 410 Gone so providers stop sending.",
	}, t.delete)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "check_pending_events",
		Description: "Get up to 10 pending webhook events, oldest first. Each returned event is leased to you: ack_event it when handled, or it comes back after the lease runs out. remaining is how many more events a call made now would return: events leased and not yet acked (by you or anyone) are not counted until their lease runs out, so call again while remaining > 0 and stop at 0.",
	}, t.check)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "poll_events",
		Description: "Get pending webhook events (optionally for one label), oldest first, leased to you until acked. With wait_seconds (at most 30) it waits for an event to arrive instead of returning empty. The structured result's remaining is how many more events (same label) a call made now would return: events leased and not yet acked are not counted until their lease runs out.",
	}, t.poll)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "ack_event",
		Description: "Acknowledge handled events by id (event_id, eventId, or event_ids) so they are not delivered again. Acking twice is fine.",
	}, t.ack)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "nack_event",
		Description: "Hand an event back unhandled: it becomes pending again after retry_after_seconds (default 0), or moves to the dead-letter list after the maximum attempts.",
	}, t.nack)
}

type tools struct {
	inbox *bridge.Inbox
}

type registerInput struct {
	Label       string `json:"label" jsonschema:"your name for this endpoint, e.g. stripe-payment; letters, digits, '.', '_', '-'"`
	Provider    string `json:"provider,omitempty" jsonschema:"signature scheme: generic (default), stripe, github, shopify, zendesk, slack, standard-webhooks, svix, twilio, linear, intercom, pagerduty, square"`
	Secret      any    `json:"secret,omitempty" jsonschema:"the provider-issued signing secret, or a list of secrets (newest last) while rotating; omit to keep the current one or to have one generated"`
	VerifyToken string `json:"verify_token,omitempty" jsonschema:"for Meta-style GET handshakes: the hub.verify_token the provider will send"`
}

type registerOutput struct {
	ID          string `json:"id"`
	Label       string `json:"label"`
	URL         string `json:"url"`
	Secret      string `json:"secret"`
	Provider    string `json:"provider"`
	ResourceURI string `json:"resourceUri"`
}

func (t tools) register(ctx context.Context, req *mcp.CallToolRequest, in registerInput) (*mcp.CallToolResult, any, error) {
	principal, err := requirePrincipal(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	secrets, err := secretList(in.Secret)
	if err != nil {
		return nil, nil, err
	}
	reg, err := t.inbox.Register(ctx, principal, bridge.RegisterRequest{
		Label: in.Label, Provider: in.Provider, Secrets: secrets, VerifyToken: in.VerifyToken,
	})
	if err != nil {
		return nil, nil, err
	}
	return nil, registerOutput{
		ID:          reg.ID,
		Label:       reg.Label,
		URL:         t.inbox.HookURL(reg.ID),
		Secret:      reg.Secrets[len(reg.Secrets)-1],
		Provider:    reg.Provider,
		ResourceURI: bridge.ResourceURI(reg.Label),
	}, nil
}

// secretList accepts the secret argument as a string or a list of strings.
func secretList(v any) ([]string, error) {
	switch s := v.(type) {
	case nil:
		return nil, nil
	case string:
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	case []any:
		out := make([]string, 0, len(s))
		for _, item := range s {
			str, ok := item.(string)
			if !ok || str == "" {
				return nil, fmt.Errorf("secret: every item of the list must be a non-empty string")
			}
			out = append(out, str)
		}
		return out, nil
	}
	return nil, fmt.Errorf("secret: want a string or a list of strings, got %T", v)
}

type listOutput struct {
	Webhooks []bridge.Webhook `json:"webhooks"`
}

func (t tools) list(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
	principal, err := requirePrincipal(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	hooks, err := t.inbox.Webhooks(ctx, principal)
	if err != nil {
		return nil, nil, err
	}
	return nil, listOutput{Webhooks: hooks}, nil
}

type labelInput struct {
	Label string `json:"label" jsonschema:"the webhook's label"`
}

func (t tools) delete(ctx context.Context, req *mcp.CallToolRequest, in labelInput) (*mcp.CallToolResult, any, error) {
	principal, err := requirePrincipal(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	if err := t.inbox.Delete(ctx, principal, in.Label); err != nil {
		return nil, nil, err
	}
	return nil, struct {
		Deleted bool `json:"deleted"`
	}{true}, nil
}

// eventsOutput is the structured result of check_pending_events and poll_events.
type eventsOutput struct {
	Events    []store.Event `json:"events"`
	Remaining int           `json:"remaining"`
}

func (t tools) check(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
	principal, err := requirePrincipal(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	res, err := t.inbox.Lease(ctx, principal, bridge.LeaseRequest{Limit: store.DefaultLeaseLimit, MaxBytes: toolReplyBytes})
	if err != nil {
		return nil, nil, err
	}
	out, err := t.encode(ctx, principal, res.Events, eventsOutput{Events: nonNil(res.Events), Remaining: res.Remaining})
	if err != nil {
		return nil, nil, err
	}
	return nil, out, nil
}

// toolReplyBytes is the byte budget of the events in one tool result. A
// result carries each event twice (the legacy text and structuredContent),
// so the events get half of the reply budget.
const toolReplyBytes = store.ReplyBytes / 2

// encode encodes a result that carries leased events. If it cannot be sent,
// the events are handed back at once, so the failed call leaves them
// pending for the next, and the call fails with the reason.
func (t tools) encode(ctx context.Context, principal string, leased []store.Event, v any) (json.RawMessage, error) {
	b, err := bridge.EncodeResult(v)
	if err == nil {
		return b, nil
	}
	for _, e := range leased {
		if _, nackErr := t.inbox.Nack(ctx, principal, e.ID.String(), 0, "result could not be encoded"); nackErr != nil {
			err = errors.Join(err, nackErr)
		}
	}
	return nil, err
}

type pollInput struct {
	Label       string `json:"label,omitempty" jsonschema:"only events of this webhook label"`
	Limit       int    `json:"limit,omitempty" jsonschema:"at most this many events (default 50)"`
	WaitSeconds int    `json:"wait_seconds,omitempty" jsonschema:"wait up to this many seconds (at most 30) for an event when none is pending"`
}

// defaultPollLimit is poll_events' batch size when the caller names none.
const defaultPollLimit = 50

func (t tools) poll(ctx context.Context, req *mcp.CallToolRequest, in pollInput) (*mcp.CallToolResult, any, error) {
	principal, err := requirePrincipal(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	if in.Limit < 0 || in.WaitSeconds < 0 {
		return nil, nil, fmt.Errorf("limit and wait_seconds must not be negative")
	}
	limit := in.Limit
	if limit == 0 {
		limit = defaultPollLimit
	}
	res, err := t.inbox.Lease(ctx, principal, bridge.LeaseRequest{
		Label: in.Label, Limit: limit, MaxBytes: toolReplyBytes, Wait: time.Duration(in.WaitSeconds) * time.Second,
	})
	if err != nil {
		return nil, nil, err
	}
	events := nonNil(res.Events)
	out, err := t.encode(ctx, principal, events, eventsOutput{Events: events, Remaining: res.Remaining})
	if err != nil {
		return nil, nil, err
	}
	// The three-tool pattern's clients parse the text as a bare array.
	text, err := json.Marshal(events)
	if err != nil {
		return nil, nil, fmt.Errorf("encode events: %w", err)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}}, out, nil
}

type ackInput struct {
	EventID    string   `json:"event_id,omitempty" jsonschema:"the event's id"`
	EventIDAlt string   `json:"eventId,omitempty" jsonschema:"the event's id (camelCase spelling)"`
	EventIDs   []string `json:"event_ids,omitempty" jsonschema:"several event ids at once"`
}

func (t tools) ack(ctx context.Context, req *mcp.CallToolRequest, in ackInput) (*mcp.CallToolResult, any, error) {
	principal, err := requirePrincipal(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	ids := append([]string(nil), in.EventIDs...)
	for _, id := range []string{in.EventID, in.EventIDAlt} {
		if id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil, fmt.Errorf("give event_id, eventId or event_ids")
	}
	n, err := t.inbox.Ack(ctx, principal, ids)
	if err != nil {
		return nil, nil, err
	}
	return nil, struct {
		Acknowledged bool `json:"acknowledged"`
		Count        int  `json:"count"`
	}{true, n}, nil
}

type nackInput struct {
	EventID           string `json:"event_id,omitempty" jsonschema:"the event's id"`
	EventIDAlt        string `json:"eventId,omitempty" jsonschema:"the event's id (camelCase spelling)"`
	RetryAfterSeconds int    `json:"retry_after_seconds,omitempty" jsonschema:"make it pending again after this many seconds (default 0)"`
	Reason            string `json:"reason,omitempty" jsonschema:"why it failed, kept with a dead-lettered event"`
}

func (t tools) nack(ctx context.Context, req *mcp.CallToolRequest, in nackInput) (*mcp.CallToolResult, any, error) {
	principal, err := requirePrincipal(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	id := in.EventID
	if id == "" {
		id = in.EventIDAlt
	}
	if id == "" {
		return nil, nil, fmt.Errorf("give event_id")
	}
	if in.RetryAfterSeconds < 0 {
		return nil, nil, fmt.Errorf("retry_after_seconds must not be negative")
	}
	dead, err := t.inbox.Nack(ctx, principal, id, time.Duration(in.RetryAfterSeconds)*time.Second, in.Reason)
	if err != nil {
		return nil, nil, err
	}
	return nil, struct {
		Nacked       bool `json:"nacked"`
		DeadLettered bool `json:"deadLettered"`
	}{true, dead}, nil
}

func requirePrincipal(ctx context.Context, req *mcp.CallToolRequest) (string, error) {
	if p := Principal(ctx, req.Extra); p != "" {
		return p, nil
	}
	return "", ErrUnauthenticated
}

func nonNil(events []store.Event) []store.Event {
	if events == nil {
		return []store.Event{}
	}
	return events
}
