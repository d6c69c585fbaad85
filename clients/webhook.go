package clients

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// defaultSendAttempts is how often WebhookSender tries one event before it
// takes a failure as one it cannot get past.
const defaultSendAttempts = 5

// WebhookSender POSTs events to a URL signed per Standard Webhooks
// (webhook-id, webhook-timestamp, webhook-signature: v1,<base64
// HMAC-SHA256 of "id.timestamp.body">), with webhook-id set to the event
// ID so the receiver can deduplicate a replay that runs twice. The body is
// the event's JSON as hookgate serves it.
type WebhookSender struct {
	URL string
	// Secret is the signing secret: "whsec_" and base64, as Standard
	// Webhooks issues them; any other text is used as the key's bytes.
	Secret string
	// HTTPClient sends; nil means a client with a 30 s timeout. Redirects
	// are never followed, even when this client's CheckRedirect would:
	// the client would follow a 301, 302 or 303 with a GET that drops the
	// body, and its 2xx would count as delivered. A 3xx is a permanent
	// failure instead; point URL at where the receiver really is.
	HTTPClient *http.Client
	// Retry spaces out attempts after a network error, a 5xx, 408 or 429;
	// zero fields mean 1 s doubling up to 1 min.
	Retry Backoff
	// MaxAttempts bounds the attempts per event; <= 0 means 5.
	MaxAttempts int
}

// SendError is a delivery WebhookSender gave up on.
type SendError struct {
	EventID string
	// Permanent is set when the receiver refused the event (a 4xx other
	// than 408 and 429) or redirected it (a 3xx, which is not followed),
	// which no retry could change.
	Permanent bool
	Attempts  int
	Err       error
}

// Error says which event could not be delivered and why.
func (e *SendError) Error() string {
	kind := "after " + strconv.Itoa(e.Attempts) + " attempts"
	if e.Permanent {
		kind = "refused"
	}
	return fmt.Sprintf("deliver event %s: %s: %v", e.EventID, kind, e.Err)
}

// Unwrap returns the last attempt's failure.
func (e *SendError) Unwrap() error { return e.Err }

// key returns the HMAC key of Secret.
func (s *WebhookSender) key() []byte {
	if b64, ok := strings.CutPrefix(s.Secret, "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return k
		}
	}
	return []byte(s.Secret)
}

// Send delivers one event, retrying as configured, and returns a
// *SendError when it cannot.
func (s *WebhookSender) Send(ctx context.Context, e Event) error {
	body := []byte(e.Raw)
	if len(body) == 0 {
		var err error
		if body, err = json.Marshal(e); err != nil {
			return fmt.Errorf("encode event %s: %w", e.ID, err)
		}
	}
	client := noRedirects(s.HTTPClient)
	attempts := s.MaxAttempts
	if attempts <= 0 {
		attempts = defaultSendAttempts
	}
	key := s.key()
	var last error
	for n := 1; ; n++ {
		permanent, err := s.post(ctx, client, key, e.ID, body)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
		if permanent || n >= attempts {
			return &SendError{EventID: e.ID, Permanent: permanent, Attempts: n, Err: last}
		}
		if !sleep(ctx, s.Retry.Delay(n)) {
			return ctx.Err()
		}
	}
}

// post makes one attempt and reports whether a failure is permanent.
func (s *WebhookSender) post(ctx context.Context, client *http.Client, key []byte, id string, body []byte) (bool, error) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return true, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return true, fmt.Errorf("%s answered %d %s, a redirect to %q, which is not followed (a client following one may resend the event as a GET without its body): give the receiver's final URL",
			s.URL, resp.StatusCode, http.StatusText(resp.StatusCode), resp.Header.Get("Location"))
	}
	herr := responseError(resp)
	err = fmt.Errorf("%s answered %d %s: %.200s", s.URL, herr.StatusCode, http.StatusText(herr.StatusCode), herr.Message)
	return herr.permanent(), err
}

// noRedirects returns a copy of client (nil: one with a 30 s timeout) that
// hands back a redirect as the response instead of following it.
func noRedirects(client *http.Client) *http.Client {
	c := http.Client{Timeout: 30 * time.Second}
	if client != nil {
		c = *client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}
