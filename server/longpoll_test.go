package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestLongPollEndsOnShutdown: a poll_events long poll in flight when the
// server is told to stop answers at once with what is pending (nothing),
// in both protocol eras, and the server exits cleanly within a shutdown
// timeout far shorter than the poll's wait. Before, the poll held the
// shutdown until its wait ran out or the timeout cut it.
func TestLongPollEndsOnShutdown(t *testing.T) {
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, t.TempDir(), "--dev-token", "--shutdown-timeout", "5s")
			cs := connect(t, g.url, g.token, version)
			mustTool(t, cs, "register_webhook", map[string]any{"label": "lp"})

			before := leaseCalls(t, g.url)
			type answer struct {
				res *mcp.CallToolResult
				err error
			}
			answered := make(chan answer, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
				defer cancel()
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "poll_events", Arguments: map[string]any{"label": "lp", "wait_seconds": 30}})
				answered <- answer{res, err}
			}()
			// The poll has reached the store (and found nothing) once the
			// lease counter moves; from then on it waits.
			deadline := time.Now().Add(20 * time.Second)
			for leaseCalls(t, g.url) == before {
				if time.Now().After(deadline) {
					t.Fatal("the long poll never reached the store")
				}
				time.Sleep(10 * time.Millisecond)
			}

			g.stop() // fails the test unless hookgate exits 0 within 30 s
			select {
			case a := <-answered:
				if a.err != nil {
					t.Fatalf("poll_events during shutdown: %v", a.err)
				}
				if a.res.IsError {
					t.Fatalf("poll_events during shutdown is a tool error: %v", a.res.Content)
				}
				events, _ := a.res.StructuredContent.(map[string]any)["events"].([]any)
				if len(events) != 0 {
					t.Fatalf("poll_events during shutdown returned %d events, want none", len(events))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("poll_events did not answer after the server exited")
			}
		})
	}
}

// leaseCalls reads how many store lease operations the server has done, from
// /metrics.
func leaseCalls(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, `hookgate_store_operation_seconds_count{op="lease",result="ok"} `); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return 0
}

// TestLongPollEndsWhenA2026ClientLeaves: a 2026-07-28 client has no session
// to come back to, so when it drops a poll_events long poll the poll ends
// with it. Before, the poll kept waiting and leased the next event to
// nobody, holding it until the lease ran out (an hour here).
func TestLongPollEndsWhenA2026ClientLeaves(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--dev-token", "--lease", "1h", "--log-level", "debug")
	cs := connect(t, g.url, g.token, "2026-07-28")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "gone"}).Structured

	ctx, cancel := context.WithCancel(context.Background())
	body, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{
			"name":      "poll_events",
			"arguments": map[string]any{"label": "gone", "wait_seconds": 30},
			"_meta": map[string]any{
				"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
				"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "raw", "version": "1"},
				"io.modelcontextprotocol/clientCapabilities": map[string]any{},
			},
		},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/mcp", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "poll_events")
	before := leaseCalls(t, g.url)
	polled := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		polled <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for leaseCalls(t, g.url) == before {
		if time.Now().After(deadline) {
			t.Fatal("the long poll never reached the store")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel() // the client goes away
	<-polled
	for !strings.Contains(g.stderr.String(), "long poll ended: the caller went away") {
		if time.Now().After(deadline) {
			t.Fatalf("the long poll did not end with its client; stderr:\n%s", g.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The next event goes to whoever polls next, not to the departed client.
	payload := []byte(`{"id":"after-leave","type":"t"}`)
	if status, _ := post(t, reg["url"].(string), http.Header{"X-Webhook-Signature": {signGeneric(reg["secret"].(string), payload)}}, payload); status != http.StatusOK {
		t.Fatalf("POST: %d", status)
	}
	got, _ := mustTool(t, cs, "poll_events", map[string]any{"label": "gone", "wait_seconds": 10}).Structured["events"].([]any)
	if len(got) != 1 {
		t.Fatalf("poll after the client left got %d events, want the 1 posted", len(got))
	}
}
