package clients_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hookgate/hookgate/clients"
)

// TestRestartAcksWhatTheCheckpointHolds: a run that died after saving its
// checkpoint but before acking left the event pending on the server. A push
// driver resumes after the checkpoint, so it never sees that event again;
// the next run acks the checkpoint's recent events once more at its start,
// without running the handler on them.
func TestRestartAcksWhatTheCheckpointHolds(t *testing.T) {
	for _, d := range drivers {
		if !d.acks {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			g := startHookgate(t)
			label := "reack"
			url, secret := g.register(t, label)
			id, err := post(url, secret, 1)
			if err != nil {
				t.Fatal(err)
			}
			// The checkpoint of the run that died: the event completed, not acked.
			cp := &clients.MemoryCheckpoint{}
			if err := cp.Save(context.Background(), clients.Progress{Last: id, Recent: []string{id}}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			handled := make(chan string, 10)
			go func() {
				done <- d.new(clients.Config{Server: g.url, Token: g.token, Label: label, Checkpoint: cp, PollWait: time.Second}).
					Run(ctx, func(_ context.Context, e clients.Event) error { handled <- e.ID; return nil })
			}()
			waitUntil(t, 20*time.Second, "the checkpointed event acked on the server", func() bool {
				return pendingOn(t, g, label) == 0
			})
			cancel()
			if err := <-done; err != nil && ctx.Err() == nil {
				t.Fatalf("run: %v", err)
			}
			select {
			case e := <-handled:
				t.Fatalf("handler ran on %s, which the checkpoint lists as done", e)
			default:
			}
		})
	}
}

// pendingOn reads a webhook's pending count from GET /v1/webhooks.
func pendingOn(t *testing.T, g *hookgate, label string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.url+"/v1/webhooks", nil)
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Webhooks []struct {
			Label   string `json:"label"`
			Pending int    `json:"pending"`
		} `json:"webhooks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, w := range out.Webhooks {
		if w.Label == label {
			return w.Pending
		}
	}
	t.Fatalf("no webhook %q", label)
	return 0
}
