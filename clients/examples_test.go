package clients_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestExamplesRun runs the examples as the README tells a user to: the
// polling agent handles what is pending, the pushed agent continues from
// the same checkpoint with what arrives next, and after recover --since 0-0
// the polling agent does everything over.
func TestExamplesRun(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator), "./examples/poll", "./examples/push", "./examples/recover")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build examples: %v\n%s", err, out)
	}
	g := startHookgate(t)
	url, secret := g.register(t, "ex")
	checkpoint := filepath.Join(t.TempDir(), "agent.checkpoint.json")
	env := append(os.Environ(), "HOOKGATE_SERVER="+g.url, "HOOKGATE_TOKEN="+g.token, "HOOKGATE_LABEL=ex", "AGENT_CHECKPOINT="+checkpoint)

	first, err := postMany(url, secret, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := runAgent(t, filepath.Join(bin, "poll"), env, 3); !sameSet(got, first) {
		t.Fatalf("poll handled %v, want %v", got, first)
	}
	waitUntil(t, 10*time.Second, "the polled events acked", func() bool { return pendingOn(t, g, "ex") == 0 })

	// The pushed agent resumes after the checkpoint: only what is new.
	var next []string
	agent := startAgent(t, filepath.Join(bin, "push"), env)
	var more []string
	for i := 3; i < 5; i++ { // new provider IDs: postMany's would be duplicates
		id, err := post(url, secret, i)
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, id)
	}
	next = agent.stop(t, 2)
	if !sameSet(next, more) {
		t.Fatalf("push handled %v, want only the new %v", next, more)
	}
	waitUntil(t, 10*time.Second, "the pushed events acked", func() bool { return pendingOn(t, g, "ex") == 0 })

	// Recovery: everything pending again, and the agent redoes it all.
	recover := exec.Command(filepath.Join(bin, "recover"), "--checkpoint", checkpoint, "--since", "0-0")
	recover.Env = env
	if out, err := recover.CombinedOutput(); err != nil || !strings.Contains(string(out), "5 events after 0-0 are pending again") {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	if got := runAgent(t, filepath.Join(bin, "poll"), env, 5); !sameSet(got, append(first, more...)) {
		t.Fatalf("after recover, poll handled %v, want all 5", got)
	}
}

// agentProc is an example agent running as a process; it prints one line
// per event handled, starting with the event ID.
type agentProc struct {
	cmd  *exec.Cmd
	ids  chan string
	done chan error
	mu   sync.Mutex
	out  strings.Builder
}

func startAgent(t *testing.T, path string, env []string) *agentProc {
	t.Helper()
	a := &agentProc{cmd: exec.Command(path), ids: make(chan string, 100), done: make(chan error, 1)}
	a.cmd.Env = env
	a.cmd.Stderr = &lockedBuffer{}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if id, _, ok := strings.Cut(sc.Text(), " "); ok {
				a.ids <- id
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		a.done <- a.cmd.Wait()
	}()
	return a
}

// stop waits for n events, interrupts the agent as Ctrl-C would, and
// checks it exits cleanly; it returns the IDs handled.
func (a *agentProc) stop(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case id := <-a.ids:
			got = append(got, id)
		case <-deadline:
			t.Fatalf("agent handled %v, want %d events; stderr:\n%s", got, n, a.cmd.Stderr)
		}
	}
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("agent exited with %v after Ctrl-C; stderr:\n%s", err, a.cmd.Stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not exit after Ctrl-C")
	}
	for {
		select {
		case id := <-a.ids:
			got = append(got, id)
		default:
			return got
		}
	}
}

func runAgent(t *testing.T, path string, env []string, n int) []string {
	t.Helper()
	return startAgent(t, path, env).stop(t, n)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]int)
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
