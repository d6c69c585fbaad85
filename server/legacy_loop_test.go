package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// legacyEvents is how many events the legacy-loop tests ingest: two full
// batches of check_pending_events (10 each) and a partial one.
const legacyEvents = 25

// ingestLegacy registers a generic webhook and POSTs legacyEvents signed
// events to it, returning their IDs in the order ingress answered.
func ingestLegacy(t *testing.T, cs *mcp.ClientSession, label string) []string {
	t.Helper()
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": label}).Structured
	url, _ := reg["url"].(string)
	secret, _ := reg["secret"].(string)
	if url == "" || secret == "" {
		t.Fatalf("register_webhook = %v, want url and secret", reg)
	}
	ids := make([]string, 0, legacyEvents)
	for i := range legacyEvents {
		body := []byte(fmt.Sprintf(`{"id":"legacy-%02d","type":"legacy.item"}`, i))
		status, resp := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(secret, body)}, "Content-Type": {"application/json"}}, body)
		id, _ := resp["id"].(string)
		if status != http.StatusOK || id == "" {
			t.Fatalf("POST event %d: %d %v", i, status, resp)
		}
		ids = append(ids, id)
	}
	return ids
}

// checkPending calls check_pending_events and decodes its result, requiring
// the structured remaining to agree with the text's.
func checkPending(t *testing.T, cs *mcp.ClientSession) eventBatch {
	t.Helper()
	r := mustTool(t, cs, "check_pending_events", nil)
	b := decodeBatch(t, r.Text)
	if rem := r.Structured["remaining"]; rem != float64(b.Remaining) {
		t.Fatalf("structured remaining = %v, text remaining = %d", rem, b.Remaining)
	}
	return b
}

// legacyLoop is the loop agents written for the legacy pattern run: call
// check_pending_events, ack each returned event if ack is set, and call
// again while remaining > 0. It gives up after maxCalls, so a remaining
// that never reaches 0 fails the test instead of spinning. It returns the
// events received and the remaining of each call.
func legacyLoop(t *testing.T, cs *mcp.ClientSession, ack bool, maxCalls int) (got []testEvent, remaining []int) {
	t.Helper()
	for range maxCalls {
		b := checkPending(t, cs)
		remaining = append(remaining, b.Remaining)
		for _, e := range b.Events {
			got = append(got, e)
			if ack {
				mustTool(t, cs, "ack_event", map[string]any{"event_id": e.ID})
			}
		}
		if b.Remaining <= 0 {
			return got, remaining
		}
	}
	t.Fatalf("legacy loop still had remaining > 0 after %d calls (remaining per call %v)", maxCalls, remaining)
	return nil, nil
}

// TestLegacyLoop: the legacy loop stops after exactly three calls with all
// 25 events, oldest first, whether it acks what it gets or not. A loop that
// does not ack sees remaining reach 0 once it holds every event: the
// events leased to it are not counted, since no call could return them
// before their lease ends (the default 5 minutes here).
func TestLegacyLoop(t *testing.T) {
	for _, tc := range []struct {
		name string
		ack  bool
	}{{"acks", true}, {"without ack", false}} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, t.TempDir())
			cs := connect(t, g.url, g.token, "2025-11-25")
			posted := ingestLegacy(t, cs, "legacy")

			got, remaining := legacyLoop(t, cs, tc.ack, 10)
			if want := []int{15, 5, 0}; !slices.Equal(remaining, want) {
				t.Errorf("remaining per call = %v, want %v (three calls)", remaining, want)
			}
			if ids := eventIDs(got); !slices.Equal(ids, posted) {
				t.Fatalf("legacy loop received %v, want the %d posted events in order %v", ids, len(posted), posted)
			}
			// The call the issue reported: nothing to hand out, and
			// remaining says so instead of counting leased events.
			if b := checkPending(t, cs); len(b.Events) != 0 || b.Remaining != 0 {
				t.Fatalf("a call after the loop = %+v, want no events and remaining 0", b)
			}
		})
	}
}

// TestLegacyLoopLeaseRunsOut: with --lease 1s, a loop that does not ack
// stops within three calls, and the events come back (deliveryCount 2)
// once their leases run out, counted in remaining again.
func TestLegacyLoopLeaseRunsOut(t *testing.T) {
	const lease = time.Second
	g := startGateway(t, t.TempDir(), "--lease", lease.String())
	cs := connect(t, g.url, g.token, "2025-11-25")
	posted := ingestLegacy(t, cs, "legacy-lease")

	start := time.Now()
	got, remaining := legacyLoop(t, cs, false, 10)
	if elapsed := time.Since(start); elapsed < lease {
		// Only while no lease has run out is the count exact.
		if len(remaining) > 3 || remaining[len(remaining)-1] != 0 {
			t.Errorf("remaining per call = %v, want at most three calls ending at 0", remaining)
		}
		if ids := eventIDs(got); !slices.Equal(ids, posted) {
			t.Fatalf("legacy loop received %v, want the %d posted events in order %v", ids, len(posted), posted)
		}
	} else {
		t.Logf("the loop took %v, longer than the lease: not checking its call count", elapsed)
	}

	// The leases run out: poll with the same loop, acking this time, until
	// every event has come back.
	back := make(map[string]int)
	deadline := time.Now().Add(20 * time.Second)
	for len(back) < len(posted) && time.Now().Before(deadline) {
		events, _ := legacyLoop(t, cs, true, 10)
		for _, e := range events {
			back[e.ID] = e.DeliveryCount
		}
		if len(events) == 0 {
			time.Sleep(50 * time.Millisecond) // polling against the deadline
		}
	}
	for _, id := range posted {
		n, ok := back[id]
		if !ok {
			t.Errorf("event %s did not come back within 20s of its lease running out", id)
		} else if n < 2 {
			t.Errorf("event %s came back with deliveryCount %d, want at least 2", id, n)
		}
	}
	if b := checkPending(t, cs); len(b.Events) != 0 || b.Remaining != 0 {
		t.Fatalf("after acking every event: %+v, want nothing", b)
	}
}

// TestLegacyLoopTypeScriptClient runs the same loops with the official
// TypeScript MCP SDK client as the agent (testdata/tsclient, installed by
// `make deps`): acking or not, it stops after three calls with all 25
// events, oldest first.
func TestLegacyLoopTypeScriptClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the TypeScript client test needs Node.js on PATH (`make deps` installs it): %v", err)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "tsclient"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		t.Fatalf("the TypeScript MCP SDK is not installed in %s: run `make deps` (npm ci there): %v", dir, err)
	}
	for _, mode := range []string{"ack", "noack"} {
		t.Run(mode, func(t *testing.T) {
			g := startGateway(t, t.TempDir())
			posted := ingestLegacy(t, connect(t, g.url, g.token, ""), "legacy-ts")
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "legacy_loop.mjs"), g.url+"/mcp", g.token, mode)
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node legacy_loop.mjs %s: %v\n%s", mode, err, stderr.String())
			}
			var run struct {
				Remaining []int    `json:"remaining"`
				IDs       []string `json:"ids"`
			}
			if err := json.Unmarshal(out, &run); err != nil {
				t.Fatalf("decode %q: %v", out, err)
			}
			if want := []int{15, 5, 0}; !slices.Equal(run.Remaining, want) {
				t.Errorf("remaining per call = %v, want %v (three calls)", run.Remaining, want)
			}
			if !slices.Equal(run.IDs, posted) {
				t.Fatalf("the TypeScript agent received %v, want the %d posted events in order %v", run.IDs, len(posted), posted)
			}
		})
	}
}
