package subscribe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Resolver looks up a callback host; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// errBlockedAddress marks a callback host that resolves to an address
// hookgate will not connect to.
var errBlockedAddress = errors.New("callback address is not public")

// blockedPrefixes are the special-purpose ranges of the IANA IPv4 and IPv6
// registries that are not globally reachable, plus multicast: a callback
// to any of them could reach the gateway's own network.
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
		"3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// Prefixes whose addresses embed an IPv4 address that is what is really
// reached: NAT64 (RFC 6052) and 6to4.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	globalV6    = netip.MustParsePrefix("2000::/3")
)

// publicAddr reports whether a is globally reachable: the only addresses
// a callback may connect to unless local callbacks are allowed.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	if a.Is6() {
		switch {
		case nat64Prefix.Contains(a):
			b := a.As16()
			return publicAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixToFour.Contains(a):
			b := a.As16()
			return publicAddr(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		case !globalV6.Contains(a):
			return false
		}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// allowedAddr reports whether a callback may connect to a: a public
// address, or with allowLocal a loopback one.
func allowedAddr(a netip.Addr, allowLocal bool) bool {
	return publicAddr(a) || allowLocal && a.Unmap().IsLoopback()
}

// checkCallbackURL checks a delivery.url's syntax: absolute https (http
// only with local callbacks allowed), a host, no user information.
func checkCallbackURL(raw string, allowLocal bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, errors.New("must be an absolute https URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowLocal {
			return nil, errors.New("must use https")
		}
	default:
		return nil, errors.New("must use https")
	}
	if u.User != nil {
		return nil, errors.New("must not carry user information")
	}
	return u, nil
}

// callbackClient makes every request to a subscriber's callback URL:
// challenges and deliveries alike. Each connection resolves the host, dials
// only an address allowedAddr accepts (checked at every connection, so a
// DNS answer that changes after subscribe cannot redirect a delivery
// inward), keeps the hostname for TLS, uses no proxy from the environment
// and never follows a redirect.
type callbackClient struct {
	http       *http.Client
	resolver   Resolver
	connect    func(ctx context.Context, network, address string) (net.Conn, error)
	allowLocal bool
	timeout    time.Duration
}

func newCallbackClient(resolver Resolver, connect func(context.Context, string, string) (net.Conn, error), tlsConfig *tls.Config, allowLocal bool, timeout time.Duration) *callbackClient {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	if connect == nil {
		connect = (&net.Dialer{}).DialContext
	}
	c := &callbackClient{resolver: resolver, connect: connect, allowLocal: allowLocal, timeout: timeout}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           c.dial,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	c.http = &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c
}

// resolve returns the addresses of host a callback may use, refusing the
// host if any of its addresses is not allowed: a name that answers with
// both public and private addresses is a rebinding attempt.
func (c *callbackClient) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = c.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolve %s: no addresses", host)
		}
	}
	for _, a := range addrs {
		if !allowedAddr(a, c.allowLocal) {
			return nil, fmt.Errorf("%w: %s resolves to %s", errBlockedAddress, host, a)
		}
	}
	return addrs, nil
}

// checkReachable applies the address rules to a URL at subscribe time,
// before any connection. An http URL needs loopback addresses only.
func (c *callbackClient) checkReachable(ctx context.Context, u *url.URL) error {
	addrs, err := c.resolve(ctx, u.Hostname())
	if err != nil {
		return err
	}
	if u.Scheme == "http" {
		for _, a := range addrs {
			if !a.Unmap().IsLoopback() {
				return fmt.Errorf("%w: http is only for loopback callbacks", errBlockedAddress)
			}
		}
	}
	return nil
}

// dial is the transport's DialContext: it connects to a checked address of
// the host, never to the name, so what was checked is what is reached.
func (c *callbackClient) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := c.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var firstErr error
	for _, a := range addrs {
		conn, err := c.connect(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// classify turns a failed callback request into the extension's category.
// Nothing of what the endpoint sent is kept.
func classify(err error) callbackReason {
	var tlsErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	var alert tls.AlertError
	var netErr net.Error
	switch {
	case errors.As(err, &tlsErr), errors.As(err, &recordErr), errors.As(err, &alert),
		strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "x509:"):
		return reasonTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return reasonTimeout
	}
	return reasonConnectionRefused
}
