package subscribe_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/hookgate/hookgate/subscribe"
)

// TestEventsSEPProfileErrorCodes: under --events-profile sep the errors a
// client can meet carry SEP-3415's numbers (-32023 NotFound, -32025
// ResourceExhausted, -32027 CallbackEndpointError), with the same names
// and data as the default profile's -3201x. Forbidden (-32024) needs a
// request without a principal, which authentication refuses before the
// extension sees it; Unsupported (-32026) is for schema changes, which
// hookgate's additive-only catalog never makes.
func TestEventsSEPProfileErrorCodes(t *testing.T) {
	env := newEventsEnv(t, func(o *subscribe.EventsOptions) { o.Profile = subscribe.ProfileSEP })
	env.register("alice", "orders")
	rc := newReceiver(t, nil)
	secret := newSecret(32)

	code, data, _ := env.callErr(alice, "events/poll", map[string]any{"name": "nonesuch"})
	if code != -32023 || data["kind"] != "event" {
		t.Errorf("unknown event: %d %v, want -32023 kind event", code, data)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/x"
	l.Close()
	code, data, _ = env.callErr(alice, "events/subscribe", subParams("orders", nil, closed, secret))
	if code != -32027 || data["reason"] != "connection_refused" {
		t.Errorf("callback refused: %d %v, want -32027 connection_refused", code, data)
	}

	for i := range 3 { // MaxSubscriptions in the harness
		env.mustCall(alice, "events/subscribe", subParams("orders", map[string]any{"type": "t" + strconv.Itoa(i)}, rc.url("/q"), secret))
	}
	code, data, _ = env.callErr(alice, "events/subscribe", subParams("orders", nil, rc.url("/q"), secret))
	if code != -32025 || data["limit"] != "subscriptions" || data["max"] != float64(3) {
		t.Errorf("over quota: %d %v, want -32025 limit subscriptions max 3", code, data)
	}
}
