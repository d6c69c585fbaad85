// Command poll is a minimal hookgate agent: it takes events with the MCP
// tools (poll_events, then ack_event once handle has returned nil) and
// keeps its progress in a checkpoint file, so a restarted agent skips what
// it already did. examples/push is the same program receiving events by
// push: only the driver's constructor differs.
//
//	HOOKGATE_SERVER=http://127.0.0.1:8080 HOOKGATE_TOKEN=hg_... go run ./clients/examples/poll
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
	driver := clients.NewToolPoller(cfg)
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
