package server_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envWithout is the test's environment without the named variables.
func envWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// runHookgate runs the binary in dir with env and returns its stdout,
// stderr and error.
func runHookgate(t *testing.T, dir string, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestTokenCreateNamesItsStore: token create says on stderr which store it
// used; without --data or HOOKGATE_DATA it refuses to create a store at the
// default path, naming it, while an explicit --data or HOOKGATE_DATA still
// creates one, and an existing default store is used.
func TestTokenCreateNamesItsStore(t *testing.T) {
	work := t.TempDir()
	env := envWithout("HOOKGATE_DATA", "HOOKGATE_REDIS")

	_, stderr, err := runHookgate(t, work, env, "token", "create", "--name", "alice")
	if err == nil || !strings.Contains(stderr, filepath.Join("hookgate-data", "hookgate.db")) {
		t.Fatalf("token create without a store: err %v, stderr %s", err, stderr)
	}
	if _, statErr := os.Stat(filepath.Join(work, "hookgate-data")); !os.IsNotExist(statErr) {
		t.Fatalf("the refused token create left %s behind (%v)", filepath.Join(work, "hookgate-data"), statErr)
	}

	explicit := filepath.Join(work, "explicit")
	stdout, stderr, err := runHookgate(t, work, env, "token", "create", "--name", "alice", "--data", explicit)
	want := "using store " + filepath.Join(explicit, "hookgate.db")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(stdout), "hg_") || !strings.Contains(stderr, want) {
		t.Fatalf("token create --data: err %v, stdout %q, stderr %q; want %q on stderr", err, stdout, stderr, want)
	}

	fromEnv := filepath.Join(work, "from-env")
	_, stderr, err = runHookgate(t, work, append(env, "HOOKGATE_DATA="+fromEnv), "token", "create", "--name", "alice")
	if err != nil || !strings.Contains(stderr, "using store "+filepath.Join(fromEnv, "hookgate.db")) {
		t.Fatalf("token create with HOOKGATE_DATA: err %v, stderr %q", err, stderr)
	}

	// Once a store exists at the default path (serve made it), a bare
	// token create uses it.
	if _, stderr, err := runHookgate(t, work, env, "token", "create", "--name", "alice", "--data", "./hookgate-data"); err != nil {
		t.Fatalf("token create --data ./hookgate-data: %v, %s", err, stderr)
	}
	stdout, stderr, err = runHookgate(t, work, env, "token", "create", "--name", "alice")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(stdout), "hg_") || !strings.Contains(stderr, "using store "+filepath.Join("hookgate-data", "hookgate.db")) {
		t.Fatalf("token create on the existing default store: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
}

// statusWith is the status of GET /v1/stats with token.
func statusWith(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/stats", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDevTokenReplacesThePreviousOne: each start with --dev-token prints a
// new development token, and the one before stops working; tokens from
// `token create` are not affected.
func TestDevTokenReplacesThePreviousOne(t *testing.T) {
	dir := t.TempDir()
	alice := createToken(t, dir, "alice")
	g := startGateway(t, dir, "--dev-token")
	a := g.token
	if a == "" || statusWith(t, g.url, a) != http.StatusOK {
		t.Fatalf("first --dev-token start: token %q does not work", a)
	}
	g.stop()

	g2 := startGateway(t, dir, "--dev-token")
	b := g2.token
	if b == "" || b == a {
		t.Fatalf("second --dev-token start printed %q (first %q)", b, a)
	}
	if got := statusWith(t, g2.url, a); got != http.StatusUnauthorized {
		t.Fatalf("the replaced development token: %d, want 401", got)
	}
	if got := statusWith(t, g2.url, b); got != http.StatusOK {
		t.Fatalf("the new development token: %d, want 200", got)
	}
	mustTool(t, connect(t, g2.url, b, ""), "list_webhooks", nil)
	if got := statusWith(t, g2.url, alice); got != http.StatusOK {
		t.Fatalf("a token from token create after --dev-token starts: %d, want 200", got)
	}

	// A restart without --dev-token keeps the current one.
	g2.stop()
	g3 := startGateway(t, dir)
	if g3.token != "" || statusWith(t, g3.url, b) != http.StatusOK || statusWith(t, g3.url, a) != http.StatusUnauthorized {
		t.Fatalf("restart without --dev-token: printed %q; B %d, A %d", g3.token, statusWith(t, g3.url, b), statusWith(t, g3.url, a))
	}
}

// TestVersionAndCommandHelp: --version and version print the version;
// replay -h and tail -h give one of their own flags as the environment
// variable example.
func TestVersionAndCommandHelp(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(binary, arg).Output()
		if err != nil || !strings.HasPrefix(string(out), "hookgate 0.") || strings.Contains(string(out), "usage") {
			t.Errorf("hookgate %s: err %v, output %q", arg, err, out)
		}
	}
	for _, cmd := range []string{"replay", "tail"} {
		out, err := exec.Command(binary, cmd, "-h").CombinedOutput()
		if err != nil || strings.Contains(string(out), "HOOKGATE_MAX_BODY") || !strings.Contains(string(out), "HOOKGATE_SERVER") {
			t.Errorf("hookgate %s -h: err %v, output:\n%s", cmd, err, out)
		}
	}
}

// TestSDKSessionLinesAreNotInfo: at the default log level a 2026-07-28 tool
// call logs none of the SDK's per-session lines; at debug they are there.
func TestSDKSessionLinesAreNotInfo(t *testing.T) {
	sdkLines := []string{"server connecting", "server session connected", "server session disconnected"}
	for _, level := range []string{"info", "debug"} {
		g := startGateway(t, t.TempDir(), "--log-level", level)
		cs := connect(t, g.url, g.token, "")
		mustTool(t, cs, "check_pending_events", nil)
		_ = cs.Close()
		if level == "debug" {
			waitUntilLogged(t, g, sdkLines[0])
			continue
		}
		waitUntilLogged(t, g, "serving")
		time.Sleep(200 * time.Millisecond) // let any session-end line be written
		for _, msg := range sdkLines {
			if strings.Contains(g.stderr.String(), msg) {
				t.Errorf("--log-level info logged %q:\n%s", msg, g.stderr)
			}
		}
	}
}

func waitUntilLogged(t *testing.T, g *gateway, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(g.stderr.String(), msg) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", msg, g.stderr)
		}
		time.Sleep(20 * time.Millisecond) // polling the child's stderr against a deadline
	}
}
