package clients_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/server"
)

// hookgate is a real gateway, served in-process over real HTTP on
// loopback from a real bbolt store, with a token for principal alice.
type hookgate struct {
	srv   *server.Server
	url   string
	token string
}

func startHookgate(t testing.TB) *hookgate {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Metrics = false
	cfg.ShutdownTimeout = 2 * time.Second
	// A poll that was in flight when a driver was killed leased events the
	// driver never saw; they come back when the lease runs out. Keep that
	// short so the restart test sees it happen.
	cfg.Lease = 2 * time.Second
	ctx := context.Background()
	srv, err := server.Start(ctx, cfg, io.Discard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	token, err := server.CreateToken(ctx, srv.Store(), "alice", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &hookgate{srv: srv, url: srv.URL(), token: token}
}

// tokenTransport adds the bearer token.
type tokenTransport struct {
	token string
	base  http.RoundTripper
}

func (b tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// register registers a generic webhook with the real SDK client and
// returns its ingress URL and secret.
func (g *hookgate) register(t testing.TB, label string) (url, secret string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   g.url + "/mcp",
		HTTPClient: &http.Client{Transport: tokenTransport{g.token, http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "register_webhook", Arguments: map[string]any{"label": label}})
	if err != nil || res.IsError {
		t.Fatalf("register_webhook %s: %v %+v", label, err, res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var out struct{ URL, Secret string }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.URL, out.Secret
}

// post sends one signed generic webhook and returns hookgate's event ID.
func post(url, secret string, i int) (string, error) {
	return postTyped(url, secret, i, "test.event")
}

// postTyped is post with the event type given (ev-<i> is the provider's
// event ID, so i must differ between the events of one webhook).
func postTyped(url, secret string, i int, eventType string) (string, error) {
	body := fmt.Appendf(nil, `{"id":"ev-%d","type":%q,"n":%d}`, i, eventType, i)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Webhook-Signature", hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST %d: status %d, %v", i, resp.StatusCode, err)
	}
	return out.ID, nil
}

// postMany posts n events with a few workers and returns their IDs.
func postMany(url, secret string, n int) ([]string, error) {
	var (
		mu   sync.Mutex
		ids  []string
		errs []error
		wg   sync.WaitGroup
	)
	jobs := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range jobs {
				id, err := post(url, secret, i)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ids = append(ids, id)
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		return ids, errs[0]
	}
	return ids, nil
}

// waitUntil polls cond against a deadline.
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling against a deadline
	}
}
