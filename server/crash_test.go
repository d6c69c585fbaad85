package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashLosesNothingAcknowledged sends 5,000 webhooks concurrently (every
// tenth with a bad signature), kills the server with SIGKILL in the middle,
// restarts it, and checks that every webhook answered 2xx is stored exactly
// once under the ID it was given, and no refused one is stored at all.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	const total, workers, killAfter = 5000, 32, 2000
	dir := t.TempDir()
	g := startGateway(t, dir)
	token := g.token
	cs := connect(t, g.url, token, "2025-11-25")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "crash"}).Structured
	url, secret := reg["url"].(string), reg["secret"].(string)

	type outcome struct {
		status int    // 0: no answer (the server died first)
		id     string // the ID a 2xx named
	}
	outcomes := make([]outcome, total)
	var answered atomic.Int64
	killed := make(chan struct{})
	var killOnce sync.Once
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				body := fmt.Appendf(nil, `{"id":"crash-%d","type":"crash.test","n":%d}`, i, i)
				sig := signGeneric(secret, body)
				if i%10 == 9 {
					sig = signGeneric("not-the-secret", body)
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("X-Webhook-Signature", sig)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				var ok struct {
					ID string `json:"id"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&ok)
				resp.Body.Close()
				outcomes[i] = outcome{status: resp.StatusCode, id: ok.ID}
				if answered.Add(1) == killAfter {
					killOnce.Do(func() { g.kill(); close(killed) })
				}
			}
		})
	}
	for i := range total {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatalf("only %d answers before the end; the kill never happened", answered.Load())
	}

	var accepted, refused, unanswered int
	for _, o := range outcomes {
		switch {
		case o.status == 0:
			unanswered++
		case o.status >= 200 && o.status < 300:
			accepted++
		default:
			refused++
		}
	}
	t.Logf("before the kill: %d accepted, %d refused; %d unanswered", accepted, refused, unanswered)
	if accepted < killAfter*8/10 || refused == 0 {
		t.Fatalf("too few outcomes to prove anything: %d accepted, %d refused", accepted, refused)
	}

	g2 := startGateway(t, dir)
	cs2 := connect(t, g2.url, token, "2025-11-25")
	stored := map[string][]string{} // providerEventId -> stored IDs
	var lastID string
	for {
		var events []testEvent
		r := mustTool(t, cs2, "poll_events", map[string]any{"limit": 1000})
		if err := json.Unmarshal([]byte(r.Text), &events); err != nil {
			t.Fatalf("poll_events: %v", err)
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			if lastID != "" && !idBefore(lastID, e.ID) {
				t.Fatalf("events out of order: %s then %s", lastID, e.ID)
			}
			lastID = e.ID
			stored[e.ProviderEventID] = append(stored[e.ProviderEventID], e.ID)
		}
	}
	for i, o := range outcomes {
		key := fmt.Sprintf("crash-%d", i)
		ids := stored[key]
		switch {
		case o.status >= 200 && o.status < 300:
			if len(ids) != 1 || ids[0] != o.id {
				t.Errorf("%s was answered %d with id %s but is stored as %v", key, o.status, o.id, ids)
			}
		case o.status != 0:
			if len(ids) != 0 {
				t.Errorf("%s was refused with %d but is stored as %v", key, o.status, ids)
			}
		default:
			if len(ids) > 1 {
				t.Errorf("%s (unanswered) is stored %d times", key, len(ids))
			}
		}
	}
}

// idBefore compares two "<ms>-<seq>" IDs numerically.
func idBefore(a, b string) bool {
	var am, as, bm, bs uint64
	fmt.Sscanf(a, "%d-%d", &am, &as)
	fmt.Sscanf(b, "%d-%d", &bm, &bs)
	return am < bm || (am == bm && as < bs)
}
