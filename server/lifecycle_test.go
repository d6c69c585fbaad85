package server_test

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRestartKeepsRegistrationsAndPrintsTokenOnce: the development token is
// printed on first start only, a registration's URL and secret survive a
// graceful restart, and stored events are still pending afterwards.
func TestRestartKeepsRegistrationsAndPrintsTokenOnce(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir, "--public-url", "https://hooks.example.com")
	if g.token == "" {
		t.Fatal("first start printed no token")
	}
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "orders"}).Structured
	url := reg["url"].(string)
	if !strings.HasPrefix(url, "https://hooks.example.com/hooks/wh_") {
		t.Fatalf("url %q does not use --public-url", url)
	}
	body := []byte(`{"id":"r-1"}`)
	localURL := g.url + strings.TrimPrefix(url, "https://hooks.example.com")
	if status, _ := post(t, localURL, http.Header{"X-Webhook-Signature": {signGeneric(reg["secret"].(string), body)}}, body); status != 200 {
		t.Fatalf("POST: %d", status)
	}
	g.stop() // SIGTERM: graceful, exit code 0

	g2 := startGateway(t, dir, "--public-url", "https://hooks.example.com")
	if g2.token != "" {
		t.Fatal("second start printed a token again")
	}
	cs2 := connect(t, g2.url, g.token, "2025-11-25")
	again := mustTool(t, cs2, "register_webhook", map[string]any{"label": "orders"}).Structured
	if again["url"] != url || again["secret"] != reg["secret"] {
		t.Fatalf("after restart: %v, before: %v", again, reg)
	}
	b := decodeBatch(t, mustTool(t, cs2, "check_pending_events", nil).Text)
	if len(b.Events) != 1 || b.Events[0].ProviderEventID != "r-1" {
		t.Fatalf("after restart pending %+v", b)
	}
	// --dev-token prints a fresh token that works, on any start.
	g2.stop()
	g3 := startGateway(t, dir, "--dev-token")
	if g3.token == "" || g3.token == g.token {
		t.Fatalf("--dev-token printed %q", g3.token)
	}
	mustTool(t, connect(t, g3.url, g3.token, ""), "list_webhooks", nil)
}

func TestNoAuthIsLoopbackOnly(t *testing.T) {
	out, err := exec.Command(binary, "serve", "--no-auth", "--addr", "0.0.0.0:0", "--data", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--no-auth needs a loopback --addr") {
		t.Fatalf("--no-auth on 0.0.0.0: err %v, output %s", err, out)
	}
	g := startGateway(t, t.TempDir(), "--no-auth")
	cs := connect(t, g.url, "", "2025-11-25") // the bearer header is empty
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "local"}).Structured
	if reg["url"] == "" {
		t.Fatalf("no-auth register: %v", reg)
	}
}

func TestEnvironmentConfiguresServe(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--data", dir)
	cmd.Env = append(os.Environ(), "HOOKGATE_MAX_BODY=not-a-size")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HOOKGATE_MAX_BODY") {
		t.Fatalf("bad HOOKGATE_MAX_BODY: err %v, output %s", err, out)
	}
	// serve -h documents both.
	out, _ = exec.Command(binary, "serve", "-h").CombinedOutput()
	if !strings.Contains(string(out), "HOOKGATE_") || !strings.Contains(string(out), "-public-url") {
		t.Fatalf("serve -h does not document flags and HOOKGATE_*: %s", out)
	}

	// A valid variable configures serve, and a flag on the command line wins
	// over it.
	body := []byte(`{"id":"` + strings.Repeat("x", 100) + `"}`)
	for _, c := range []struct {
		name string
		args []string
		want int
	}{
		{"HOOKGATE_MAX_BODY=64 alone", nil, http.StatusRequestEntityTooLarge},
		{"HOOKGATE_MAX_BODY=64 with --max-body 1KiB", []string{"--max-body", "1KiB"}, http.StatusOK},
	} {
		g := startGatewayEnv(t, []string{"HOOKGATE_MAX_BODY=64"}, t.TempDir(), c.args...)
		reg := mustTool(t, connect(t, g.url, g.token, ""), "register_webhook", map[string]any{"label": "env"}).Structured
		status, _ := post(t, reg["url"].(string), http.Header{"X-Webhook-Signature": {signGeneric(reg["secret"].(string), body)}}, body)
		if status != c.want {
			t.Errorf("%s: 100-byte body answered %d, want %d", c.name, status, c.want)
		}
		g.kill()
	}
}

func TestBodyLimitFromFlag(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--max-body", "64")
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "small"}).Structured
	body := []byte(`{"id":"` + strings.Repeat("x", 100) + `"}`)
	if status, _ := post(t, reg["url"].(string), http.Header{"X-Webhook-Signature": {signGeneric(reg["secret"].(string), body)}}, body); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("100-byte body with --max-body 64: %d, want 413", status)
	}
}

func TestTokenCreateRefusesAStoreInUse(t *testing.T) {
	dir := t.TempDir()
	startGateway(t, dir)
	out, err := exec.Command(binary, "token", "create", "--name", "x", "--data", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("token create on a running store: err %v, output %s", err, out)
	}
}
