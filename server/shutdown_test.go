package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMFinishesInFlightIngress: a provider's POST that is half sent
// when SIGTERM arrives still gets its 200 once the body is complete, the
// listener refuses new connections meanwhile, and the event is durable on
// the next start.
func TestSIGTERMFinishesInFlightIngress(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir)
	reg := mustTool(t, connect(t, g.url, g.token, ""), "register_webhook", map[string]any{"label": "inflight"}).Structured
	hook, err := url.Parse(reg["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"id":"in-flight-1","type":"order.paid"}`
	half := len(body) / 2

	// Raw TCP, so the test decides exactly how much of the request is sent.
	conn, err := net.DialTimeout("tcp", hook.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// Expect: 100-continue makes the server say when the handler starts
	// reading the body: from then on the request is in flight, not a
	// connection still waiting in the listener's queue, which a shutdown
	// may rightly drop unanswered.
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Webhook-Signature: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		hook.Path, hook.Host, signGeneric(reg["secret"].(string), []byte(body)), len(body))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatalf("send the headers: %v", err)
	}
	replies := bufio.NewReader(conn)
	interim, err := http.ReadResponse(replies, nil)
	if err != nil || interim.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue once the handler reads the body: %v %v", interim, err)
	}
	if _, err := io.WriteString(conn, body[:half]); err != nil {
		t.Fatalf("send the first half: %v", err)
	}

	g.signal(syscall.SIGTERM)
	// Shutdown has reached the HTTP server once the listener refuses.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", hook.Host, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting 15s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond) // polling against a deadline
	}
	select {
	case <-g.exited:
		t.Fatalf("hookgate exited with a request in flight; stderr: %s", g.stderr)
	default:
	}

	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatalf("send the second half: %v", err)
	}
	resp, err := http.ReadResponse(replies, nil)
	if err != nil {
		t.Fatalf("read the in-flight response: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), `"id":"`) {
		t.Fatalf("in-flight POST during shutdown: %d %s, want 200 with an id", resp.StatusCode, answer)
	}
	g.waitExit()

	g2 := startGateway(t, dir)
	b := decodeBatch(t, mustTool(t, connect(t, g2.url, g.token, ""), "check_pending_events", nil).Text)
	if len(b.Events) != 1 || b.Events[0].ProviderEventID != "in-flight-1" {
		t.Fatalf("after restart pending %+v, want the in-flight event", b)
	}
}

// TestHealthz: liveness answers 200 without a token, so a load balancer or
// Kubernetes probe needs no secret.
func TestHealthz(t *testing.T) {
	g := startGateway(t, t.TempDir())
	resp, err := http.Get(g.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(text) != "ok\n" {
		t.Fatalf("/healthz: %d %q, want 200 ok", resp.StatusCode, text)
	}
}
