package subscribe

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
)

// challenge confirms that the endpoint at u wants deliveries before any is
// sent (so hookgate cannot be used to flood a third party): one POST of
// {"type":"verification","challenge":nonce}, signed with the secret of
// this subscribe request and headed like a delivery, which must be
// answered 2xx with {"challenge": nonce}. It goes through the same
// address-checked client as deliveries and follows no redirect. The
// failure is a category only: nothing the endpoint sent reaches the
// subscriber's client.
func (x *Events) challenge(ctx context.Context, u *url.URL, id string, key []byte) (callbackReason, bool) {
	nonce := randomToken()
	body, _ := json.Marshal(map[string]string{"type": "verification", "challenge": nonce})
	ctx, cancel := context.WithTimeout(ctx, x.opts.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return reasonConnectionRefused, false
	}
	signedHeaders(req.Header, "msg_verification_"+randomToken(), x.opts.Now(), body, [][]byte{key})
	req.Header.Set("X-MCP-Subscription-Id", id)
	resp, err := x.callback.http.Do(req)
	if err != nil {
		return classify(err), false
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxCallbackResponse))
	if err != nil {
		return classify(err), false
	}
	if resp.StatusCode/100 != 2 {
		// The extension's conformance draft expects challenge_failed for
		// a reachable endpoint that does not echo, whatever its status.
		return reasonChallengeFailed, false
	}
	var echo struct {
		Challenge string `json:"challenge"`
	}
	if json.Unmarshal(raw, &echo) != nil || subtle.ConstantTimeCompare([]byte(echo.Challenge), []byte(nonce)) != 1 {
		return reasonChallengeFailed, false
	}
	return "", true
}
