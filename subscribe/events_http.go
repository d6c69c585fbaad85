package subscribe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxPeekBody bounds what Handler reads of a request to see its method;
// the SDK refuses bigger bodies anyway.
const maxPeekBody = mcp.DefaultMaxRequestBodyBytes

// rpcRequest is the part of a JSON-RPC request Handler looks at.
type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

// Handler wraps the /mcp handler with what the extension needs below the
// SDK, which sends only the notifications it knows:
//
//   - events/stream, a long-lived POST answered with its own event stream;
//   - notifications/events/list_changed on each legacy session's GET
//     stream, and on 2026-07-28 subscriptions/listen streams that opt in
//     with eventsListChanged.
//
// Everything else reaches next unchanged. It must sit inside the
// authentication middleware (it reads the principal) and, to get write
// deadlines and bounded buffers, inside GuardStreams.
func (x *Events) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal := principalOf(r)
		if principal == "" {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet {
			x.serveLegacyStream(w, r, principal, next)
			return
		}
		if r.Method != http.MethodPost || !mayInterest(r) {
			next.ServeHTTP(w, r)
			return
		}
		req, err := peekRequest(r)
		if err != nil {
			next.ServeHTTP(w, r) // the SDK answers malformed requests
			return
		}
		switch {
		case req.Method == "events/stream" || r.Header.Get("Mcp-Method") == "events/stream":
			x.serveStream(w, r, principal, req)
		case req.Method == "subscriptions/listen" && wantsEventsListChanged(req):
			x.serveListen(w, r, principal, req, next)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// mayInterest reports whether a POST could be one Handler serves. A
// 2026-07-28 request names its method in Mcp-Method; a legacy one does
// not, but it belongs to a session, so an initialize is never read twice.
func mayInterest(r *http.Request) bool {
	switch r.Header.Get("Mcp-Method") {
	case "events/stream", "subscriptions/listen":
		return true
	case "":
		return r.Header.Get("Mcp-Session-Id") != ""
	}
	return false
}

// peekRequest reads r's body, puts it back for the next handler, and
// decodes it if it is a single request of interest. Batches and everything
// else yield a request with an empty method.
func peekRequest(r *http.Request) (rpcRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPeekBody+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	if err != nil {
		return rpcRequest{}, fmt.Errorf("read request: %w", err)
	}
	var req rpcRequest
	if !bytes.Contains(body, []byte(`"events/stream"`)) && !bytes.Contains(body, []byte(`"subscriptions/listen"`)) {
		return req, nil
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return req, nil
	}
	if err := json.Unmarshal(trimmed, &req); err != nil {
		return rpcRequest{}, fmt.Errorf("decode request: %w", err)
	}
	return req, nil
}

// principalOf is the principal the authentication middleware set.
func principalOf(r *http.Request) string {
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		return ti.UserID
	}
	return ""
}

// requestMeta is the _meta of a request's params.
type requestMeta struct {
	Meta mcp.Meta `json:"_meta"`
}

// checkProtocol applies the 2026-07-28 transport rules the SDK applies to
// the requests it serves itself, for the ones Handler serves: Mcp-Method
// must match the body, MCP-Protocol-Version the _meta version, which must
// be one the server speaks, and _meta must carry the client's
// capabilities. Legacy requests need their session ID. It returns the
// HTTP status with the error, and whether the request is 2026-07-28.
func checkProtocol(r *http.Request, req rpcRequest) (modern bool, status int, rerr *jsonrpc.Error) {
	header := r.Header.Get("Mcp-Protocol-Version")
	var p requestMeta
	_ = json.Unmarshal(req.Params, &p)
	metaVersion, _ := p.Meta[mcp.MetaKeyProtocolVersion].(string)
	if header < statelessProtocol && metaVersion == "" {
		if r.Header.Get("Mcp-Session-Id") == "" {
			return false, http.StatusBadRequest, rpcError(jsonrpc.CodeInvalidRequest, "Bad Request: missing Mcp-Session-Id; initialize first", nil)
		}
		return false, 0, nil
	}
	switch {
	case r.Header.Get("Mcp-Method") == "":
		return true, http.StatusBadRequest, rpcError(codeHeaderMismatch, "missing required Mcp-Method header", nil)
	case r.Header.Get("Mcp-Method") != req.Method:
		return true, http.StatusBadRequest, rpcError(codeHeaderMismatch,
			fmt.Sprintf("header mismatch: Mcp-Method header value %q does not match body value %q", r.Header.Get("Mcp-Method"), req.Method), nil)
	case metaVersion == "":
		return true, http.StatusBadRequest, rpcError(codeInvalidParams, fmt.Sprintf("missing or invalid _meta field %q", mcp.MetaKeyProtocolVersion), nil)
	case header != metaVersion:
		return true, http.StatusBadRequest, rpcError(codeHeaderMismatch,
			fmt.Sprintf("Mcp-Protocol-Version header %q does not match request %s %q", header, mcp.MetaKeyProtocolVersion, metaVersion), nil)
	case !slices.Contains(mcp.SupportedProtocolVersions(), metaVersion):
		return true, http.StatusBadRequest, rpcError(codeUnsupportedVer, "unsupported protocol version",
			mcp.UnsupportedProtocolVersionData{Supported: mcp.SupportedProtocolVersions(), Requested: metaVersion})
	}
	if _, ok := p.Meta[mcp.MetaKeyClientCapabilities].(map[string]any); !ok {
		return true, http.StatusBadRequest, rpcError(codeInvalidParams, fmt.Sprintf("missing or invalid _meta field %q", mcp.MetaKeyClientCapabilities), nil)
	}
	return true, 0, nil
}

// writeRPCError answers a request with a JSON-RPC error as plain JSON.
func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, rerr *jsonrpc.Error) {
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rpcResponse{JSONRPC: "2.0", ID: idOrNull(id), Error: rerr})
}

// asRPCError is err as a JSON-RPC error: the extension's own errors as
// they are, anything else (a store failure) as an internal error that
// does not leak its text.
func asRPCError(err error) *jsonrpc.Error {
	if rerr, ok := errors.AsType[*jsonrpc.Error](err); ok {
		return rerr
	}
	return rpcError(jsonrpc.CodeInternalError, "Internal error", nil)
}

// rpcResponse and rpcNotification are the JSON-RPC messages Handler writes.
type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *jsonrpc.Error  `json:"error,omitempty"`
}

type rpcNotification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}

func idOrNull(id json.RawMessage) json.RawMessage {
	if len(id) == 0 {
		return json.RawMessage("null")
	}
	return id
}

// sseFrame is one Server-Sent Event carrying a JSON-RPC message, in one
// Write as the SDK writes its own, so frames never interleave.
func sseFrame(msg any) ([]byte, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", msg, err)
	}
	frame := make([]byte, 0, len(data)+24)
	frame = append(frame, "event: message\ndata: "...)
	frame = append(frame, data...)
	return append(frame, "\n\n"...), nil
}
