package subscribe

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// EventsOff wraps /mcp for a deployment without the Events extension
// (serve --events=false). The SDK refuses a method it does not know with a
// bare HTTP 400; an events/* request gets instead the answer the
// extension's texts ask of such a deployment: JSON-RPC -32601 (method not
// found), with HTTP 404 on 2026-07-28, so a client can tell "no events
// here" from a malformed request. Everything else passes through.
func EventsOff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		// A 2026-07-28 request names its method in a header; a legacy one
		// only in its body, which is read and put back.
		method, status := r.Header.Get("Mcp-Method"), http.StatusNotFound
		if method == "" {
			status = http.StatusOK
		} else if !strings.HasPrefix(method, "events/") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPeekBody+1))
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err != nil || json.Unmarshal(bytes.TrimSpace(body), &req) != nil || !strings.HasPrefix(req.Method, "events/") {
			next.ServeHTTP(w, r) // not an events/* call (or a batch, or malformed): the SDK answers
			return
		}
		writeRPCError(w, status, req.ID,
			rpcError(jsonrpc.CodeMethodNotFound, req.Method+" is not available: the MCP Events extension is off on this server", nil))
	})
}
