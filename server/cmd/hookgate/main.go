// Command hookgate is the webhook gateway for AI agents: providers POST
// webhooks to it, and agents take the verified events over MCP (tools,
// resource subscriptions), SSE or WebSocket.
//
// Usage:
//
//	hookgate serve [flags]             run the gateway
//	hookgate token create --name NAME  print a new bearer token for principal NAME
//	hookgate tail --server URL --token T [--label L] [--after ID]
//	                                   print events as they arrive, one JSON line each
//	hookgate replay --server URL --token T [--since ID] [--until ID] [--to URL --secret S | --requeue]
//	                                   replay a stretch of the log (see hookgate replay -h)
//	hookgate version                   print the version (also --version)
//
// Run `hookgate <command> -h` for a command's flags. Every flag can also be
// set as HOOKGATE_<FLAG>.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hookgate/hookgate/clients"
	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/server"
)

const usage = `hookgate: a webhook gateway for AI agents.

usage:
  hookgate serve [flags]               run the gateway (see hookgate serve -h)
  hookgate token create --name NAME [--data DIR | --redis URL]
                                       print a new bearer token for principal NAME
  hookgate tail --server URL --token T [--label L] [--after ID]
                                       print each event as it arrives, one JSON object
                                       per line (NDJSON) on stdout; Ctrl-C stops
  hookgate replay --server URL --token T [--label L] [--type T] [--since ID] [--until ID]
                  [--to URL --secret whsec_… | --requeue] [--dry-run]
                                       replay stored events: NDJSON on stdout, signed POSTs
                                       to a URL, or pending again for pollers
  hookgate version                     print the version (also --version)

Every flag can also be set as HOOKGATE_<FLAG>, e.g. HOOKGATE_DATA=/var/lib/hookgate.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "hookgate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr, getenv)
	case "token":
		if len(args) < 2 || args[1] != "create" {
			return errors.New("usage: hookgate token create --name NAME [--data DIR]")
		}
		return tokenCreate(ctx, args[2:], stdout, stderr, getenv)
	case "tail":
		return tail(ctx, args[1:], stdout, stderr, getenv)
	case "replay":
		return replay(ctx, args[1:], stdout, stderr, getenv)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "hookgate %s\n", server.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	server.ServeFlags(fs, &cfg)
	fs.Usage = func() { server.UsageWithEnv(stderr, fs, "hookgate serve [flags]") }
	if err := server.ParseFlags(fs, args, getenv); err != nil {
		return err
	}
	logger, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	// go-redis reports dial failures through a process-wide logger of its
	// own; route them into ours, where an outage is already a warning from
	// the store's callers.
	goredis.SetLogger(redisLogger{logger})
	return server.Run(ctx, cfg, stdout, logger)
}

func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg := server.DefaultConfig()
	var name string
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.StringVar(&name, "name", "", "principal the token acts as (required); tokens with the same name share registrations and events")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "directory of the embedded store")
	fs.StringVar(&cfg.Redis, "redis", cfg.Redis, "Redis URL")
	fs.Usage = func() {
		server.UsageWithEnv(stderr, fs, "hookgate token create --name NAME [--data DIR | --redis URL]")
	}
	if err := server.ParseFlags(fs, args, getenv); err != nil {
		return err
	}
	if name == "" {
		fs.Usage()
		return errors.New("--name is required")
	}
	if err := checkDefaultStore(fs, cfg, getenv); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "using store %s\n", server.StoreLocation(cfg))
	st, _, err := server.OpenStore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	token, err := server.CreateToken(ctx, st, name, time.Now())
	if closeErr := st.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("close store: %w", closeErr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// checkDefaultStore refuses to create a new embedded store where no one
// asked for one: with neither --data nor HOOKGATE_DATA given, a mistyped
// working directory would otherwise get a fresh empty store, and a token in
// it that the running server never sees. An explicit --data (or --redis)
// is taken at its word.
func checkDefaultStore(fs *flag.FlagSet, cfg server.Config, getenv func(string) string) error {
	if cfg.Redis != "" || getenv(server.EnvName("data")) != "" {
		return nil
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "data" })
	if given {
		return nil
	}
	path := server.StorePath(cfg.DataDir)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no store at %s (the default --data %s); run this where `hookgate serve` keeps its store, or name one with --data DIR (or %s; a new store is created there) or --redis URL", path, cfg.DataDir, server.EnvName("data"))
	}
	return nil
}

func tail(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var opts clients.SSEOptions
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.StringVar(&opts.Server, "server", "", "hookgate base URL, e.g. http://127.0.0.1:8080 (required)")
	fs.StringVar(&opts.Token, "token", "", "bearer token (not needed for a --no-auth server)")
	fs.StringVar(&opts.Label, "label", "", "print only this webhook's events")
	fs.StringVar(&opts.After, "after", "", "start after this event ID; 0-0 starts from the oldest retained event (default: from now)")
	fs.Usage = func() {
		server.UsageWithEnv(stderr, fs, "hookgate tail --server URL --token T [--label L] [--after ID]")
	}
	if err := server.ParseFlags(fs, args, getenv); err != nil {
		return err
	}
	if opts.Server == "" {
		fs.Usage()
		return errors.New("--server is required")
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	err := clients.StreamSSE(ctx, opts, func(e clients.Event) error {
		_, err := stdout.Write(append(e.Raw, '\n'))
		return err
	})
	if ctx.Err() != nil {
		return nil // Ctrl-C or SIGTERM: the way to stop tailing
	}
	return err
}

const replaySynopsis = `hookgate replay --server URL --token T [--label L] [--type T] [--since ID] [--until ID]
                [--to URL --secret whsec_… | --requeue] [--dry-run]

Reads the principal's whole log (acked and dead-lettered events too) from --since
(exclusive) to --until (inclusive) and, by default, prints each event as one JSON line
(NDJSON) on stdout. --to POSTs each event to URL signed per Standard Webhooks with
--secret (webhook-id = the event ID, so the receiver can deduplicate a replay run
twice), retrying failures with backoff; on a failure it cannot get past it stops, exits
non-zero and prints "resume with --since <ID>" on stderr. --requeue makes the events
pending again for pollers. --dry-run only counts. Progress goes to stderr.

examples:
  hookgate replay --server http://127.0.0.1:8080 --token $T --since 0-0 > all.ndjson
  hookgate replay --server $S --token $T --label stripe --since 1764050400123-0 \
      --to https://agent.example.com/hook --secret whsec_...
  hookgate replay --server $S --token $T --type 'invoice.*' --since 0-0 --requeue`

// replay runs clients.Replay from the command line.
func replay(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	opts := clients.ReplayOptions{Out: stdout, Progress: stderr}
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.StringVar(&opts.Log.Server, "server", "", "hookgate base URL, e.g. http://127.0.0.1:8080 (required)")
	fs.StringVar(&opts.Log.Token, "token", "", "bearer token (not needed for a --no-auth server)")
	fs.StringVar(&opts.Log.Label, "label", "", "only this webhook's events")
	fs.StringVar(&opts.Log.Type, "type", "", "only this provider event type; a trailing * matches a prefix (invoice.*)")
	fs.StringVar(&opts.Log.Since, "since", "0-0", "start after this event ID (exclusive); 0-0 is the beginning")
	fs.StringVar(&opts.Log.Until, "until", "", "stop at this event ID (inclusive); default: the newest event")
	fs.StringVar(&opts.To, "to", "", "POST each event to this URL, signed per Standard Webhooks, instead of printing it")
	fs.StringVar(&opts.Secret, "secret", "", "signing secret for --to (whsec_… as Standard Webhooks issues them)")
	fs.BoolVar(&opts.Requeue, "requeue", false, "make the events pending again, so pollers lease them afresh")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "only count the events that would be replayed")
	fs.Usage = func() { server.UsageWithEnv(stderr, fs, replaySynopsis) }
	if err := server.ParseFlags(fs, args, getenv); err != nil {
		return err
	}
	if opts.Log.Server == "" {
		fs.Usage()
		return errors.New("--server is required")
	}
	if opts.To != "" && opts.Secret == "" {
		return errors.New("--to needs --secret")
	}
	if opts.To != "" && opts.Requeue {
		return errors.New("give --to or --requeue, not both")
	}
	if opts.DryRun {
		opts.Out = io.Discard
	}
	_, err := clients.Replay(ctx, opts)
	var stopped *clients.ReplayError
	if errors.As(err, &stopped) {
		// On a line of its own, for scripts to pick up.
		fmt.Fprintf(stderr, "resume with --since %s\n", stopped.Resume)
		return stopped.Err
	}
	return err
}

// redisLogger adapts slog to go-redis's logger.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(server.RequestIDHandler(slog.NewJSONHandler(w, opts))), nil
	}
	return slog.New(server.RequestIDHandler(slog.NewTextHandler(w, opts))), nil
}
