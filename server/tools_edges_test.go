package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// edgeWait bounds each wait in these tests; none takes it unless broken.
const edgeWait = 15 * time.Second

// TestToolEdgeDeleteWebhook proves that delete_webhook answers the contract's
// structured result {deleted: true} (and the same JSON as text), that the
// deleted registration's URL then answers 410 Gone even to a correctly signed
// POST, and that list_webhooks no longer shows it while keeping the others.
func TestToolEdgeDeleteWebhook(t *testing.T) {
	g, token := startAsAlice(t)
	cs := connect(t, g.url, token, "")

	doomed := mustTool(t, cs, "register_webhook", map[string]any{"label": "doomed"}).Structured
	keeper := mustTool(t, cs, "register_webhook", map[string]any{"label": "keeper"}).Structured
	url, secret := doomed["url"].(string), doomed["secret"].(string)

	body := []byte(`{"id":"before-delete","type":"x.created"}`)
	if status, resp := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(secret, body)}}, body); status != http.StatusOK {
		t.Fatalf("POST before delete: %d %v, want 200", status, resp)
	}

	r := mustTool(t, cs, "delete_webhook", map[string]any{"label": "doomed"})
	if len(r.Structured) != 1 || r.Structured["deleted"] != true {
		t.Fatalf("delete_webhook structured = %v, want exactly {deleted: true}", r.Structured)
	}
	var text map[string]any
	if err := json.Unmarshal([]byte(r.Text), &text); err != nil || len(text) != 1 || text["deleted"] != true {
		t.Fatalf("delete_webhook text = %q (%v), want JSON {\"deleted\":true}", r.Text, err)
	}

	body = []byte(`{"id":"after-delete","type":"x.created"}`)
	if status, resp := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(secret, body)}}, body); status != http.StatusGone {
		t.Fatalf("signed POST to the deleted URL: %d %v, want 410", status, resp)
	}

	hooks, ok := mustTool(t, cs, "list_webhooks", nil).Structured["webhooks"].([]any)
	if !ok {
		t.Fatal("list_webhooks: webhooks is not a list")
	}
	if len(hooks) != 1 {
		t.Fatalf("list_webhooks after delete = %v, want only keeper", hooks)
	}
	h := hooks[0].(map[string]any)
	if h["label"] != "keeper" || h["id"] != keeper["id"] {
		t.Fatalf("list_webhooks after delete = %v, want keeper (%v)", h, keeper["id"])
	}
}

// TestToolEdgeSecretRotation proves key rotation through register_webhook:
// passing secret as a list keeps the URL, answers the newest secret, and
// makes a POST signed with either listed secret verify (200) while a third
// secret gets 401 and stores nothing; a later call with only the new secret
// drops the old one.
func TestToolEdgeSecretRotation(t *testing.T) {
	g, token := startAsAlice(t)
	cs := connect(t, g.url, token, "")

	const oldSecret, newSecret, otherSecret = "rotate-old-secret-1", "rotate-new-secret-2", "never-registered-3"
	first := mustTool(t, cs, "register_webhook", map[string]any{"label": "rotating", "secret": oldSecret}).Structured
	if first["secret"] != oldSecret {
		t.Fatalf("register with one secret answered secret %v, want %q", first["secret"], oldSecret)
	}
	rotated := mustTool(t, cs, "register_webhook", map[string]any{"label": "rotating", "secret": []any{oldSecret, newSecret}}).Structured
	if rotated["url"] != first["url"] || rotated["id"] != first["id"] {
		t.Fatalf("rotation changed the endpoint: %v -> %v", first, rotated)
	}
	if rotated["secret"] != newSecret {
		t.Fatalf("rotation answered secret %v, want the newest %q", rotated["secret"], newSecret)
	}
	url := rotated["url"].(string)

	send := func(id, secret string) int {
		t.Helper()
		body := []byte(fmt.Sprintf(`{"id":%q,"type":"rotation.test"}`, id))
		status, _ := post(t, url, http.Header{"X-Webhook-Signature": {signGeneric(secret, body)}}, body)
		return status
	}
	if s := send("signed-old", oldSecret); s != http.StatusOK {
		t.Fatalf("POST signed with the old secret during rotation: %d, want 200", s)
	}
	if s := send("signed-new", newSecret); s != http.StatusOK {
		t.Fatalf("POST signed with the new secret during rotation: %d, want 200", s)
	}
	if s := send("signed-other", otherSecret); s != http.StatusUnauthorized {
		t.Fatalf("POST signed with an unlisted secret: %d, want 401", s)
	}
	b := decodeBatch(t, mustTool(t, cs, "check_pending_events", nil).Text)
	if len(b.Events) != 2 || b.Events[0].ProviderEventID != "signed-old" || b.Events[1].ProviderEventID != "signed-new" || b.Remaining != 0 {
		t.Fatalf("pending after rotation posts = %+v, want exactly signed-old, signed-new", b)
	}

	// Ending the rotation: a call without the old secret drops it.
	mustTool(t, cs, "register_webhook", map[string]any{"label": "rotating", "secret": []any{newSecret}})
	if s := send("old-after-drop", oldSecret); s != http.StatusUnauthorized {
		t.Fatalf("POST signed with the dropped secret: %d, want 401", s)
	}
	if s := send("new-after-drop", newSecret); s != http.StatusOK {
		t.Fatalf("POST signed with the kept secret: %d, want 200", s)
	}
}

// TestToolEdgeCheckPendingLimit proves that check_pending_events with 13
// pending events returns the oldest 10 (the contract's limit) in ID order
// with remaining 3, and, once those are acked, the other 3 with remaining 0.
func TestToolEdgeCheckPendingLimit(t *testing.T) {
	g, token := startAsAlice(t)
	cs := connect(t, g.url, token, "")
	reg := mustTool(t, cs, "register_webhook", map[string]any{"label": "bulk"}).Structured

	const total, limit = 13, 10
	var posted []string
	for i := range total {
		posted = append(posted, postGeneric(t, g.url, reg, fmt.Sprintf(`{"id":"bulk-%02d","type":"bulk.item"}`, i)))
	}
	requireAscending(t, "POST answers", posted)

	r := mustTool(t, cs, "check_pending_events", nil)
	b := decodeBatch(t, r.Text)
	if got := eventIDs(b.Events); strings.Join(got, ",") != strings.Join(posted[:limit], ",") {
		t.Fatalf("first batch = %v, want the oldest %d in order %v", got, limit, posted[:limit])
	}
	requireAscending(t, "first batch", eventIDs(b.Events))
	if b.Remaining != total-limit {
		t.Fatalf("first batch remaining = %d, want %d", b.Remaining, total-limit)
	}
	if rem := r.Structured["remaining"]; rem != float64(total-limit) {
		t.Fatalf("structured remaining = %v, want %d", rem, total-limit)
	}

	ack := mustTool(t, cs, "ack_event", map[string]any{"event_ids": toAny(posted[:limit])}).Structured
	if ack["acknowledged"] != true || ack["count"] != float64(limit) {
		t.Fatalf("ack of the first batch = %v, want {acknowledged: true, count: %d}", ack, limit)
	}
	b = decodeBatch(t, mustTool(t, cs, "check_pending_events", nil).Text)
	if got := eventIDs(b.Events); strings.Join(got, ",") != strings.Join(posted[limit:], ",") || b.Remaining != 0 {
		t.Fatalf("second batch = %v remaining %d, want %v remaining 0", got, b.Remaining, posted[limit:])
	}
}

// TestToolEdgeTailLabel proves that `hookgate tail --server URL --token T
// --label alpha` prints only alpha's events as NDJSON: from the log
// (--after 0-0) and live, with a beta event posted before each alpha one
// that a broken filter would print first, since the feed is in ID order.
func TestToolEdgeTailLabel(t *testing.T) {
	g, token := startAsAlice(t)
	cs := connect(t, g.url, token, "")
	alpha := mustTool(t, cs, "register_webhook", map[string]any{"label": "alpha"}).Structured
	beta := mustTool(t, cs, "register_webhook", map[string]any{"label": "beta"}).Structured

	postGeneric(t, g.url, beta, `{"id":"beta-0","type":"b.logged"}`)
	alpha0 := postGeneric(t, g.url, alpha, `{"id":"alpha-0","type":"a.logged"}`)

	ctx, cancel := context.WithTimeout(context.Background(), 2*edgeWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "tail", "--server", g.url, "--token", token, "--label", "alpha", "--after", "0-0")
	out := newLineSink()
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tail: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		cancel() // kills the tail process started above
		<-exited
	}()

	want := func(n int, id, what string) {
		t.Helper()
		lines := out.waitLines(n, edgeWait)
		if len(lines) < n {
			t.Fatalf("tail printed %d lines within %s, want %d (%s); stdout %q; stderr: %s", len(lines), edgeWait, n, what, lines, stderr)
		}
		var ev testEvent
		if err := json.Unmarshal([]byte(lines[n-1]), &ev); err != nil {
			t.Fatalf("tail line %d %q is not one JSON event: %v", n, lines[n-1], err)
		}
		if ev.ID != id || ev.Label != "alpha" {
			t.Fatalf("tail line %d = id %s label %q, want %s of alpha (%s); all lines: %q", n, ev.ID, ev.Label, id, what, lines)
		}
	}
	want(1, alpha0, "from the log")

	// Live: beta first, then alpha.
	postGeneric(t, g.url, beta, `{"id":"beta-1","type":"b.live"}`)
	alpha1 := postGeneric(t, g.url, alpha, `{"id":"alpha-1","type":"a.live"}`)
	want(2, alpha1, "live")

	if lines := out.lines(); len(lines) != 2 {
		t.Fatalf("tail printed %q, want exactly alpha's two events", lines)
	}
}

// lineSink collects a process's stdout as lines, for a test to wait on.
type lineSink struct {
	mu      sync.Mutex
	partial []byte
	done    []string
	changed chan struct{} // a token whenever a line completes
}

func newLineSink() *lineSink { return &lineSink{changed: make(chan struct{}, 1)} }

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, p...)
	for {
		i := strings.IndexByte(string(s.partial), '\n')
		if i < 0 {
			break
		}
		s.done = append(s.done, string(s.partial[:i]))
		s.partial = s.partial[i+1:]
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (s *lineSink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.done...)
}

// waitLines waits up to d for at least n complete lines and returns what it has.
func (s *lineSink) waitLines(n int, d time.Duration) []string {
	deadline := time.After(d)
	for {
		if l := s.lines(); len(l) >= n {
			return l
		}
		select {
		case <-s.changed:
		case <-deadline:
			return s.lines()
		}
	}
}

func eventIDs(events []testEvent) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// requireAscending checks ids are strictly increasing as (ms, seq) pairs,
// compared numerically as the contract says.
func requireAscending(t *testing.T, what string, ids []string) {
	t.Helper()
	var prevMS, prevSeq uint64
	for i, id := range ids {
		msText, seqText, ok := strings.Cut(id, "-")
		ms, err1 := strconv.ParseUint(msText, 10, 64)
		seq, err2 := strconv.ParseUint(seqText, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("%s: id %q is not <ms>-<seq>", what, id)
		}
		if i > 0 && (ms < prevMS || (ms == prevMS && seq <= prevSeq)) {
			t.Fatalf("%s: ids not in order: %v", what, ids)
		}
		prevMS, prevSeq = ms, seq
	}
}
