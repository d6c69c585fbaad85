package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/hookgate/hookgate/bridge/store"
)

// LocalPrincipal is the one principal of a --no-auth server.
const LocalPrincipal = "local"

// tokenPrefix marks hookgate tokens so they are recognisable in a leak scan.
const tokenPrefix = "hg_"

// HashToken returns the form a token is stored in: hex SHA-256. Tokens carry
// 130 random bits, so a fast hash is enough; no salt or stretching is needed.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateToken stores a new token for the principal and returns its text,
// which exists nowhere else afterwards.
func CreateToken(ctx context.Context, s store.Store, principal string, now time.Time) (string, error) {
	if principal == "" || strings.ContainsAny(principal, "\x00/") {
		return "", fmt.Errorf("create token: principal name %q must be non-empty without '/' or NUL", principal)
	}
	token := tokenPrefix + strings.ToLower(rand.Text())
	err := s.PutToken(ctx, store.Token{Hash: HashToken(token), Principal: principal, Name: principal, CreatedAt: now.UTC()})
	if err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return token, nil
}

// requireToken wraps h so each request must carry a bearer token stored in s;
// the SDK then hands its principal to tool handlers as TokenInfo.UserID.
func requireToken(s store.Store, h http.Handler) http.Handler {
	verifier := func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		t, err := s.TokenByHash(ctx, HashToken(token))
		if errors.Is(err, store.ErrNotFound) {
			return nil, auth.ErrInvalidToken
		}
		if err != nil {
			return nil, fmt.Errorf("look up token: %w", err)
		}
		return &auth.TokenInfo{UserID: t.Principal}, nil
	}
	return auth.RequireBearerToken(verifier, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
}

// noAuth makes every request the LocalPrincipal, whatever Authorization it
// carries. It goes through the same SDK middleware as real tokens, so
// handlers read identity one way only.
func noAuth(h http.Handler) http.Handler {
	verifier := func(context.Context, string, *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: LocalPrincipal}, nil
	}
	inner := auth.RequireBearerToken(verifier, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+LocalPrincipal)
		inner.ServeHTTP(w, r)
	})
}

// principalOf is the principal the auth middleware established for r.
func principalOf(r *http.Request) string {
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		return ti.UserID
	}
	return ""
}
