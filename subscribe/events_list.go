package subscribe

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge/store"
)

// listParams are events/list's parameters.
type listParams struct {
	mcp.ParamsBase
	Cursor string `json:"cursor,omitempty"`
}

// listResult is events/list's result.
type listResult struct {
	resultFields
	Events     []eventDescriptor `json:"events"`
	NextCursor string            `json:"nextCursor,omitempty"`
}

// listCursorPrefix versions the page cursor, so a cursor from another
// server or a future format is refused instead of misread.
const listCursorPrefix = "l1:"

// list serves events/list: the principal's registrations, in label order,
// a page at a time. The catalog is the principal's only: another
// principal's labels are neither listed nor subscribable.
func (h *eventsHandlers) list(ctx context.Context, _ *mcp.ServerSession, p *listParams) (*listResult, error) {
	after := ""
	if p.Cursor != "" {
		label, err := decodeListCursor(p.Cursor)
		if err != nil {
			return nil, invalidParams("cursor", "not a cursor from a previous events/list")
		}
		after = label
	}
	regs, err := h.x.opts.Log.Registrations(ctx, h.principal)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	// Sorted here, not trusted from the backend: paging depends on it.
	slices.SortFunc(regs, func(a, b store.Registration) int { return strings.Compare(a.Label, b.Label) })
	res := &listResult{Events: []eventDescriptor{}}
	res.completeFor(p.Meta)
	for _, r := range regs {
		if r.Label <= after {
			continue
		}
		if len(res.Events) == h.x.opts.PageSize {
			res.NextCursor = encodeListCursor(res.Events[len(res.Events)-1].Name)
			break
		}
		res.Events = append(res.Events, describe(r))
	}
	return res, nil
}

func encodeListCursor(label string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(listCursorPrefix + label))
}

func decodeListCursor(cursor string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", err
	}
	label, ok := strings.CutPrefix(string(raw), listCursorPrefix)
	if !ok || label == "" {
		return "", fmt.Errorf("unknown cursor format")
	}
	return label, nil
}
