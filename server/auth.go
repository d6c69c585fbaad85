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
	"github.com/hookgate/hookgate/subscribe"
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

// DevTokenName is the Name of the development token that --dev-token (or a
// first start) creates. There is one valid development token at a time:
// each start that creates one supersedes the one before.
const DevTokenName = "dev-token"

// CreateDevToken stores a new development token for DevPrincipal and
// deletes every earlier one, so the previous development token stops
// working: there is one at a time.
func CreateDevToken(ctx context.Context, s store.Store, now time.Time) (string, error) {
	token := tokenPrefix + strings.ToLower(rand.Text())
	hash := HashToken(token)
	if err := s.PutToken(ctx, store.Token{Hash: hash, Principal: DevPrincipal, Name: DevTokenName, CreatedAt: now.UTC()}); err != nil {
		return "", fmt.Errorf("create development token: %w", err)
	}
	tokens, err := s.Tokens(ctx)
	if err != nil {
		return "", fmt.Errorf("create development token: %w", err)
	}
	for _, t := range tokens {
		if t.Name == DevTokenName && t.Hash != hash {
			if err := s.DeleteToken(ctx, t.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
				return "", fmt.Errorf("create development token: retire the previous one: %w", err)
			}
		}
	}
	return token, nil
}

// requireToken wraps h so each request must carry a bearer token stored in s;
// the SDK then hands its principal to tool handlers as TokenInfo.UserID.
// A WebSocket upgrade may offer the token as a subprotocol instead (see
// bearerFromSubprotocol); it is verified the same way.
func requireToken(s store.Store, h http.Handler) http.Handler {
	verifier := func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		var t store.Token
		var err error
		if l, ok := lookedUp(ctx, token); ok {
			t, err = l.token, l.err
		} else {
			t, err = s.TokenByHash(ctx, HashToken(token))
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil, auth.ErrInvalidToken
		}
		if err != nil {
			return nil, fmt.Errorf("look up token: %w", err)
		}
		return &auth.TokenInfo{UserID: t.Principal}, nil
	}
	return bearerFromSubprotocol(lookupToken(s, auth.RequireBearerToken(verifier, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)))
}

// noAuth makes every request the LocalPrincipal, whatever Authorization it
// carries. It goes through the same SDK middleware as real tokens, so
// handlers read identity one way only.
func noAuth(h http.Handler) http.Handler {
	verifier := func(context.Context, string, *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: LocalPrincipal}, nil
	}
	inner := auth.RequireBearerToken(verifier, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
	return bearerFromSubprotocol(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+LocalPrincipal)
		inner.ServeHTTP(w, r)
	}))
}

// bearerFromSubprotocol lets a browser authenticate a WebSocket upgrade:
// browsers cannot set Authorization on a WebSocket, and a token in the URL
// would end up in logs and history. The page offers the subprotocols
// [subscribe.BearerSubprotocol, token] instead, which arrive as
//
//	Sec-WebSocket-Protocol: hookgate.bearer, <token>
//
// On an upgrade request that names subscribe.BearerSubprotocol, the entry
// right after it is taken out of the header (so nothing downstream sees or
// echoes it) and, when the request has no Authorization of its own, sent on
// as "Authorization: Bearer <token>", to be verified exactly as a header
// token is. Other requests pass through untouched.
func bearerFromSubprotocol(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !headerHasToken(r.Header, "Upgrade", "websocket") {
			h.ServeHTTP(w, r)
			return
		}
		rest, token, found := splitSubprotocolToken(r.Header.Values("Sec-WebSocket-Protocol"))
		if !found {
			h.ServeHTTP(w, r)
			return
		}
		r = r.Clone(r.Context())
		r.Header.Del("Sec-WebSocket-Protocol")
		if len(rest) > 0 {
			r.Header.Set("Sec-WebSocket-Protocol", strings.Join(rest, ", "))
		}
		if token != "" && r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		h.ServeHTTP(w, r)
	})
}

// splitSubprotocolToken finds subscribe.BearerSubprotocol among the offered
// subprotocols and returns the list without the entry that follows it, and
// that entry (the token, "" when none follows).
func splitSubprotocolToken(values []string) (rest []string, token string, found bool) {
	var offered []string
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				offered = append(offered, p)
			}
		}
	}
	for i, p := range offered {
		if p != subscribe.BearerSubprotocol {
			continue
		}
		rest = append(rest, offered[:i+1]...)
		if i+1 < len(offered) {
			token = offered[i+1]
			rest = append(rest, offered[i+2:]...)
		}
		return rest, token, true
	}
	return offered, "", false
}

// headerHasToken reports whether a comma-separated header lists token,
// ignoring case (Upgrade: websocket, Connection: keep-alive, Upgrade).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), token) {
				return true
			}
		}
	}
	return false
}

// principalOf is the principal the auth middleware established for r.
func principalOf(r *http.Request) string {
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		return ti.UserID
	}
	return ""
}
