// Command recover is the crash-recovery step of the README: after an
// agent crashed, or lost work it had already completed (a downstream
// database restored from a backup, say), it makes everything after the
// agent's checkpoint pending again, so the agent, restarted, does it over.
// The agent's handler deduplicates on the event ID, so running this twice
// is harmless.
//
//	HOOKGATE_SERVER=http://127.0.0.1:8080 HOOKGATE_TOKEN=hg_... \
//	    go run ./clients/examples/recover --checkpoint agent.checkpoint.json
//
// The same with the command line alone:
//
//	hookgate replay --since "$(jq -r .last agent.checkpoint.json)" --requeue
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/hookgate/hookgate/clients"
)

func main() {
	checkpoint := flag.String("checkpoint", "agent.checkpoint.json", "the agent's checkpoint file")
	label := flag.String("label", os.Getenv("HOOKGATE_LABEL"), "only this webhook's events")
	since := flag.String("since", "", "redo events after this ID instead of after the checkpoint's (0-0: everything retained); the checkpoint then forgets what came after it")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	from := *since
	if from == "" {
		p, err := clients.FileCheckpoint(*checkpoint).Load(ctx)
		if err != nil {
			log.Fatal(err)
		}
		// Last is the newest event such that it and everything before it
		// was completed; a missing checkpoint means nothing was.
		from = p.Last
		if from == "" {
			from = "0-0"
		}
	}
	res, err := clients.Replay(ctx, clients.ReplayOptions{
		Log: clients.LogQuery{
			Server: getenv("HOOKGATE_SERVER", "http://127.0.0.1:8080"),
			Token:  os.Getenv("HOOKGATE_TOKEN"),
			Label:  *label,
			Since:  from,
		},
		Requeue:  true,
		Progress: os.Stderr,
	})
	var stopped *clients.ReplayError
	if errors.As(err, &stopped) {
		log.Fatalf("%v\nrun again with --since %s", stopped.Err, stopped.Resume)
	}
	if err != nil {
		log.Fatal(err)
	}
	if *since != "" {
		// Redoing events the checkpoint lists as done: the agent would
		// skip them (and only ack them again), so it must forget them.
		// Everything up to --since stays done.
		last := *since
		if last == "0-0" {
			last = ""
		}
		if err := clients.FileCheckpoint(*checkpoint).Save(ctx, clients.Progress{Last: last}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("%d events after %s are pending again (%d were done); restart the agent to redo them\n",
		res.Events, from, res.Requeued)
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
