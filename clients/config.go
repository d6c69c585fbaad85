package clients

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config says where a driver takes events from and how it runs the
// handler. Every driver takes the same Config, so a program moves from one
// delivery path to another by changing only the constructor it calls.
type Config struct {
	// Server is hookgate's base URL, such as "https://hooks.example.com".
	Server string
	// Endpoint is the MCP endpoint of the MCP drivers; "" means Server +
	// "/mcp". Set it, without Server, to poll another MCP server that
	// offers the three-tool pattern.
	Endpoint string
	// Token is the bearer token; "" sends none (a --no-auth server).
	Token string
	// Label, when set, takes only that webhook's events. The MCP Events
	// drivers need it: it is the event name.
	Label string

	// Checkpoint records what the handler completed, so that a restarted
	// program skips it (FileCheckpoint, or your own store); nil keeps it
	// in memory for one Run only.
	Checkpoint Checkpoint
	// Concurrency is how many handlers may run at once, on events of
	// different labels: the events of one label are handled one at a
	// time, in ID order. <= 0 means 1.
	Concurrency int
	// Buffer is how many events a driver takes ahead of its handlers. The
	// tool poller leases them, so keep it well under what the handlers
	// finish within the lease. <= 0 means 4 × Concurrency, at least 16.
	Buffer int
	// Retry spaces out the attempts at an event whose handler failed;
	// zero fields mean 1 s doubling up to 1 min.
	Retry Backoff
	// MaxAttempts, when > 0, gives up an event after that many failed
	// attempts in one run: its label moves on and the event is never
	// acked. The tool poller's server leases it again after the nack delay
	// until its own attempt limit dead-letters it; the cursor drivers keep
	// their checkpoint below it, so the next run starts there again; and
	// hookgate replay always finds it. 0 retries until the handler
	// succeeds or the run ends.
	MaxAttempts int
	// PollWait is how long one poll_events call of the tool poller waits
	// for an event when none is pending (its wait_seconds); <= 0 means
	// 10 s. A killed poller may leave its last poll waiting on the server,
	// and what that poll leases comes back only when the lease runs out,
	// so a short wait also shortens that.
	PollWait time.Duration
	// Resync is how often a push driver reads what is pending even
	// without a notification, in case one was lost on the way; <= 0
	// means 30 s.
	Resync time.Duration

	// HTTPClient makes the requests; nil means http.DefaultClient. Leave
	// its Timeout zero: it would cut the long-lived streams.
	HTTPClient *http.Client
	// Logger receives connection changes, retries and give-ups; nil
	// discards.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	defaultResync   = 30 * time.Second
	defaultPollWait = 10 * time.Second
	minBuffer       = 16
	bufferPerSlot   = 4
	pageSize        = 100
	reconnectFirst  = 500 * time.Millisecond
	maxReconnect    = 30 * time.Second
)

// withDefaults returns c with its zero fields filled in.
func (c Config) withDefaults() Config {
	c.Concurrency = max(c.Concurrency, 1)
	if c.Buffer <= 0 {
		c.Buffer = max(bufferPerSlot*c.Concurrency, minBuffer)
	}
	if c.PollWait <= 0 {
		c.PollWait = defaultPollWait
	}
	if c.Resync <= 0 {
		c.Resync = defaultResync
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Checkpoint == nil {
		c.Checkpoint = &MemoryCheckpoint{}
	}
	return c
}

// baseURL checks Server and returns it without a trailing slash.
func (c Config) baseURL() (string, error) {
	if c.Server == "" {
		return "", errors.New("clients: Config.Server is required (hookgate's base URL, such as http://127.0.0.1:8080)")
	}
	u, err := url.Parse(c.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("clients: server %q: want a base URL such as https://hooks.example.com", c.Server)
	}
	return strings.TrimRight(c.Server, "/"), nil
}

// mcpEndpoint is the MCP URL: Endpoint, or Server + "/mcp".
func (c Config) mcpEndpoint() (string, error) {
	if c.Endpoint != "" {
		return c.Endpoint, nil
	}
	base, err := c.baseURL()
	if err != nil {
		return "", err
	}
	return base + "/mcp", nil
}

// reconnect spaces out a driver's reconnect attempts after a failure.
func reconnect() Backoff { return Backoff{Initial: reconnectFirst, Max: maxReconnect} }
