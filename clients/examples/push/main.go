// Command push is examples/poll receiving its events by push: an MCP
// 2026-07-28 subscriptions/listen stream (clients.NewListener), which
// listens again and catches up from its cursor whenever the stream is cut.
// The handler, the checkpoint and everything else are those of
// examples/poll; only the driver's constructor differs.
//
//	HOOKGATE_SERVER=http://127.0.0.1:8080 HOOKGATE_TOKEN=hg_... go run ./clients/examples/push
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/hookgate/hookgate/clients"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := clients.Config{
		Server:     getenv("HOOKGATE_SERVER", "http://127.0.0.1:8080"),
		Token:      os.Getenv("HOOKGATE_TOKEN"),
		Label:      os.Getenv("HOOKGATE_LABEL"), // "" takes every webhook's events
		Checkpoint: clients.FileCheckpoint(getenv("AGENT_CHECKPOINT", "agent.checkpoint.json")),
	}
	driver := clients.NewListener(cfg)
	if err := driver.Run(ctx, handle); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// handle is the agent's work for one event. Return nil only once the work
// is done for good; an error has it retried with backoff. It may run twice
// for one event after a crash, so make its effects idempotent on e.ID.
func handle(ctx context.Context, e clients.Event) error {
	fmt.Printf("%s %s %s %s\n", e.ID, e.Label, e.Type, e.Payload)
	return nil
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
