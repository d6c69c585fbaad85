package bridge

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/verify"
)

// Outcome names what ingress did with one request. It is the label of the
// ingress metrics and the "outcome" attribute of its log line.
type Outcome string

// Ingress outcomes.
const (
	OutcomeAccepted     Outcome = "accepted"
	OutcomeDuplicate    Outcome = "duplicate"
	OutcomeBadSignature Outcome = "bad_signature"
	OutcomeStale        Outcome = "stale"
	OutcomeTooLarge     Outcome = "too_large"
	OutcomeUnknown      Outcome = "unknown"
	OutcomeGone         Outcome = "gone"
	OutcomeStoreError   Outcome = "store_error"
	OutcomeHandshake    Outcome = "handshake"
	OutcomeBadRequest   Outcome = "bad_request"
)

// retryAfterSeconds is what a 503 asks a provider to wait before retrying.
const retryAfterSeconds = 5

// ServeHTTP answers webhook ingress on POST /hooks/{id} (and the GET
// handshake of Meta-style providers). A 2xx is sent only once the event is
// durable; anything else stores nothing.
func (in *Inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := in.opts.Now()
	rep := WebhookReport{}
	rep.Outcome = in.serveHook(w, r, &rep)
	rep.Duration = in.opts.Now().Sub(start)
	in.observer.Webhook(rep)
	attrs := []slog.Attr{
		slog.String("outcome", string(rep.Outcome)),
		slog.String("provider", rep.Provider),
		slog.String("principal", rep.Principal),
		slog.String("label", rep.Label),
		slog.Duration("took", rep.Duration),
	}
	if !rep.EventID.IsZero() {
		attrs = append(attrs, slog.String("event", rep.EventID.String()))
	}
	in.logger.LogAttrs(r.Context(), levelFor(rep.Outcome), "webhook", attrs...)
}

// serveHook answers one ingress request and fills in what rep can know.
func (in *Inbox) serveHook(w http.ResponseWriter, r *http.Request, rep *WebhookReport) Outcome {
	reg, err := in.store.Registration(r.Context(), r.PathValue("id"))
	if err == nil {
		rep.Provider, rep.Principal, rep.Label = reg.Provider, reg.Principal, reg.Label
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such webhook")
		return OutcomeUnknown
	case err != nil:
		in.logger.WarnContext(r.Context(), "webhook: look up registration", "err", err)
		writeUnavailable(w)
		return OutcomeStoreError
	case reg.Deleted:
		writeError(w, http.StatusGone, "webhook deleted")
		return OutcomeGone
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet:
		return in.serveChallenge(w, r, reg)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return OutcomeBadRequest
	}

	if r.ContentLength > in.opts.MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "body over "+strconv.FormatInt(in.opts.MaxBody, 10)+" bytes")
		return OutcomeTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.opts.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "body over "+strconv.FormatInt(in.opts.MaxBody, 10)+" bytes")
			return OutcomeTooLarge
		}
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return OutcomeBadRequest
	}

	now := in.opts.Now()
	rep.ReceivedAt = now
	result, err := verify.Options{Tolerance: in.opts.Tolerance}.Verify(reg.Provider, reg.Secrets, in.HookURL(reg.ID)+queryOf(r), r.Header, body, now)
	if err != nil {
		if errors.Is(err, verify.ErrStale) {
			writeError(w, http.StatusUnauthorized, "timestamp outside tolerance")
			return OutcomeStale
		}
		writeError(w, http.StatusUnauthorized, "signature verification failed")
		return OutcomeBadSignature
	}
	// Delivery latency runs from when the event happened; a provider that
	// states no such time in the delivery is measured from when it signed.
	rep.EventTime = result.OccurredAt
	if rep.EventTime.IsZero() {
		rep.EventTime = result.Timestamp
	}
	if reg.Provider == "slack" && result.EventType == "url_verification" {
		return in.answerSlackChallenge(w, body)
	}

	payload, err := payloadJSON(r.Header.Get("Content-Type"), body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "encode payload: "+err.Error())
		return OutcomeBadRequest
	}
	appended, err := in.store.Append(r.Context(), store.NewEvent{
		Principal:       reg.Principal,
		RegistrationID:  reg.ID,
		Label:           reg.Label,
		Source:          reg.Provider,
		Type:            result.EventType,
		ProviderEventID: result.ProviderEventID,
		ReceivedAt:      now.UTC(),
		Verified:        true,
		Payload:         payload,
	})
	switch {
	case errors.Is(err, store.ErrGone):
		// Deleted between the lookup above and the append: the store refused
		// it atomically, so the provider hears the same 410 it will from now on.
		writeError(w, http.StatusGone, "webhook deleted")
		return OutcomeGone
	case err != nil:
		in.logger.WarnContext(r.Context(), "webhook: append event", "registration", reg.ID, "err", err)
		writeUnavailable(w)
		return OutcomeStoreError
	}
	rep.EventID = appended.ID
	if !appended.Duplicate {
		in.wake.Notify(reg.Principal)
	}
	writeJSON(w, http.StatusOK, struct {
		ID        store.ID `json:"id"`
		Duplicate bool     `json:"duplicate"`
	}{appended.ID, appended.Duplicate})
	if appended.Duplicate {
		return OutcomeDuplicate
	}
	return OutcomeAccepted
}

// serveChallenge answers the subscription handshake of Meta-style providers:
// echo hub.challenge when hub.verify_token is the registration's.
func (in *Inbox) serveChallenge(w http.ResponseWriter, r *http.Request, reg store.Registration) Outcome {
	q := r.URL.Query()
	challenge := q.Get("hub.challenge")
	if challenge == "" {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return OutcomeBadRequest
	}
	token := q.Get("hub.verify_token")
	if reg.VerifyToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(reg.VerifyToken)) != 1 {
		writeError(w, http.StatusForbidden, "hub.verify_token does not match")
		return OutcomeBadSignature
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, challenge)
	return OutcomeHandshake
}

// answerSlackChallenge echoes a verified Slack url_verification challenge.
func (in *Inbox) answerSlackChallenge(w http.ResponseWriter, body []byte) Outcome {
	var msg struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || msg.Challenge == "" {
		writeError(w, http.StatusBadRequest, "url_verification without a challenge")
		return OutcomeBadRequest
	}
	writeJSON(w, http.StatusOK, msg)
	return OutcomeHandshake
}

func queryOf(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return "?" + r.URL.RawQuery
}
