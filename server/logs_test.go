package server_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestIngressLogLine: with --log-format json --log-level debug each webhook
// gets one JSON line naming its outcome, provider, label and the request ID
// the caller sent (echoed in X-Request-Id), and no line carries the secret
// or the payload.
func TestIngressLogLine(t *testing.T) {
	g := startGateway(t, t.TempDir(), "--log-format", "json", "--log-level", "debug")
	cs := connect(t, g.url, g.token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "logged"}).Structured
	secret := reg["secret"].(string)
	body := []byte(`{"id":"log-1","card":"4242-secret-payload"}`)
	req, _ := http.NewRequest(http.MethodPost, reg["url"].(string), strings.NewReader(string(body)))
	req.Header.Set("X-Webhook-Signature", signGeneric(secret, body))
	req.Header.Set("X-Request-Id", "req-abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "req-abc-123" {
		t.Fatalf("POST: %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}

	var line map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for line == nil && time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(g.stderr.String()))
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "webhook" && m["request_id"] == "req-abc-123" {
				line = m
			}
		}
		if line == nil {
			time.Sleep(20 * time.Millisecond) // polling the child's stderr against a deadline
		}
	}
	if line == nil {
		t.Fatalf("no JSON webhook line with request_id req-abc-123 in stderr:\n%s", g.stderr)
	}
	if line["outcome"] != "accepted" || line["provider"] != "generic" || line["label"] != "logged" || line["level"] != "DEBUG" {
		t.Fatalf("webhook log line %v", line)
	}
	if all := g.stderr.String(); strings.Contains(all, secret) || strings.Contains(all, "4242-secret-payload") {
		t.Fatal("logs contain the secret or the payload")
	}
}
