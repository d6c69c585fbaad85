package server

import (
	"encoding/json"
	"net/http"

	"github.com/hookgate/hookgate/bridge"
)

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
		hooks, err := inbox.Webhooks(r.Context(), principal)
		if err != nil {
			replyJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "list webhooks: " + err.Error()})
			return
		}
		out := struct {
			Webhooks []bridge.Webhook `json:"webhooks"`
		}{Webhooks: hooks}
		replyJSON(w, http.StatusOK, out)
	})
}

// replyJSON answers with v as JSON.
func replyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
