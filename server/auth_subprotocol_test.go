package server

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

func TestSplitSubprotocolToken(t *testing.T) {
	for _, tc := range []struct {
		values []string
		rest   []string
		token  string
		found  bool
	}{
		{[]string{"hookgate.bearer, hg_abc"}, []string{"hookgate.bearer"}, "hg_abc", true},
		{[]string{"hookgate.bearer", "hg_abc"}, []string{"hookgate.bearer"}, "hg_abc", true},
		{[]string{"chat, hookgate.bearer, hg_abc, other"}, []string{"chat", "hookgate.bearer", "other"}, "hg_abc", true},
		{[]string{"hookgate.bearer"}, []string{"hookgate.bearer"}, "", true},
		{[]string{"chat, hg_abc"}, []string{"chat", "hg_abc"}, "", false},
		{nil, nil, "", false},
	} {
		rest, token, found := splitSubprotocolToken(tc.values)
		if !reflect.DeepEqual(rest, tc.rest) || token != tc.token || found != tc.found {
			t.Errorf("splitSubprotocolToken(%q) = %q, %q, %v; want %q, %q, %v", tc.values, rest, token, found, tc.rest, tc.token, tc.found)
		}
	}
}

// TestBearerFromSubprotocol: only WebSocket upgrades are rewritten, the
// token leaves the subprotocol header, and a header token wins.
func TestBearerFromSubprotocol(t *testing.T) {
	var seen http.Header
	h := bearerFromSubprotocol(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() }))
	serve := func(header http.Header) http.Header {
		req := httptest.NewRequest(http.MethodGet, "/v1/ws", nil)
		req.Header = header
		h.ServeHTTP(httptest.NewRecorder(), req)
		return seen
	}

	got := serve(http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"hookgate.bearer, hg_abc"}})
	if got.Get("Authorization") != "Bearer hg_abc" || got.Get("Sec-WebSocket-Protocol") != "hookgate.bearer" {
		t.Errorf("upgrade: Authorization %q, Sec-WebSocket-Protocol %q", got.Get("Authorization"), got.Get("Sec-WebSocket-Protocol"))
	}
	got = serve(http.Header{"Upgrade": {"WebSocket"}, "Authorization": {"Bearer hg_header"}, "Sec-Websocket-Protocol": {"hookgate.bearer, hg_abc"}})
	if got.Get("Authorization") != "Bearer hg_header" || got.Get("Sec-WebSocket-Protocol") != "hookgate.bearer" {
		t.Errorf("upgrade with a header token: Authorization %q, Sec-WebSocket-Protocol %q", got.Get("Authorization"), got.Get("Sec-WebSocket-Protocol"))
	}
	got = serve(http.Header{"Sec-Websocket-Protocol": {"hookgate.bearer, hg_abc"}})
	if got.Get("Authorization") != "" {
		t.Errorf("a plain request got Authorization %q from its subprotocol header", got.Get("Authorization"))
	}
}
