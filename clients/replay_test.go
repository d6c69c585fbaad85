package clients_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/verify"
	"github.com/hookgate/hookgate/clients"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// hookgateBinary builds the real command once for these tests.
func hookgateBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hookgate-clients-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "hookgate")
		out, err := exec.Command("go", "build", "-o", binPath, "../server/cmd/hookgate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build hookgate: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// runBinary runs the hookgate command with args and extra environment.
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookgateBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run hookgate %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// receiver is a webhook endpoint that verifies Standard Webhooks
// signatures with hookgate's own verifier and records each webhook-id.
type receiver struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	got    []string          // webhook-ids accepted, in order
	failAt string            // answer 400 to this event ID
	flaky  map[string]int    // answer 503 this many times first
	bodies map[string][]byte // by webhook-id
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if _, err := verify.Verify("standard-webhooks", []string{rv.secret}, "", r.Header, body, time.Now()); err != nil {
		rv.t.Errorf("bad signature on %s: %v", r.Header.Get("webhook-id"), err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := r.Header.Get("webhook-id")
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if id == rv.failAt {
		http.Error(w, "refusing "+id, http.StatusBadRequest)
		return
	}
	if rv.flaky[id] > 0 {
		rv.flaky[id]--
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	rv.got = append(rv.got, id)
	rv.bodies[id] = body
}

func newSecret(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// sortedIDs posts n events and returns their IDs in log order.
func sortedIDs(t *testing.T, url, secret string, n int) []string {
	t.Helper()
	ids, err := postMany(url, secret, n)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ids, func(a, b string) int {
		pa, _ := store.ParseID(a)
		pb, _ := store.ParseID(b)
		return pa.Compare(pb)
	})
	return ids
}

// TestReplayToStopsAndResumes: hookgate replay --to against a receiver
// that refuses event N stops, exits non-zero and prints the resume ID; a
// second run with --since that ID completes the set with no gap and no
// repeat.
func TestReplayToStopsAndResumes(t *testing.T) {
	g := startHookgate(t)
	url, secret := g.register(t, "replayed")
	ids := sortedIDs(t, url, secret, 40)
	const n = 25 // the receiver refuses the 26th event
	rv := &receiver{t: t, secret: newSecret(t), failAt: ids[n], flaky: map[string]int{ids[3]: 1}, bodies: map[string][]byte{}}
	recv := httptest.NewServer(rv)
	defer recv.Close()

	_, stderr, code := runBinary(t, []string{"HOOKGATE_TOKEN=" + g.token}, // the token from the environment
		"replay", "--server", g.url, "--label", "replayed", "--since", "0-0", "--to", recv.URL, "--secret", rv.secret)
	if code == 0 {
		t.Fatalf("replay exited 0 though the receiver refused %s; stderr:\n%s", ids[n], stderr)
	}
	m := regexp.MustCompile(`(?m)^resume with --since (\S+)$`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no resume line on stderr:\n%s", stderr)
	}
	if m[1] != ids[n-1] {
		t.Fatalf("resume with --since %s, want %s (the last delivered); stderr:\n%s", m[1], ids[n-1], stderr)
	}
	if !slices.Equal(rv.got, ids[:n]) {
		t.Fatalf("first run delivered %v, want the first %d events in order", rv.got, n)
	}

	rv.mu.Lock()
	rv.failAt = "" // the receiver is fixed
	rv.mu.Unlock()
	_, stderr, code = runBinary(t, nil, "replay", "--server", g.url, "--token", g.token, "--label", "replayed",
		"--since", m[1], "--to", recv.URL, "--secret", rv.secret)
	if code != 0 {
		t.Fatalf("second run exited %d:\n%s", code, stderr)
	}
	if !slices.Equal(rv.got, ids) {
		t.Fatalf("after the resume the receiver holds %d events, want all %d in order with no gap or repeat", len(rv.got), len(ids))
	}
	var e map[string]any
	if err := json.Unmarshal(rv.bodies[ids[0]], &e); err != nil || e["id"] != ids[0] || e["label"] != "replayed" {
		t.Errorf("delivered body is not the event: %s", rv.bodies[ids[0]])
	}
}

// TestReplayNDJSONBoundsAndDryRun: the default output is one event per
// line, --since exclusive and --until inclusive, and --dry-run counts.
func TestReplayNDJSONBoundsAndDryRun(t *testing.T) {
	g := startHookgate(t)
	url, secret := g.register(t, "ndjson")
	ids := sortedIDs(t, url, secret, 12)
	stdout, stderr, code := runBinary(t, nil, "replay", "--server", g.url, "--token", g.token,
		"--since", ids[2], "--until", ids[8])
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []string
	for line := range strings.Lines(stdout) {
		var e clients.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, e.ID)
	}
	if !slices.Equal(got, ids[3:9]) {
		t.Errorf("--since %s --until %s printed %v, want %v", ids[2], ids[8], got, ids[3:9])
	}
	stdout, stderr, code = runBinary(t, nil, "replay", "--server", g.url, "--token", g.token, "--dry-run")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "12 events") {
		t.Errorf("--dry-run: exit %d, stdout %q, stderr %q; want a count of 12 and no output", code, stdout, stderr)
	}
	_, stderr, code = runBinary(t, nil, "replay", "--server", g.url, "--token", g.token, "--since", "yesterday")
	if code == 0 || !strings.Contains(stderr, `--since "yesterday"`) || strings.Contains(stderr, "resume with") {
		t.Errorf("a malformed --since: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = runBinary(t, nil, "replay", "--server", g.url, "--token", "hg_wrong")
	if code == 0 || !strings.Contains(stderr, "401") {
		t.Errorf("a bad token: exit %d, stderr %q", code, stderr)
	}
}

// TestReplayRequeue: --requeue makes acked events pending again.
func TestReplayRequeue(t *testing.T) {
	g := startHookgate(t)
	url, secret := g.register(t, "requeued")
	ids := sortedIDs(t, url, secret, 10)
	ctx := context.Background()
	parsed := make([]store.ID, len(ids))
	for i, id := range ids {
		parsed[i], _ = store.ParseID(id)
	}
	if _, err := g.srv.Store().Ack(ctx, "alice", parsed); err != nil {
		t.Fatal(err)
	}
	res, err := clients.Replay(ctx, clients.ReplayOptions{
		Log:     clients.LogQuery{Server: g.url, Token: g.token, Label: "requeued", Since: ids[4]},
		Requeue: true,
	})
	if err != nil || res.Requeued != 5 || res.Last != ids[9] {
		t.Fatalf("requeue: %+v, %v; want 5 requeued up to %s", res, err, ids[9])
	}
	pending, err := g.srv.Store().ReadPending(ctx, "alice", store.Query{Label: "requeued"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range pending {
		got = append(got, e.ID.String())
	}
	if !slices.Equal(got, ids[5:]) {
		t.Errorf("pending after requeue %v, want %v", got, ids[5:])
	}

	// A long replay reports progress on the way (here: after every event).
	var out, progress bytes.Buffer
	if _, err := clients.Replay(ctx, clients.ReplayOptions{
		Log: clients.LogQuery{Server: g.url, Token: g.token}, Out: &out,
		Progress: &progress, ProgressEvery: time.Nanosecond,
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "replay: 5 events written") || !strings.Contains(progress.String(), "at "+ids[4]) ||
		!strings.Contains(progress.String(), "replay: done: 10 events written") {
		t.Errorf("progress lines:\n%s", progress.String())
	}

	// One event is "1 event", never "1 events".
	progress.Reset()
	if _, err := clients.Replay(ctx, clients.ReplayOptions{
		Log: clients.LogQuery{Server: g.url, Token: g.token, Since: ids[0], Until: ids[1]}, Out: io.Discard,
		Progress: &progress, ProgressEvery: time.Nanosecond,
	}); err != nil {
		t.Fatal(err)
	}
	if p := progress.String(); !strings.Contains(p, "replay: 1 event written") || !strings.Contains(p, "replay: done: 1 event written") || strings.Contains(p, "1 events") {
		t.Errorf("progress lines for one event:\n%s", p)
	}
}

// TestReplayToDoesNotFollowRedirects: a receiver answering 302 has not
// taken the event. Following the redirect would turn the POST into a GET
// whose 2xx would count as delivered; instead the 3xx is a permanent
// failure that says it was a redirect, through the library (with its own
// client or a caller's that follows redirects) and through hookgate replay.
func TestReplayToDoesNotFollowRedirects(t *testing.T) {
	var (
		mu      sync.Mutex
		reached int // requests that got past the redirect
	)
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/moved", http.StatusFound)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reached++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	recv := httptest.NewServer(mux)
	defer recv.Close()

	for _, client := range []*http.Client{nil, {}} {
		s := &clients.WebhookSender{URL: recv.URL + "/hook", Secret: newSecret(t), HTTPClient: client}
		err := s.Send(context.Background(), clients.Event{ID: "1-0", Label: "moved", Raw: []byte(`{"id":"1-0"}`)})
		var sendErr *clients.SendError
		if !errors.As(err, &sendErr) || !sendErr.Permanent || sendErr.Attempts != 1 {
			t.Fatalf("client %v: Send to a 302 returned %v, want a permanent *SendError after one attempt", client, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "302") || !strings.Contains(msg, "redirect") || !strings.Contains(msg, "/moved") {
			t.Errorf("the error does not say it was a redirect, and to where: %v", err)
		}
	}

	g := startHookgate(t)
	url, secret := g.register(t, "moved")
	sortedIDs(t, url, secret, 3)
	_, stderr, code := runBinary(t, nil, "replay", "--server", g.url, "--token", g.token,
		"--to", recv.URL+"/hook", "--secret", newSecret(t))
	if code == 0 || !strings.Contains(stderr, "redirect") || !strings.Contains(stderr, "resume with --since 0-0") {
		t.Errorf("replay --to a 302: exit %d, stderr:\n%s", code, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if reached != 0 {
		t.Errorf("%d requests followed the redirect", reached)
	}
}

// TestReplayFiltersByLabelAndType: with two webhooks each holding events of
// two types, interleaved, hookgate replay --label prints only that
// webhook's events, --type only that type's (across both webhooks, and as
// a prefix with a trailing *), and both together only what matches both,
// each in log order.
func TestReplayFiltersByLabelAndType(t *testing.T) {
	g := startHookgate(t)
	type posted struct{ id, label, typ string }
	var all []posted
	urls, secrets := map[string]string{}, map[string]string{}
	for _, label := range []string{"shop", "billing"} {
		urls[label], secrets[label] = g.register(t, label)
	}
	for i := range 12 {
		label := []string{"shop", "billing"}[i%2]
		typ := []string{"order.created", "invoice.paid", "invoice.failed"}[i%3]
		id, err := postTyped(urls[label], secrets[label], i, typ)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, posted{id, label, typ}) // posted one at a time: log order
	}
	want := func(keep func(posted) bool) []string {
		var ids []string
		for _, p := range all {
			if keep(p) {
				ids = append(ids, p.id)
			}
		}
		return ids
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--label", "shop"}, want(func(p posted) bool { return p.label == "shop" })},
		{[]string{"--label", "billing"}, want(func(p posted) bool { return p.label == "billing" })},
		{[]string{"--type", "order.created"}, want(func(p posted) bool { return p.typ == "order.created" })},
		{[]string{"--type", "invoice.*"}, want(func(p posted) bool { return strings.HasPrefix(p.typ, "invoice.") })},
		{[]string{"--label", "billing", "--type", "invoice.paid"}, want(func(p posted) bool { return p.label == "billing" && p.typ == "invoice.paid" })},
	} {
		if len(tc.want) == 0 || len(tc.want) == len(all) {
			t.Fatalf("%v: the case selects %d of %d events, so it cannot tell a filter from none", tc.args, len(tc.want), len(all))
		}
		stdout, stderr, code := runBinary(t, nil, append([]string{"replay", "--server", g.url, "--token", g.token}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, stderr)
		}
		var got []string
		for line := range strings.Lines(stdout) {
			var e clients.Event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("%v: line %q: %v", tc.args, line, err)
			}
			got = append(got, e.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("replay %v printed %v, want %v", tc.args, got, tc.want)
		}
	}
}
