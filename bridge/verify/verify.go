package verify

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"hash"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Errors returned by Verify wrap exactly one of these, so that callers can
// tell them apart with errors.Is.
var (
	// ErrUnknownScheme means the scheme name is not one of Schemes.
	ErrUnknownScheme = errors.New("unknown scheme")
	// ErrNoSecret means no usable secret was given.
	ErrNoSecret = errors.New("no secret")
	// ErrMissingSignature means a header the scheme signs with is absent.
	ErrMissingSignature = errors.New("missing signature")
	// ErrBadSignature means the signature headers are malformed or no
	// secret produces a matching signature.
	ErrBadSignature = errors.New("bad signature")
	// ErrStale means the signature matched but its signed timestamp is
	// further from the verifier's clock than the tolerance, in either
	// direction.
	ErrStale = errors.New("timestamp outside tolerance")
)

// errNoMatch is the common ErrBadSignature: a well-formed signature that no
// configured secret reproduces.
var errNoMatch = fmt.Errorf("%w: no secret matches", ErrBadSignature)

// defaultTolerance is the window Stripe's, Slack's and the Standard Webhooks
// libraries all use.
const defaultTolerance = 300 * time.Second

// Result describes a verified delivery.
type Result struct {
	// EventType is the provider's event type, such as "invoice.paid" or
	// "issues.opened"; "" if the delivery does not state one.
	EventType string
	// ProviderEventID is the provider's own event or delivery ID, the key
	// hookgate deduplicates retries on; "" if the provider sends none.
	ProviderEventID string
	// Timestamp is the time the provider signed, or for schemes that sign
	// no time, the event time stated in the signed body; zero if neither
	// exists.
	Timestamp time.Time
	// OccurredAt is when the event happened by the provider's own account
	// in the delivery (Stripe's created, Zendesk's time, Slack's
	// event_time, the Standard Webhooks body timestamp, Linear's
	// createdAt, Shopify's X-Shopify-Triggered-At, Intercom's created_at,
	// PagerDuty's occurred_at, Square's created_at); zero when it states
	// none. Unlike a signing time it stays the same across a provider's
	// retries, so delivery latency measured from it includes retry lag.
	OccurredAt time.Time
}

// Options configures verification. The zero value uses the defaults.
type Options struct {
	// Tolerance is how far a signed timestamp may be from the verifier's
	// clock, in the past or the future, for schemes that sign one.
	// Zero or negative means 300 s. Linear's window is never wider than
	// 60 s, the window of Linear's own SDK.
	Tolerance time.Duration
}

// Verify checks one request against a scheme with the default tolerance
// (300 s). url is the full public URL the provider called (Twilio and Square
// sign it) and now is the verifier's clock. On success it returns the
// event's type and ID as the provider states them; on failure the error
// wraps one of ErrUnknownScheme, ErrNoSecret, ErrMissingSignature,
// ErrBadSignature or ErrStale.
func Verify(scheme string, secrets []string, url string, header http.Header, body []byte, now time.Time) (Result, error) {
	return Options{}.Verify(scheme, secrets, url, header, body, now)
}

// Verify is Verify with these options.
func (o Options) Verify(scheme string, secrets []string, url string, header http.Header, body []byte, now time.Time) (Result, error) {
	check, ok := schemes[scheme]
	if !ok {
		return Result{}, fmt.Errorf("verify: %w %q", ErrUnknownScheme, scheme)
	}
	// An empty key is one anybody can sign with, so a blank entry in the
	// configuration must not count as a secret.
	var usable []string
	for _, s := range secrets {
		if s != "" {
			usable = append(usable, s)
		}
	}
	if len(usable) == 0 {
		return Result{}, fmt.Errorf("%s: %w", scheme, ErrNoSecret)
	}
	r := &request{
		secrets:   usable,
		url:       url,
		header:    header,
		body:      body,
		now:       now,
		tolerance: o.Tolerance,
	}
	res, err := check(r)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", scheme, err)
	}
	return res, nil
}

// schemes maps each scheme name to its verifier. It is never modified.
var schemes = map[string]func(*request) (Result, error){
	"generic":           verifyGeneric,
	"github":            verifyGitHub,
	"intercom":          verifyIntercom,
	"linear":            verifyLinear,
	"pagerduty":         verifyPagerDuty,
	"shopify":           verifyShopify,
	"slack":             verifySlack,
	"square":            verifySquare,
	"standard-webhooks": verifyStandardWebhooks,
	"stripe":            verifyStripe,
	"svix":              verifySvix,
	"twilio":            verifyTwilio,
	"zendesk":           verifyZendesk,
}

// Schemes returns the supported scheme names, sorted.
func Schemes() []string {
	return slices.Sorted(maps.Keys(schemes))
}

// Known reports whether scheme is supported.
func Known(scheme string) bool {
	_, ok := schemes[scheme]
	return ok
}

// request is one delivery as a scheme's verifier sees it.
type request struct {
	secrets   []string // non-empty strings only
	url       string
	header    http.Header
	body      []byte
	now       time.Time
	tolerance time.Duration // as configured; non-positive selects the default
}

// matches reports whether the HMAC of the concatenated parts under any of
// the secrets, used as raw bytes, equals any of sigs.
func (r *request) matches(h func() hash.Hash, sigs [][]byte, parts ...[]byte) bool {
	keys := make([][]byte, len(r.secrets))
	for i, s := range r.secrets {
		keys[i] = []byte(s)
	}
	return anyMatch(h, keys, sigs, parts...)
}

// anyMatch reports whether the HMAC of the concatenated parts under any of
// keys equals any of sigs. hmac.Equal runs in constant time for equal
// lengths and fails on a length mismatch, so a truncated signature never
// matches a prefix.
func anyMatch(h func() hash.Hash, keys, sigs [][]byte, parts ...[]byte) bool {
	for _, key := range keys {
		m := hmac.New(h, key)
		for _, p := range parts {
			m.Write(p)
		}
		sum := m.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(sum, sig) {
				return true
			}
		}
	}
	return false
}

// fresh checks that ts lies within the tolerance of the verifier's clock,
// both ways: a timestamp from the future is as suspect as an old one, and
// rejecting it stops a leaked signature from staying usable for long.
// limit caps the configured tolerance for schemes whose provider publishes
// a narrower window; 0 means no cap.
func (r *request) fresh(ts time.Time, limit time.Duration) error {
	tol := r.tolerance
	if tol <= 0 {
		tol = defaultTolerance
	}
	if limit > 0 && tol > limit {
		tol = limit
	}
	// Time.Sub saturates instead of overflowing, so far-off timestamps
	// still compare correctly.
	if d := r.now.Sub(ts); d > tol || d < -tol {
		return fmt.Errorf("%w: signed at %s, %s from now, tolerance %s",
			ErrStale, ts.UTC().Format(time.RFC3339), d, tol)
	}
	return nil
}

// missing reports an absent header.
func missing(name string) error {
	return fmt.Errorf("%w: no %s header", ErrMissingSignature, name)
}

// malformed reports a header that cannot be parsed.
func malformed(name, why string) error {
	return fmt.Errorf("%w: malformed %s header: %s", ErrBadSignature, name, why)
}

// parseUnix parses a decimal Unix time in seconds.
func parseUnix(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}
