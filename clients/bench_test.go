package clients_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
	"github.com/hookgate/hookgate/clients"
	"github.com/hookgate/hookgate/server"
)

// ReplayBenchEvents is how many events BenchmarkReplay1M replays (`make
// bench` runs it; `make test` runs no benchmarks).
const ReplayBenchEvents = 1_000_000

// BenchmarkReplay1M measures hookgate replay's rate over a log of
// ReplayBenchEvents events: written straight into a bbolt file through
// the store API, served by the real binary on loopback, and replayed with
// clients.Replay, the code behind `hookgate replay`, (1) as NDJSON to
// io.Discard (the default, stdout) and (2) with --to to a loopback
// receiver that reads each body and answers 204. Each phase must deliver
// every event exactly once, in order. It reports events/s and the CPU per
// event of the server and of this process (the replaying client, plus
// the receiver in phase 2).
func BenchmarkReplay1M(b *testing.B) {
	dir := b.TempDir()
	token := prefillLog(b, dir, ReplayBenchEvents)
	url, pid := startBinary(b, dir)
	ctx := context.Background()

	for range b.N {
		// Phase 1: NDJSON to io.Discard, counting lines as they go.
		lines := &lineCounter{}
		srv0, me0, t0 := cpuOfPid(b, pid), selfCPU(), time.Now()
		res, err := clients.Replay(ctx, clients.ReplayOptions{
			Log: clients.LogQuery{Server: url, Token: token, Since: "0-0"},
			Out: lines,
		})
		elapsed := time.Since(t0)
		srvCPU, meCPU := cpuOfPid(b, pid)-srv0, selfCPU()-me0
		if err != nil || res.Events != ReplayBenchEvents || lines.n.Load() != ReplayBenchEvents {
			b.Fatalf("NDJSON replay: %+v, %d lines, %v; want %d", res, lines.n.Load(), err, ReplayBenchEvents)
		}
		n := float64(ReplayBenchEvents)
		b.ReportMetric(n, "events")
		b.ReportMetric(n/elapsed.Seconds(), "ndjson_events/s")
		b.ReportMetric(float64(srvCPU.Microseconds())/n, "ndjson_server_cpu_us/event")
		b.ReportMetric(float64(meCPU.Microseconds())/n, "ndjson_client_cpu_us/event")

		// Phase 2: signed POSTs to a loopback receiver, one at a time.
		var (
			got  atomic.Int64
			mu   sync.Mutex
			last string
			bad  string
		)
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			id := r.Header.Get("webhook-id")
			mu.Lock()
			if last != "" && !idBefore(last, id) && bad == "" {
				bad = fmt.Sprintf("%s after %s", id, last)
			}
			last = id
			mu.Unlock()
			got.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}))
		srv0, me0, t0 = cpuOfPid(b, pid), selfCPU(), time.Now()
		res, err = clients.Replay(ctx, clients.ReplayOptions{
			Log:    clients.LogQuery{Server: url, Token: token, Since: "0-0"},
			To:     recv.URL,
			Secret: "whsec_" + "YmVuY2htYXJrLXNlY3JldC1rZXktMzJieXRlcyE=",
		})
		elapsed = time.Since(t0)
		srvCPU, meCPU = cpuOfPid(b, pid)-srv0, selfCPU()-me0
		recv.Close()
		if err != nil || res.Events != ReplayBenchEvents || got.Load() != ReplayBenchEvents || bad != "" {
			b.Fatalf("--to replay: %+v, %d received, %v, order %q", res, got.Load(), err, bad)
		}
		b.ReportMetric(n/elapsed.Seconds(), "webhook_events/s")
		b.ReportMetric(float64(srvCPU.Microseconds())/n, "webhook_server_cpu_us/event")
		b.ReportMetric(float64(meCPU.Microseconds())/n, "webhook_client_cpu_us/event")
	}
}

// lineCounter is an io.Writer that counts newlines.
type lineCounter struct{ n atomic.Int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}

func idBefore(a, b string) bool {
	pa, _ := store.ParseID(a)
	pb, _ := store.ParseID(b)
	return pa.Compare(pb) < 0
}

// prefillLog writes n events of one registration into dir/hookgate.db
// through the bolt backend with fsync off, from many goroutines (the
// committer folds them into large transactions), and returns a token.
func prefillLog(b *testing.B, dir string, n int) string {
	b.Helper()
	st, err := bolt.Open(filepath.Join(dir, "hookgate.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	token, err := server.CreateToken(ctx, st, "bench", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	reg := store.Registration{ID: "wh_replaybench", Principal: "bench", Label: "bench", Provider: "generic",
		Secrets: []string{"s"}, CreatedAt: time.Now().UTC()}
	if err := st.PutRegistration(ctx, reg); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	for range 256 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				id := "evt-" + strconv.FormatInt(i, 10)
				_, err := st.Append(ctx, store.NewEvent{
					Principal: "bench", RegistrationID: reg.ID, Label: reg.Label, Source: "generic",
					Type: "bench.created", ProviderEventID: id, ReceivedAt: time.Now().UTC(), Verified: true,
					Payload: json.RawMessage(fmt.Sprintf(`{"id":%q,"type":"bench.created","amount":%d,"currency":"usd"}`, id, i%10000)),
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	return token
}

// startBinary runs `hookgate serve` on dir and returns its URL and pid.
func startBinary(b *testing.B, dir string) (string, int) {
	b.Helper()
	cmd := exec.Command(hookgateBinary(b), "serve", "--addr", "127.0.0.1:0", "--data", dir, "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Listening:"); ok {
				found <- strings.TrimSpace(v)
			}
		}
		close(found)
	}()
	select {
	case url, ok := <-found:
		if !ok {
			b.Fatal("hookgate exited before printing its address")
		}
		return url, cmd.Process.Pid
	case <-time.After(60 * time.Second):
		b.Fatal("no banner within 60 s")
	}
	return "", 0
}

// cpuOfPid is a process's user + system CPU time from /proc/<pid>/stat.
func cpuOfPid(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	var ticks int64
	for _, f := range fields[11:13] {
		n, _ := strconv.ParseInt(f, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100
}

// selfCPU is this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
