package subscribe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// TestPublicAddr classifies address values only: nothing here connects.
func TestPublicAddr(t *testing.T) {
	for _, c := range []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"::ffff:8.8.8.8", true},
		{"64:ff9b::808:808", true},  // NAT64 of 8.8.8.8
		{"2002:808:808::1", true},   // 6to4 of 8.8.8.8
		{"127.0.0.1", false},        // loopback
		{"127.255.255.254", false},  // loopback
		{"::1", false},              // loopback
		{"::ffff:127.0.0.1", false}, // IPv4-mapped loopback
		{"10.1.2.3", false},         // private
		{"172.16.0.1", false},       // private
		{"172.31.255.255", false},   // private
		{"192.168.1.1", false},      // private
		{"fd12:3456::1", false},     // unique local
		{"169.254.169.254", false},  // link-local: cloud metadata
		{"fe80::1", false},          // link-local
		{"fe80::1%eth0", false},     // zoned
		{"100.64.0.1", false},       // CGNAT
		{"0.0.0.0", false},          // unspecified
		{"::", false},               // unspecified
		{"0.1.2.3", false},          // "this network"
		{"192.0.0.8", false},        // IETF protocol assignments
		{"192.0.2.1", false},        // documentation
		{"198.18.0.1", false},       // benchmarking
		{"198.51.100.1", false},     // documentation
		{"203.0.113.1", false},      // documentation
		{"224.0.0.1", false},        // multicast
		{"ff02::1", false},          // multicast
		{"240.0.0.1", false},        // reserved
		{"255.255.255.255", false},  // broadcast
		{"2001:db8::1", false},      // documentation
		{"2001::1", false},          // Teredo
		{"64:ff9b::a00:1", false},   // NAT64 of 10.0.0.1
		{"64:ff9b::7f00:1", false},  // NAT64 of 127.0.0.1
		{"2002:a00:1::1", false},    // 6to4 of 10.0.0.1
		{"64:ff9b:1::1", false},     // local-use NAT64
		{"100::1", false},           // discard
		{"fec0::1", false},          // site-local
		{"3fff::1", false},          // documentation
		{"4000::1", false},          // not global unicast
	} {
		if got := publicAddr(netip.MustParseAddr(c.addr)); got != c.public {
			t.Errorf("publicAddr(%s) = %v, want %v", c.addr, got, c.public)
		}
	}
	if allowedAddr(netip.MustParseAddr("127.0.0.1"), false) || !allowedAddr(netip.MustParseAddr("127.0.0.1"), true) {
		t.Error("loopback must be allowed only with local callbacks")
	}
	if allowedAddr(netip.MustParseAddr("10.0.0.1"), true) || allowedAddr(netip.MustParseAddr("169.254.169.254"), true) {
		t.Error("private addresses must stay refused with local callbacks")
	}
}

func TestCheckCallbackURL(t *testing.T) {
	for _, c := range []struct {
		url        string
		allowLocal bool
		ok         bool
	}{
		{"https://hooks.example.com/mcp", false, true},
		{"https://hooks.example.com:8443/mcp?x=1", false, true},
		{"http://hooks.example.com/mcp", false, false},
		{"http://127.0.0.1:9000/mcp", true, true},
		{"ftp://hooks.example.com/mcp", true, false},
		{"https://user:pass@hooks.example.com/", false, false},
		{"hooks.example.com/mcp", false, false},
		{"/mcp", false, false},
		{"https:///mcp", false, false},
		{"", false, false},
	} {
		if _, err := checkCallbackURL(c.url, c.allowLocal); (err == nil) != c.ok {
			t.Errorf("checkCallbackURL(%q, %v) = %v, want ok %v", c.url, c.allowLocal, err, c.ok)
		}
	}
}

// fixedResolver answers every name with its addresses and counts lookups.
type fixedResolver struct {
	addrs []netip.Addr
	calls int
}

func (r *fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	r.calls++
	return r.addrs, nil
}

// TestDialRefusesBlockedAnswers: the dialer refuses before connecting when
// any answer is not allowed (a rebinding name mixes public and private
// answers), and resolves again for every connection.
func TestDialRefusesBlockedAnswers(t *testing.T) {
	r := &fixedResolver{addrs: []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("10.0.0.1")}}
	c := newCallbackClient(r, loopbackOnly(t), nil, false, 0)
	for range 2 {
		if _, err := c.dial(context.Background(), "tcp", "rebind.example:443"); !errors.Is(err, errBlockedAddress) {
			t.Fatalf("dial = %v, want errBlockedAddress", err)
		}
	}
	if r.calls != 2 {
		t.Errorf("%d lookups for 2 dials, want one each", r.calls)
	}
	if _, err := c.dial(context.Background(), "tcp", "[::1]:443"); !errors.Is(err, errBlockedAddress) {
		t.Errorf("dial to a loopback literal = %v, want errBlockedAddress", err)
	}
}

// loopbackOnly is the callback dialer of every test: it connects to
// loopback addresses only and fails the test on any other, so no test can
// send traffic off the machine even if the address checks regress.
func loopbackOnly(t testing.TB) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(address)
		if a, perr := netip.ParseAddr(host); err != nil || perr != nil || !a.Unmap().IsLoopback() {
			t.Errorf("a test dialled %s: off loopback", address)
			return nil, errors.New("test dialer: off loopback")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
}
