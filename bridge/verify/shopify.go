package verify

import (
	"crypto/sha256"
	"encoding/base64"
)

// verifyShopify checks X-Shopify-Hmac-Sha256, the base64 HMAC-SHA256 of the
// raw body. Shopify signs no timestamp, so deduplication is the only replay
// defence.
func verifyShopify(r *request) (Result, error) {
	const name = "X-Shopify-Hmac-Sha256"
	sig := r.header.Get(name)
	if sig == "" {
		return Result{}, missing(name)
	}
	mac, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return Result{}, malformed(name, "not base64")
	}
	if !r.matches(sha256.New, [][]byte{mac}, r.body) {
		return Result{}, errNoMatch
	}

	// Shopify's pages disagree on the duplicate-detection header; the event
	// ID identifies the event across subscriptions, the webhook ID only one
	// delivery, so the event ID wins when both are sent.
	id := r.header.Get("X-Shopify-Event-Id")
	if id == "" {
		id = r.header.Get("X-Shopify-Webhook-Id")
	}
	return Result{EventType: r.header.Get("X-Shopify-Topic"), ProviderEventID: id, OccurredAt: parseRFC3339(r.header.Get("X-Shopify-Triggered-At"))}, nil
}
