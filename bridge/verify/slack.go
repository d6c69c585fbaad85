package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// verifySlack checks X-Slack-Signature, "v0=<hex>" of the HMAC-SHA256 of
// "v0:<X-Slack-Request-Timestamp>:<body>", and that the timestamp is within
// the tolerance, as Slack's documentation requires against replays.
func verifySlack(r *request) (Result, error) {
	const (
		sigName = "X-Slack-Signature"
		tsName  = "X-Slack-Request-Timestamp"
	)
	sig := r.header.Get(sigName)
	if sig == "" {
		return Result{}, missing(sigName)
	}
	ts := r.header.Get(tsName)
	if ts == "" {
		return Result{}, missing(tsName)
	}
	hexMAC, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return Result{}, malformed(sigName, "no v0= prefix")
	}
	mac, err := hex.DecodeString(hexMAC)
	if err != nil {
		return Result{}, malformed(sigName, "not hex")
	}
	at, ok := parseUnix(ts)
	if !ok {
		return Result{}, malformed(tsName, "not a Unix time")
	}
	if !r.matches(sha256.New, [][]byte{mac}, []byte("v0:"+ts+":"), r.body) {
		return Result{}, errNoMatch
	}
	if err := r.fresh(at, 0); err != nil {
		return Result{}, err
	}

	typ, id, occurred := slackEvent(r.body)
	return Result{EventType: typ, ProviderEventID: id, Timestamp: at, OccurredAt: occurred}, nil
}

// slackEvent returns the event type and ID of a Slack body.
//
// Events API bodies are JSON. For an event_callback the inner event.type
// (such as "app_mention") is reported: the envelope type is the same for
// every event and says nothing to a consumer. Any other envelope reports its
// own type; in particular url_verification, which the ingress answers by
// echoing the challenge.
//
// Slash commands and interactivity are form-encoded. Interactivity carries
// JSON in a payload field with its own type (block_actions,
// view_submission, …); a slash command has no type field and is reported as
// "slash_command". Neither carries a stable delivery ID.
func slackEvent(body []byte) (typ, id string, occurred time.Time) {
	doc, form := document(body)
	if form.Has("command") {
		return "slash_command", "", time.Time{}
	}
	var b struct {
		Type      string `json:"type"`
		EventID   string `json:"event_id"`
		EventTime int64  `json:"event_time"`
		Event     struct {
			Type string `json:"type"`
		} `json:"event"`
	}
	decodeJSON(doc, &b)
	if b.Type == "event_callback" && b.Event.Type != "" {
		return b.Event.Type, b.EventID, unixSeconds(b.EventTime)
	}
	return b.Type, b.EventID, unixSeconds(b.EventTime)
}
