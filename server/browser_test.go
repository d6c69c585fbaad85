//go:build unix

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// chromiumPath is where Debian's chromium package puts the browser; `make
// deps` installs it (and playwright-core under testdata/browser) when missing.
const chromiumPath = "/usr/bin/chromium"

// TestDashboardInBrowser loads the dashboard in headless Chromium against
// the real binary after the scripted run of TestFourNumbersAfterAScriptedRun
// (100 accepted, 5 bad signatures, 3 duplicates, 90 acked, 5 nacked, 5 left
// to expire), enters the token, checks the row shows those numbers, POSTs new
// webhooks and checks they appear at the top of the live feed and the counts
// change. testdata/browser/dashboard.mjs drives the browser; the screenshot
// is left in the test's temporary directory.
func TestDashboardInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("skipping the browser test: Chromium is not installed at %s and `make deps` could not install it (it runs `apt-get install -y chromium` as root on Debian)", chromiumPath)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("Chromium is installed but node is not on PATH; the browser test needs Node.js 20+ and `make deps`: %v", err)
	}
	driver, err := filepath.Abs(filepath.Join("testdata", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(driver, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("playwright-core is not installed in %s: run `make deps` (npm ci there): %v", driver, err)
	}

	g := startGateway(t, t.TempDir(), "--lease", "1s")
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "obs"}).Structured
	url, secret := reg["url"].(string), reg["secret"].(string)

	send := func(i int, key string) int {
		body := fmt.Appendf(nil, `{"id":"obs-%d","type":"t"}`, i)
		status, _ := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(key, body)}}, body)
		return status
	}
	for i := range 100 {
		if s := send(i, secret); s != http.StatusOK {
			t.Fatalf("POST %d: %d", i, s)
		}
	}
	for i := range 5 {
		if s := send(1000+i, "wrong"); s != http.StatusUnauthorized {
			t.Fatalf("bad signature: %d", s)
		}
	}
	for i := range 3 {
		if s := send(i, secret); s != http.StatusOK {
			t.Fatalf("duplicate %d: %d", i, s)
		}
	}
	var events []testEvent
	if err := json.Unmarshal([]byte(mustTool(t, cs, "poll_events", map[string]any{"limit": 100}).Text), &events); err != nil || len(events) != 100 {
		t.Fatalf("poll: %v, %d events", err, len(events))
	}
	var ackIDs []string
	for _, e := range events[:90] {
		ackIDs = append(ackIDs, e.ID)
	}
	mustTool(t, cs, "ack_event", map[string]any{"event_ids": ackIDs})
	for _, e := range events[90:95] {
		mustTool(t, cs, "nack_event", map[string]any{"event_id": e.ID, "retry_after_seconds": 3600})
	}
	// events[95:] run out of their 1 s lease; wait until get_stats has seen it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var res struct {
			Webhooks []struct {
				LeaseExpired int `json:"leaseExpired"`
			} `json:"webhooks"`
		}
		if err := json.Unmarshal([]byte(mustTool(t, cs, "get_stats", nil).Text), &res); err != nil || len(res.Webhooks) != 1 {
			t.Fatalf("get_stats: %v %+v", err, res)
		}
		if res.Webhooks[0].LeaseExpired == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("get_stats shows %d lease expiries after 15s, want 5", res.Webhooks[0].LeaseExpired)
		}
		time.Sleep(100 * time.Millisecond) // polling against a deadline: the leases run out on their own
	}

	// What the webhook's row must show, cell by cell, as the page renders it.
	expect, err := json.Marshal(map[string]string{
		"pending": "10", "accepted": "100", "duplicates": "3", "badSignatures": "5",
		"acked": "90", "nacked": "5", "leaseExpired": "5", "deadLettered": "0", "expiredUnacked": "0",
		// Nothing was dead-lettered or deleted unacked: lease expiries
		// come back, so they lower the success rate, not the drop rate.
		"dropRate": "0.0%", "actionSuccessRate": "90.0%",
	})
	if err != nil {
		t.Fatal(err)
	}
	artifacts := t.TempDir()
	scratch := t.TempDir() // the browser profile and node's temporary files

	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "dashboard.mjs")
	cmd.Dir = driver
	cmd.Env = append(os.Environ(),
		"HOOKGATE_URL="+g.url,
		"HOOKGATE_TOKEN="+g.token,
		"HOOKGATE_LABEL=obs",
		"HOOKGATE_HOOK_URL="+url,
		"HOOKGATE_SECRET="+secret,
		"HOOKGATE_EXPECT="+string(expect),
		"HOOKGATE_ARTIFACTS="+artifacts,
		"CHROMIUM="+chromiumPath,
		"TMPDIR="+scratch,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Node and the browser it starts share a process group, so a timeout
	// ends them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	t.Logf("node dashboard.mjs (%s):\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if ctx.Err() != nil {
		t.Fatalf("the browser test did not finish within 75s")
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("the browser test failed (exit %d); see its output above; gateway stderr:\n%s", exit.ExitCode(), g.stderr)
		}
		t.Fatalf("run node: %v", err)
	}
	shot := filepath.Join(artifacts, "dashboard.png")
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
