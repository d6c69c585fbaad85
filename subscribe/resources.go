package subscribe

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge"
	"github.com/hookgate/hookgate/bridge/store"
)

// Resource URIs. A read may add ?after=<id> (a cursor: only events after it)
// and ?limit=<n>.
const (
	EventsURI       = "hookgate://events"
	webhooksPrefix  = "hookgate://webhooks/"
	maxReadLimit    = 1000
	defaultReadSize = 100
)

// WebhookURI is the resource of one registration's events.
func WebhookURI(label string) string { return webhooksPrefix + label }

// resourceRef is a parsed hookgate:// URI.
type resourceRef struct {
	label string   // "" for hookgate://events
	event store.ID // set for .../events/{id}
	isOne bool     // the URI names one event
	after store.ID
	limit int
}

// parseResourceURI understands the three resource forms of the contract.
func parseResourceURI(raw string) (resourceRef, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "hookgate" {
		return resourceRef{}, fmt.Errorf("not a hookgate resource URI: %q", raw)
	}
	ref := resourceRef{limit: defaultReadSize}
	q := u.Query()
	if a := q.Get("after"); a != "" {
		if ref.after, err = store.ParseID(a); err != nil {
			return resourceRef{}, fmt.Errorf("after=%q: %w", a, err)
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			return resourceRef{}, fmt.Errorf("limit=%q: want a positive number", l)
		}
		ref.limit = min(n, maxReadLimit)
	}
	switch u.Host {
	case "events":
		if u.Path != "" {
			return resourceRef{}, fmt.Errorf("unknown resource %q", raw)
		}
		return ref, nil
	case "webhooks":
		label, rest, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if label == "" {
			return resourceRef{}, fmt.Errorf("unknown resource %q", raw)
		}
		ref.label = label
		if rest == "" {
			return ref, nil
		}
		idText, ok := strings.CutPrefix(rest, "events/")
		if !ok {
			return resourceRef{}, fmt.Errorf("unknown resource %q", raw)
		}
		if ref.event, err = store.ParseID(idText); err != nil {
			return resourceRef{}, fmt.Errorf("resource %q: %w", raw, err)
		}
		ref.isOne = true
		return ref, nil
	}
	return resourceRef{}, fmt.Errorf("unknown resource %q", raw)
}

// subscribable reports whether notifications are sent for the URI as
// written: only the plain queue URIs, never a cursor or a single event.
func subscribable(raw string) bool {
	return raw == EventsURI || (strings.HasPrefix(raw, webhooksPrefix) &&
		!strings.ContainsAny(strings.TrimPrefix(raw, webhooksPrefix), "/?#"))
}

func (ps *principalServer) addResources() {
	const mimeJSON = "application/json"
	ps.server.AddResource(&mcp.Resource{
		URI: EventsURI, Name: "events", MIMEType: mimeJSON,
		Description: "All your pending webhook events, oldest first, as {events, cursor}. Add ?after=<id> to read only newer ones.",
	}, ps.readResource)
	ps.server.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: EventsURI + "{?after,limit}", Name: "events-after", MIMEType: mimeJSON,
		Description: "Your pending events after a cursor.",
	}, ps.readResource)
	ps.server.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: webhooksPrefix + "{label}{?after,limit}", Name: "webhook-events", MIMEType: mimeJSON,
		Description: "One webhook's pending events, oldest first, as {events, cursor}; subscribe to be told of each new one.",
	}, ps.readResource)
	ps.server.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: webhooksPrefix + "{label}/events/{id}", Name: "webhook-event", MIMEType: mimeJSON,
		Description: "One event by its id.",
	}, ps.readResource)
	ps.server.AddReceivingMiddleware(ps.listResources)
}

// readResource serves every hookgate:// read for this principal.
func (ps *principalServer) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	ref, err := parseResourceURI(uri)
	if err != nil {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	if ref.label != "" {
		if _, err := ps.opts.Log.RegistrationByLabel(ctx, ps.principal, ref.label); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, mcp.ResourceNotFoundError(uri)
			}
			return nil, fmt.Errorf("read %s: %w", uri, err)
		}
	}
	var body any
	if ref.isOne {
		e, err := ps.opts.Log.Get(ctx, ps.principal, ref.event)
		if errors.Is(err, store.ErrNotFound) || (err == nil && e.Label != ref.label) {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", uri, err)
		}
		body = e
	} else {
		events, more, err := ps.readPending(ctx, store.Query{After: ref.after, Label: ref.label, Limit: ref.limit, MaxBytes: store.ReplyBytes})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", uri, err)
		}
		cursor := ref.after
		if len(events) > 0 {
			cursor = events[len(events)-1].ID
		}
		body = struct {
			Events  []store.Event `json:"events"`
			Cursor  store.ID      `json:"cursor"`
			HasMore bool          `json:"hasMore"`
		}{events, cursor, more}
	}
	text, err := bridge.EncodeResult(body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", uri, err)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(text)}}}, nil
}

// readPending reads one page of pending events as q bounds it, and reports
// whether more are pending after it. A page cut by its count or its bytes
// looks the same as the end of the queue, so a short page is followed by a
// look at the next event.
func (ps *principalServer) readPending(ctx context.Context, q store.Query) ([]store.Event, bool, error) {
	want := q.Limit
	q.Limit++
	events, err := ps.opts.Log.ReadPending(ctx, ps.principal, q)
	if err != nil {
		return nil, false, err
	}
	if len(events) > want {
		return events[:want], true, nil
	}
	if len(events) == 0 {
		return []store.Event{}, false, nil
	}
	next, err := ps.opts.Log.ReadPending(ctx, ps.principal, store.Query{After: events[len(events)-1].ID, Label: q.Label, Limit: 1})
	if err != nil {
		return nil, false, err
	}
	return events, len(next) > 0, nil
}

// listResources answers resources/list with this principal's queues; the
// SDK's own list is the same for every caller of a server.
func (ps *principalServer) listResources(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method != "resources/list" {
			return next(ctx, method, req)
		}
		regs, err := ps.opts.Log.Registrations(ctx, ps.principal)
		if err != nil {
			return nil, fmt.Errorf("list resources: %w", err)
		}
		out := &mcp.ListResourcesResult{Resources: []*mcp.Resource{{
			URI: EventsURI, Name: "events", MIMEType: "application/json",
			Description: "All your pending webhook events.",
		}}}
		for _, r := range regs {
			out.Resources = append(out.Resources, &mcp.Resource{
				URI: WebhookURI(r.Label), Name: r.Label, MIMEType: "application/json",
				Description: fmt.Sprintf("Pending events of the %s webhook %q.", r.Provider, r.Label),
			})
		}
		return out, nil
	}
}
