package observe

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/compat"
)

// statsResult is the body of GET /v1/stats and the get_stats result.
type statsResult struct {
	Webhooks []RegistrationStats `json:"webhooks"`
}

type statsInput struct {
	Label         string `json:"label,omitempty" jsonschema:"only this webhook label"`
	WindowMinutes int    `json:"window_minutes,omitempty" jsonschema:"how many recent minutes to count (1-60, default 60)"`
}

// AddTool registers get_stats on s, so an agent can watch its own health.
func (o *Observer) AddTool(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name: "get_stats",
		Description: "Health of your webhooks over the last window_minutes (default 60): accepted, duplicate and badly signed deliveries; " +
			"acks, nacks, lease expiries, dead letters and events deleted by retention before an ack (expiredUnacked); delivery latency (provider's event time to receipt), processing latency (receipt to your ack), " +
			"drop rate ((dead letters + expiredUnacked) / accepted) and action success rate (acks / (acks + nacks + lease expiries)); and what is pending now.",
	}, func(ctx context.Context, req *mcp.CallToolRequest, in statsInput) (*mcp.CallToolResult, any, error) {
		principal := compat.Principal(ctx, req.Extra)
		if principal == "" {
			return nil, nil, compat.ErrUnauthenticated
		}
		stats, err := o.Stats(ctx, principal, in.Label, windowOf(in.WindowMinutes))
		if err != nil {
			return nil, nil, err
		}
		return nil, statsResult{Webhooks: stats}, nil
	})
}

// StatsHandler serves GET /v1/stats?label=&window_minutes= for the
// principal principalOf finds on the request.
func (o *Observer) StatsHandler(principalOf func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal := principalOf(r)
		minutes := 0
		if v := r.URL.Query().Get("window_minutes"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "window_minutes must be a positive number"})
				return
			}
			minutes = n
		}
		stats, err := o.Stats(r.Context(), principal, r.URL.Query().Get("label"), windowOf(minutes))
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, statsResult{Webhooks: stats})
	})
}

func windowOf(minutes int) time.Duration {
	if minutes <= 0 {
		return MaxWindow
	}
	return time.Duration(minutes) * time.Minute
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
