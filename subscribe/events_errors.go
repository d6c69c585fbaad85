package subscribe

import (
	"encoding/json"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// errorProfile numbers the extension's errors. The design sketch (which
// ChatGPT's documentation and the draft conformance suite use) and SEP-3415
// give the same names different codes.
type errorProfile struct {
	notFound, forbidden, exhausted, unsupported, callback int64
}

func errorProfileFor(p EventsProfile) errorProfile {
	if p == ProfileSEP {
		return errorProfile{notFound: -32023, forbidden: -32024, exhausted: -32025, unsupported: -32026, callback: -32027}
	}
	return errorProfile{notFound: -32011, forbidden: -32012, exhausted: -32013, unsupported: -32014, callback: -32015}
}

// Codes shared by every profile and protocol version.
const (
	codeInvalidParams  = jsonrpc.CodeInvalidParams
	codeHeaderMismatch = -32020
	codeUnsupportedVer = -32022
)

// rpcError builds a JSON-RPC error whose data is the JSON of data (omitted
// when nil). Messages are the extension's error names, so a client can
// branch on either.
func rpcError(code int64, message string, data any) *jsonrpc.Error {
	e := &jsonrpc.Error{Code: code, Message: message}
	if data != nil {
		e.Data, _ = json.Marshal(data)
	}
	return e
}

// invalidParams is -32602 with the offending field and why, so a client
// can fix the request without guessing.
func invalidParams(field, format string, args ...any) *jsonrpc.Error {
	return rpcError(codeInvalidParams, "Invalid params: "+field+": "+fmt.Sprintf(format, args...),
		map[string]string{"field": field, "reason": fmt.Sprintf(format, args...)})
}

func (p errorProfile) eventNotFound(name string) *jsonrpc.Error {
	return rpcError(p.notFound, "NotFound", map[string]string{"kind": "event", "name": name})
}

func (p errorProfile) subscriptionNotFound() *jsonrpc.Error {
	return rpcError(p.notFound, "NotFound", map[string]string{"kind": "subscription"})
}

func (p errorProfile) forbiddenError(reason string) *jsonrpc.Error {
	return rpcError(p.forbidden, "Forbidden", map[string]string{"reason": reason})
}

func (p errorProfile) quotaExceeded(limit int) *jsonrpc.Error {
	return rpcError(p.exhausted, "ResourceExhausted", map[string]any{"limit": "subscriptions", "max": limit})
}

// callbackFailed never carries what the endpoint sent: reason is one of
// the extension's closed list of categories.
func (p errorProfile) callbackFailed(reason callbackReason) *jsonrpc.Error {
	return rpcError(p.callback, "CallbackEndpointError", map[string]string{"reason": string(reason)})
}

// callbackReason is the category of a failed callback request, the only
// thing about it that ever reaches a client.
type callbackReason string

// The categories of the extension (deliveryStatus.lastError and
// CallbackEndpointError data.reason).
const (
	reasonConnectionRefused callbackReason = "connection_refused"
	reasonTimeout           callbackReason = "timeout"
	reasonTLS               callbackReason = "tls_error"
	reasonHTTP4xx           callbackReason = "http_4xx"
	reasonHTTP5xx           callbackReason = "http_5xx"
	reasonChallengeFailed   callbackReason = "challenge_failed"
)
