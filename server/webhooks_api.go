package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/hookgate/hookgate/bridge"
)

// webhookListing is one registration in GET /v1/webhooks: the shape of an
// item of the list_webhooks tool's result. Secrets are never listed.
type webhookListing struct {
	ID          string    `json:"id"`
	Label       string    `json:"label"`
	URL         string    `json:"url"`
	Provider    string    `json:"provider"`
	ResourceURI string    `json:"resourceUri"`
	CreatedAt   time.Time `json:"createdAt"`
	Pending     int       `json:"pending"`
}

// webhooksHandler serves GET /v1/webhooks: the caller's registrations with
// their URLs and how many events are pending on each, as
// {"webhooks":[...]} — what list_webhooks returns, for clients without MCP
// such as the dashboard.
func webhooksHandler(inbox *bridge.Inbox) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal := principalOf(r)
		if principal == "" {
			replyJSON(w, http.StatusUnauthorized, map[string]string{"error": "authentication required: send Authorization: Bearer <token>"})
			return
		}
		regs, err := inbox.Registrations(r.Context(), principal)
		if err != nil {
			replyJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "list webhooks: " + err.Error()})
			return
		}
		out := struct {
			Webhooks []webhookListing `json:"webhooks"`
		}{Webhooks: make([]webhookListing, 0, len(regs))}
		for _, reg := range regs {
			pending, err := inbox.Pending(r.Context(), principal, reg.Label)
			if err != nil {
				replyJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "count pending of " + reg.Label + ": " + err.Error()})
				return
			}
			out.Webhooks = append(out.Webhooks, webhookListing{
				ID:          reg.ID,
				Label:       reg.Label,
				URL:         inbox.HookURL(reg.ID),
				Provider:    reg.Provider,
				ResourceURI: bridge.ResourceURI(reg.Label),
				CreatedAt:   reg.CreatedAt,
				Pending:     pending,
			})
		}
		replyJSON(w, http.StatusOK, out)
	})
}

// replyJSON answers with v as JSON.
func replyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
