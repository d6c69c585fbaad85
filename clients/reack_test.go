package clients_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/clients"
)

// TestRestartAcksWhatTheCheckpointHolds: a run that died after saving its
// checkpoint but before acking left the event pending on the server. A push
// driver resumes after the checkpoint, so it never sees that event again;
// the next run acks the checkpoint's recent events once more at its start,
// without running the handler on them. The checkpoint also lists an event
// the server no longer has (1-1: compacted, say), which fails hookgate's
// batch ack as a whole: the real event must be acked all the same.
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
			// The checkpoint of the run that died: the event completed, not
			// acked, after one the server has dropped since.
			cp := &clients.MemoryCheckpoint{}
			if err := cp.Save(context.Background(), clients.Progress{Last: id, Recent: []string{"1-1", id}}); err != nil {
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

// TestWebSocketAckRefusalIsSeen: the WebSocket driver waits for the
// server's answer to each ack, so an ack the server refuses is seen as
// refused (and the refused ID dropped) rather than taken for done as soon
// as it was written.
func TestWebSocketAckRefusalIsSeen(t *testing.T) {
	g := startHookgate(t)
	label := "wsack"
	g.register(t, label)
	cp := &clients.MemoryCheckpoint{}
	// 1-1 is well formed but not an event of this principal's: the server refuses the ack.
	if err := cp.Save(context.Background(), clients.Progress{Last: "1-1", Recent: []string{"1-1"}}); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- clients.NewWebSocket(clients.Config{Server: g.url, Token: g.token, Label: label, Checkpoint: cp, Logger: logger}).
			Run(ctx, func(context.Context, clients.Event) error { return nil })
	}()
	waitUntil(t, 30*time.Second, "the refused re-ack dropped", func() bool {
		return strings.Contains(logs.String(), "dropping")
	})
	cancel()
	<-done
	if out := logs.String(); !strings.Contains(out, "ack on websocket refused") || !strings.Contains(out, "1-1") {
		t.Fatalf("the refusal is not what the log reports:\n%s", out)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger and a test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
