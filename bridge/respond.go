package bridge

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with {"error": msg}. Messages never echo secrets or
// signatures, so a prober learns nothing about the expected value.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

// writeUnavailable answers 503 with Retry-After, so the provider retries
// rather than dropping the event.
func writeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	writeError(w, http.StatusServiceUnavailable, "store unavailable, retry later")
}

func levelFor(o Outcome) slog.Level {
	if o == OutcomeStoreError {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}
