package server_test

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// binary is the hookgate executable built once for every end-to-end test.
var binary string

func TestMain(m *testing.M) {
	// A benchmark re-executes this test binary as the bare net/http baseline
	// server (see startBare in benchutil_test.go), so that both ingest
	// targets run as separate processes; that child serves and exits here.
	if os.Getenv(bareServerEnv) != "" {
		os.Exit(serveBare())
	}
	dir, err := os.MkdirTemp("", "hookgate-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hookgate")
	build := exec.Command("go", "build", "-o", binary, "./cmd/hookgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hookgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gateway is one running hookgate process.
type gateway struct {
	t       testing.TB
	cmd     *exec.Cmd
	url     string // base URL, no trailing slash
	token   string // the development token, if the banner printed one
	exited  chan struct{}
	stderr  *syncBuffer
	dataDir string
}

// startGateway runs `hookgate serve` on a free loopback port over dataDir and
// waits for its banner.
func startGateway(t testing.TB, dataDir string, args ...string) *gateway {
	t.Helper()
	return startGatewayEnv(t, nil, dataDir, args...)
}

// startGatewayEnv is startGateway with extra environment variables
// (HOOKGATE_* configuration) on top of the test's own environment.
func startGatewayEnv(t testing.TB, env []string, dataDir string, args ...string) *gateway {
	t.Helper()
	full := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dataDir, "--log-level", "warn"}, args...)
	cmd := exec.Command(binary, full...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, cmd: cmd, exited: make(chan struct{}), stderr: &syncBuffer{}, dataDir: dataDir}
	cmd.Stderr = g.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hookgate: %v", err)
	}
	go func() { _ = cmd.Wait(); close(g.exited) }()
	t.Cleanup(g.kill)

	banner := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if v, ok := strings.CutPrefix(line, "Listening:"); ok {
				g.url = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "Token:"); ok && strings.HasPrefix(strings.TrimSpace(v), "hg_") {
				g.token = strings.TrimSpace(v)
			}
			if strings.HasPrefix(line, "Token:") || strings.HasPrefix(line, "Auth:") {
				banner <- nil
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		banner <- fmt.Errorf("stdout closed before the banner: %v", sc.Err())
	}()
	select {
	case err := <-banner:
		if err != nil {
			t.Fatalf("%v; stderr: %s", err, g.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no banner within 20s; stderr: %s", g.stderr)
	}
	waitReady(t, g.url)
	return g
}

// kill stops the process at once, as a crash would.
func (g *gateway) kill() {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Kill()
	<-g.exited
}

// stop sends SIGTERM, as a service manager or Kubernetes does, and waits
// for a graceful exit.
func (g *gateway) stop() {
	g.t.Helper()
	g.signal(syscall.SIGTERM)
	g.waitExit()
}

// signal delivers sig to the process.
func (g *gateway) signal(sig os.Signal) {
	g.t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		g.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits for the process to exit after a signal and requires a
// clean exit code.
func (g *gateway) waitExit() {
	g.t.Helper()
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		g.t.Fatalf("hookgate did not exit within 30s of a stop signal")
	}
	if code := g.cmd.ProcessState.ExitCode(); code != 0 {
		g.t.Fatalf("hookgate exited %d after a stop signal; stderr: %s", code, g.stderr)
	}
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling against a deadline
	}
	t.Fatalf("%s/readyz not ready within 15s", base)
}

// createToken runs `hookgate token create` (the server must be stopped).
func createToken(t testing.TB, dataDir, name string) string {
	t.Helper()
	out, err := exec.Command(binary, "token", "create", "--name", name, "--data", dataDir).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	token := strings.TrimSpace(string(out))
	if !strings.HasPrefix(token, "hg_") || strings.Contains(token, "\n") {
		t.Fatalf("token create printed %q, want one hg_ token line", out)
	}
	return token
}

// startAsAlice starts a gateway on a fresh store with a token for the
// principal "alice", for tests that need a principal other than the
// development one.
func startAsAlice(t *testing.T) (*gateway, string) {
	t.Helper()
	dir := t.TempDir()
	token := createToken(t, dir, "alice")
	return startGateway(t, dir), token
}

type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.base.RoundTrip(r)
}

// connect opens an MCP session with the real SDK client over HTTP.
// version "" negotiates the newest (2026-07-28).
func connect(t testing.TB, base, token, version string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "hookgate-test", Version: "1"}, nil)
	transport := &mcp.StreamableClientTransport{
		Endpoint:   base + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{token: token, base: http.DefaultTransport}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect MCP %s: %v", version, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// toolResult is a decoded tool call: its first text content and structured content.
type toolResult struct {
	Text       string
	Structured map[string]any
	IsError    bool
}

func callTool(t testing.TB, cs *mcp.ClientSession, name string, args map[string]any) toolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	out := toolResult{IsError: res.IsError}
	if len(res.Content) > 0 {
		if tc, ok := res.Content[0].(*mcp.TextContent); ok {
			out.Text = tc.Text
		}
	}
	if m, ok := res.StructuredContent.(map[string]any); ok {
		out.Structured = m
	}
	return out
}

// mustTool calls a tool and fails the test on a tool error.
func mustTool(t testing.TB, cs *mcp.ClientSession, name string, args map[string]any) toolResult {
	t.Helper()
	r := callTool(t, cs, name, args)
	if r.IsError {
		t.Fatalf("%s(%v) failed: %s", name, args, r.Text)
	}
	return r
}

// testEvent is the contract's event shape as a client decodes it.
type testEvent struct {
	ID              string          `json:"id"`
	Label           string          `json:"label"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	ProviderEventID string          `json:"providerEventId"`
	ReceivedAt      time.Time       `json:"receivedAt"`
	Verified        bool            `json:"verified"`
	DeliveryCount   int             `json:"deliveryCount"`
	Payload         json.RawMessage `json:"payload"`
}

type eventBatch struct {
	Events    []testEvent `json:"events"`
	Remaining int         `json:"remaining"`
}

func decodeBatch(t testing.TB, text string) eventBatch {
	t.Helper()
	var b eventBatch
	if err := json.Unmarshal([]byte(text), &b); err != nil {
		t.Fatalf("decode {events, remaining} from %q: %v", text, err)
	}
	if b.Events == nil {
		t.Fatalf("events is null or missing in %q; want a list", text)
	}
	return b
}

func signGeneric(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// post sends a webhook and returns the status and decoded body.
func post(t *testing.T, url string, header http.Header, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// getJSON GETs url with the bearer token, requires a 200 and decodes the
// JSON body into out.
func getJSON(t *testing.T, url, token string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
}

// syncBuffer lets the exec package write stderr while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
