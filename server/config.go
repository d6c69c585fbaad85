package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hookgate/hookgate/subscribe"
)

// Config is everything `hookgate serve` is told. The binary fills it from
// flags and HOOKGATE_* variables; tests fill it directly.
type Config struct {
	Addr            string        // listen address
	PublicURL       string        // base URL providers and agents reach; "" derives it from the listener
	DataDir         string        // embedded store directory
	Redis           string        // Redis URL; "" uses the embedded store
	Lease           time.Duration // polling lease
	MaxBody         int64         // webhook body limit in bytes
	Tolerance       time.Duration // signature timestamp window
	NoAuth          bool          // every request is principal "local"; loopback only
	DevToken        bool          // create and print a development token at start
	LogFormat       string        // text or json
	LogLevel        string        // debug, info, warn, error
	ShutdownTimeout time.Duration // how long in-flight requests get on SIGTERM
	CompactEvery    time.Duration // how often expired events are deleted
	SessionIdle     time.Duration // legacy MCP sessions with no GET stream and no request this long are closed
	Metrics         bool          // export Prometheus metrics
	MetricsAddr     string        // serve /metrics on this separate listener instead of the main one

	// MCP Events extension.
	Events                    bool          // serve the extension (events/* on /mcp, webhook subscriptions)
	EventsProfile             string        // chatgpt or sep: error codes and behaviours where the texts differ
	EventsAllowLocalCallbacks bool          // accept http:// and loopback webhook callback URLs (tests, local use)
	EventsRetryDelay          time.Duration // first retry of a failed webhook delivery; later ones wait 5x longer
	EventsClaimTTL            time.Duration // how long a replica's claim on delivering a webhook subscription lasts unrenewed; 0 means 15s

	// RedisWaitReplicas, if positive, makes each write to Redis wait until
	// that many Redis replicas acknowledge it (WAIT) before hookgate
	// answers 2xx.
	RedisWaitReplicas int
	// RedisWakeRecheck is how often every subscriber re-reads its cursor
	// even without a wake-up from another replica; 0 means 5s.
	RedisWakeRecheck time.Duration
}

// DefaultConfig returns the configuration of a bare `hookgate serve`.
func DefaultConfig() Config {
	return Config{
		Addr:            ":8080",
		DataDir:         "./hookgate-data",
		Lease:           5 * time.Minute,
		MaxBody:         1 << 20,
		Tolerance:       5 * time.Minute,
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: 30 * time.Second,
		CompactEvery:    10 * time.Minute,
		SessionIdle:     time.Hour,
		Metrics:         true,

		Events:           true,
		EventsProfile:    "chatgpt",
		EventsRetryDelay: time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if c.NoAuth {
		host, _, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return fmt.Errorf("--addr %q: %w", c.Addr, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--no-auth needs a loopback --addr such as 127.0.0.1:8080, not %q: anyone who can reach it would read every event", c.Addr)
		}
	}
	if c.Lease <= 0 || c.Tolerance <= 0 || c.MaxBody <= 0 || c.SessionIdle <= 0 {
		return errors.New("--lease, --tolerance, --max-body and --session-idle must be positive")
	}
	if _, err := subscribe.ParseEventsProfile(c.EventsProfile); err != nil {
		return fmt.Errorf("--events-profile: %w", err)
	}
	if c.RedisWaitReplicas < 0 {
		return errors.New("--redis-wait-replicas must not be negative")
	}
	if c.EventsRetryDelay <= 0 {
		return errors.New("--events-retry-delay must be positive")
	}
	if c.EventsClaimTTL < 0 {
		return errors.New("--events-claim-ttl must not be negative")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	return nil
}

// ServeFlags defines serve's flags on fs, writing into c.
func ServeFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "base URL providers and agents use to reach this server (default: derived from --addr)")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "directory of the embedded store")
	fs.StringVar(&c.Redis, "redis", c.Redis, "Redis URL (use Redis instead of the embedded store)")
	fs.IntVar(&c.RedisWaitReplicas, "redis-wait-replicas", c.RedisWaitReplicas, "with --redis: answer a webhook 2xx only once this many Redis replicas have it (WAIT); 0 trusts the primary alone")
	fs.DurationVar(&c.RedisWakeRecheck, "redis-wake-recheck", c.RedisWakeRecheck, "with --redis: how often subscribers re-read the log without a wake-up, in case one from another replica was lost (default 5s)")
	fs.DurationVar(&c.Lease, "lease", c.Lease, "how long a polled event stays leased before it is handed out again")
	fs.Var((*ByteSize)(&c.MaxBody), "max-body", "largest webhook body accepted (e.g. 1MiB, 512KiB)")
	fs.DurationVar(&c.Tolerance, "tolerance", c.Tolerance, "accepted clock difference for signed timestamps")
	fs.BoolVar(&c.NoAuth, "no-auth", c.NoAuth, "no bearer tokens: every request is principal \"local\" (loopback --addr only)")
	fs.BoolVar(&c.DevToken, "dev-token", c.DevToken, "create and print a development token at start")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "time in-flight requests get to finish on SIGTERM")
	fs.DurationVar(&c.CompactEvery, "compact-every", c.CompactEvery, "how often events past their retention are deleted")
	fs.BoolVar(&c.Metrics, "metrics", c.Metrics, "export Prometheus metrics at /metrics (--metrics=false turns them off)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve /metrics on this address instead of --addr, to keep it private")
	fs.DurationVar(&c.SessionIdle, "session-idle", c.SessionIdle, "close a legacy MCP session that holds no stream and sends nothing for this long")
	fs.BoolVar(&c.Events, "events", c.Events, "serve the MCP Events extension (events/* on /mcp and signed webhook subscriptions); --events=false turns it off: no capability is declared and events/* answer -32601")
	fs.StringVar(&c.EventsProfile, "events-profile", c.EventsProfile, "MCP Events profile: chatgpt (sketch error codes, idempotent unsubscribe) or sep (SEP-3415 codes and behaviour)")
	fs.BoolVar(&c.EventsAllowLocalCallbacks, "events-allow-local-callbacks", c.EventsAllowLocalCallbacks, "accept http:// and loopback MCP Events webhook callback URLs (tests and local use only)")
	fs.DurationVar(&c.EventsRetryDelay, "events-retry-delay", c.EventsRetryDelay, "wait before the first retry of a failed MCP Events webhook delivery; each later retry waits 5x longer, 6 attempts in all")
	fs.DurationVar(&c.EventsClaimTTL, "events-claim-ttl", c.EventsClaimTTL, "with several replicas: how long one replica's claim on delivering an MCP Events webhook subscription lasts unrenewed; another replica takes over a dead one's within about 4/3 of it (default 15s)")
}

// ParseFlags parses args into fs, then fills each flag not given on the
// command line from HOOKGATE_<FLAG> (upper case, '-' as '_') through getenv.
// Command-line flags win over the environment, which wins over defaults.
func ParseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := EnvName(f.Name)
		if v := getenv(name); v != "" {
			if setErr := fs.Set(f.Name, v); setErr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, setErr)
			}
		}
	})
	return err
}

// EnvName is the environment variable of a flag.
func EnvName(flagName string) string {
	return "HOOKGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// UsageWithEnv prints fs's defaults followed by a note on HOOKGATE_* variables.
func UsageWithEnv(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "usage: %s\n\nflags:\n", synopsis)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nEvery flag can also be set as HOOKGATE_<FLAG>, e.g. %s; a flag given on the command line wins.\n", EnvName(exampleFlag(fs)))
}

// exampleFlag picks one of fs's own flags to show as an environment
// variable: a familiar one if fs has it, else the first.
func exampleFlag(fs *flag.FlagSet) string {
	for _, name := range []string{"max-body", "data", "server"} {
		if fs.Lookup(name) != nil {
			return name
		}
	}
	first := "flag"
	fs.VisitAll(func(f *flag.Flag) {
		if first == "flag" {
			first = f.Name
		}
	})
	return first
}

// ByteSize is a flag value for sizes such as 1MiB, 512KiB, 2MB or 1048576.
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1},
}

// String formats the size in bytes.
func (s *ByteSize) String() string { return strconv.FormatInt(int64(*s), 10) }

// Set parses a size with an optional unit.
func (s *ByteSize) Set(text string) error {
	lower := strings.ToLower(strings.TrimSpace(text))
	factor := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			lower, factor = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("size %q: want a positive number with an optional unit (KiB, MiB, GiB, KB, MB)", text)
	}
	*s = ByteSize(n * factor)
	return nil
}
