package bridge

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/verify"
)

// ErrInvalid marks a request that can never succeed as sent (a bad label,
// an unknown provider, a malformed ID); the message says what to change.
var ErrInvalid = errors.New("invalid request")

// labelPattern keeps labels usable inside resource URIs and URLs unescaped.
var labelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// RegisterRequest creates a registration or updates an existing one.
type RegisterRequest struct {
	Label string
	// Provider is the signature scheme; "" means generic for a new
	// registration and "keep" for an existing one.
	Provider string
	// Secrets, when non-empty, replace the registration's secrets (newest
	// last). Empty keeps the current ones, or generates one for a new
	// registration.
	Secrets []string
	// VerifyToken, when non-empty, is what a Meta-style GET handshake must
	// present in hub.verify_token.
	VerifyToken string
}

// ResourceURI is the MCP resource of a registration's events.
func ResourceURI(label string) string { return "hookgate://webhooks/" + label }

// Register creates the principal's registration for req.Label, or updates it
// when one exists: the ID, and so the URL, never change for a label.
func (in *Inbox) Register(ctx context.Context, principal string, req RegisterRequest) (store.Registration, error) {
	if !labelPattern.MatchString(req.Label) {
		return store.Registration{}, fmt.Errorf("%w: label %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, req.Label)
	}
	if req.Provider != "" && !verify.Known(req.Provider) {
		return store.Registration{}, fmt.Errorf("%w: unknown provider %q (known: %s)", ErrInvalid, req.Provider, strings.Join(verify.Schemes(), ", "))
	}
	for _, s := range req.Secrets {
		if s == "" {
			return store.Registration{}, fmt.Errorf("%w: a secret is empty", ErrInvalid)
		}
	}
	reg, err := in.store.RegistrationByLabel(ctx, principal, req.Label)
	switch {
	case errors.Is(err, store.ErrNotFound):
		reg, err = in.newRegistration(principal, req)
		if err != nil {
			return store.Registration{}, err
		}
	case err != nil:
		return store.Registration{}, fmt.Errorf("look up registration %q: %w", req.Label, err)
	default:
		if req.Provider != "" && req.Provider != reg.Provider {
			return store.Registration{}, fmt.Errorf("%w: label %q is registered with provider %q; delete it first to change provider", ErrInvalid, req.Label, reg.Provider)
		}
		if len(req.Secrets) > 0 {
			reg.Secrets = req.Secrets
		}
		if req.VerifyToken != "" {
			reg.VerifyToken = req.VerifyToken
		}
	}
	if err := in.store.PutRegistration(ctx, reg); err != nil {
		return store.Registration{}, fmt.Errorf("save registration %q: %w", req.Label, err)
	}
	return reg, nil
}

func (in *Inbox) newRegistration(principal string, req RegisterRequest) (store.Registration, error) {
	provider := req.Provider
	if provider == "" {
		provider = "generic"
	}
	secrets := req.Secrets
	if len(secrets) == 0 {
		secret, err := newSecret()
		if err != nil {
			return store.Registration{}, err
		}
		secrets = []string{secret}
	}
	return store.Registration{
		ID:          "wh_" + strings.ToLower(rand.Text()),
		Principal:   principal,
		Label:       req.Label,
		Provider:    provider,
		Secrets:     secrets,
		VerifyToken: req.VerifyToken,
		CreatedAt:   in.opts.Now().UTC(),
	}, nil
}

// newSecret makes a secret in the Standard Webhooks form, which every other
// scheme also accepts as an opaque key string.
func newSecret() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:]), nil
}

// Registrations lists the principal's registrations by label.
func (in *Inbox) Registrations(ctx context.Context, principal string) ([]store.Registration, error) {
	regs, err := in.store.Registrations(ctx, principal)
	if err != nil {
		return nil, fmt.Errorf("list registrations: %w", err)
	}
	return regs, nil
}

// Webhook is one registration as a principal sees it in a listing: where
// to point the provider and what is waiting, never the secret. It is the
// item of the list_webhooks tool's result and of GET /v1/webhooks.
type Webhook struct {
	ID          string    `json:"id"`
	Label       string    `json:"label"`
	URL         string    `json:"url"`
	Provider    string    `json:"provider"`
	ResourceURI string    `json:"resourceUri"`
	CreatedAt   time.Time `json:"createdAt"`
	Pending     int       `json:"pending"`
}

// Webhooks lists the principal's registrations by label with their URLs
// and pending counts.
func (in *Inbox) Webhooks(ctx context.Context, principal string) ([]Webhook, error) {
	regs, err := in.Registrations(ctx, principal)
	if err != nil {
		return nil, err
	}
	out := make([]Webhook, 0, len(regs))
	for _, reg := range regs {
		pending, err := in.Pending(ctx, principal, reg.Label)
		if err != nil {
			return nil, fmt.Errorf("count pending of %q: %w", reg.Label, err)
		}
		out = append(out, Webhook{
			ID:          reg.ID,
			Label:       reg.Label,
			URL:         in.HookURL(reg.ID),
			Provider:    reg.Provider,
			ResourceURI: ResourceURI(reg.Label),
			CreatedAt:   reg.CreatedAt,
			Pending:     pending,
		})
	}
	return out, nil
}

// Delete removes the principal's registration: its URL answers 410 from then on.
func (in *Inbox) Delete(ctx context.Context, principal, label string) error {
	if err := in.store.DeleteRegistration(ctx, principal, label); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: no webhook labelled %q", store.ErrNotFound, label)
		}
		return fmt.Errorf("delete registration %q: %w", label, err)
	}
	return nil
}

// CheckLabel returns ErrNotFound, naming the label, unless the principal has
// a live registration with it. "" means every label and always passes.
func (in *Inbox) CheckLabel(ctx context.Context, principal, label string) error {
	if label == "" {
		return nil
	}
	if _, err := in.store.RegistrationByLabel(ctx, principal, label); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: no webhook labelled %q", store.ErrNotFound, label)
		}
		return fmt.Errorf("look up label %q: %w", label, err)
	}
	return nil
}
