package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/hookgate/hookgate/bridge/store"
)

// retryAfterSeconds is the Retry-After of a request refused because the
// store is unavailable, as ingress answers it.
const retryAfterSeconds = "1"

// tokenLookup is the result of looking up a request's bearer token, made
// before the SDK's bearer middleware runs (see lookupToken).
type tokenLookup struct {
	hash  string // of the token looked up
	token store.Token
	err   error
}

type tokenLookupKey struct{}

// lookupToken looks up the request's bearer token before h (the SDK's
// bearer middleware) runs, so that a store outage is answered as one:
// 503 with Retry-After and a message naming the store, where the SDK
// would answer 500. Otherwise the lookup travels in the context to the
// verifier, which does not repeat it.
func lookupToken(s store.Store, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
			h.ServeHTTP(w, r)
			return
		}
		hash := HashToken(strings.TrimSpace(token))
		t, err := s.TokenByHash(r.Context(), hash)
		if errors.Is(err, store.ErrUnavailable) {
			w.Header().Set("Retry-After", retryAfterSeconds)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(struct {
				Error string `json:"error"`
			}{"store unavailable, retry later: " + err.Error()})
			return
		}
		ctx := context.WithValue(r.Context(), tokenLookupKey{}, &tokenLookup{hash, t, err})
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// lookedUp returns the lookup lookupToken made of token for this request,
// if any.
func lookedUp(ctx context.Context, token string) (*tokenLookup, bool) {
	l, ok := ctx.Value(tokenLookupKey{}).(*tokenLookup)
	if !ok || l.hash != HashToken(token) {
		return nil, false
	}
	return l, true
}
