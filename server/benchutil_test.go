package server_test

// Helpers for bench_test.go: the bare baseline server, the load generator,
// the direct store prefill and the /proc memory reader. Nothing here is a
// Test, so `go test` without -bench runs none of it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/bridge/store/bolt"
	"github.com/hookgate/hookgate/server"
)

// bareServerEnv, when set, makes TestMain serve the bare baseline instead of
// running tests: the benchmark re-executes its own binary with it.
const bareServerEnv = "HOOKGATE_BENCH_BARE_SERVER"

// barePrefix starts the line on which the bare server prints its URL.
const barePrefix = "BARE "

// serveBare is the child side of startBare: a net/http server on a free
// loopback port whose handler only reads the body and answers 200, the
// cheapest server a webhook could hit. It prints its URL, then serves until
// its stdin closes, which happens when the parent closes the pipe or dies,
// so it never outlives the benchmark. It returns the exit code.
func serveBare() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare server:", err)
		return 1
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Printf("%shttp://%s\n", barePrefix, ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "bare server:", err)
		return 1
	}
	return 0
}

// startBare runs the bare baseline as a separate process, as hookgate runs,
// so that the ratio compares two servers under the same conditions (own
// process, own scheduler, loopback TCP). It returns the server's base URL
// and process ID.
func startBare(tb testing.TB) (url string, pid int) {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), bareServerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start bare server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = stdin.Close() // the child exits when its stdin closes
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), barePrefix); ok {
				found <- url
				break
			}
		}
		close(found)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case url, ok := <-found:
		if !ok {
			tb.Fatal("bare server exited before printing its URL")
		}
		return url, cmd.Process.Pid
	case <-time.After(10 * time.Second):
		tb.Fatal("bare server printed no URL within 10s")
	}
	return "", 0
}

// skipIfInstrumented skips a benchmark that compares hookgate with the bare
// baseline when this test binary is built with -race or -cover: the baseline
// is this binary, so it would be slowed down while hookgate (built plainly
// by TestMain) is not, and the ratio would flatter hookgate.
func skipIfInstrumented(b *testing.B) {
	b.Helper()
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	for _, s := range info.Settings {
		if (s.Key == "-race" || s.Key == "-cover") && s.Value == "true" {
			b.Skipf("built with %s: the bare baseline (this binary) would be instrumented and hookgate not", s.Key)
		}
	}
}

// loadGen sends signed generic webhooks to one URL. The same code drives
// hookgate and the bare baseline, so the client-side cost (body building,
// HMAC signing, HTTP/1.1 keep-alive) is identical for both and the ratio
// reflects the servers only. Every body carries a fresh `id`, so hookgate
// never sees a duplicate.
type loadGen struct {
	client *http.Client
	url    string
	secret string
	prefix string // makes ids unique across generators and runs
	pad    string // when set, every body carries it as "pad" (the push benchmarks' larger events)
	seq    atomic.Uint64
}

// newLoadGen returns a generator with its own connection pool of conns
// keep-alive connections, so that generators never share connections.
func newLoadGen(tb testing.TB, url, secret string, conns int) *loadGen {
	tb.Helper()
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &loadGen{
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		url:    url,
		secret: secret,
		prefix: "bench-" + strings.ToLower(rand.Text()[:10]),
	}
}

// request builds the next signed webhook POST. send and the push
// benchmarks' post (bench_push_test.go) both use it, so every benchmark
// sends bodies of the same shape.
func (g *loadGen) request(ctx context.Context) (*http.Request, error) {
	n := g.seq.Add(1)
	body := fmt.Appendf(nil, `{"id":"%s-%d","type":"bench.created","amount":%d,"currency":"usd"`, g.prefix, n, n%10000)
	if g.pad != "" {
		body = fmt.Appendf(body, `,"pad":%q`, g.pad)
	}
	body = append(body, '}')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Webhook-Signature", signGeneric(g.secret, body))
	return req, nil
}

// send posts one new webhook and reports an error unless it got a 200.
func (g *loadGen) send(ctx context.Context) error {
	req, err := g.request(ctx)
	if err != nil {
		return err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body) // drain, so the connection is reused
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: status %d", g.url, resp.StatusCode)
	}
	return nil
}

// loadStats is what one load phase measured.
type loadStats struct {
	ok        int             // requests answered 200
	failed    int             // transport errors and other statuses
	firstErr  error           // the first failure, for the report
	elapsed   time.Duration   // wall time from the first send to the last answer
	latencies []time.Duration // one per 200 answer
}

// rate is the 200 answers per second of wall time.
func (s loadStats) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ok) / s.elapsed.Seconds()
}

// quantileMS returns the q-quantile latency (nearest rank) in milliseconds.
func (s loadStats) quantileMS(q float64) float64 {
	if len(s.latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(s.latencies)
	slices.Sort(sorted)
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// merge adds another phase's figures, for targets measured in rounds.
func (s *loadStats) merge(o loadStats) {
	s.ok += o.ok
	s.failed += o.failed
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
	s.elapsed += o.elapsed
	s.latencies = append(s.latencies, o.latencies...)
}

// collector gathers the workers' results of one phase.
type collector struct {
	mu sync.Mutex
	st loadStats
}

func (c *collector) add(lat []time.Duration, failed int, firstErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.ok += len(lat)
	c.st.failed += failed
	if c.st.firstErr == nil {
		c.st.firstErr = firstErr
	}
	c.st.latencies = append(c.st.latencies, lat...)
}

// closedLoop runs workers goroutines that each send, wait for the answer and
// send again until d has passed: the highest rate the target sustains with
// that many requests in flight. Latency is per request, from send to answer.
func (g *loadGen) closedLoop(ctx context.Context, workers int, d time.Duration) loadStats {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second) // bounds a stuck request
	defer cancel()
	var c collector
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for range workers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			failed := 0
			var firstErr error
			for time.Now().Before(stop) {
				t0 := time.Now()
				if err := g.send(ctx); err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
					if ctx.Err() != nil {
						break
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			c.add(lat, failed, firstErr)
		})
	}
	wg.Wait()
	c.st.elapsed = time.Since(start)
	return c.st
}

// openLoop sends at a fixed rate for d, whatever the answers do: request i is
// due at start + i/rate, independent of earlier answers. Latency is measured
// from that scheduled time, not from the actual send, so a stall that delays
// later sends counts against every request it delays (no coordinated
// omission). workers bounds the requests in flight; a request that finds
// them all busy waits in the queue, and that wait is part of its latency.
func (g *loadGen) openLoop(ctx context.Context, rate float64, d time.Duration, workers int) loadStats {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	total := max(int(rate*d.Seconds()), 1)
	interval := time.Duration(float64(time.Second) / rate)
	due := make(chan time.Time, total) // never blocks the pacer
	var c collector
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, total/workers+1)
			failed := 0
			var firstErr error
			for at := range due {
				if err := g.send(ctx); err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(at))
			}
			c.add(lat, failed, firstErr)
		})
	}

	start := time.Now()
	timer := time.NewTimer(time.Hour) // reset before every wait
	defer timer.Stop()
pace:
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break pace
			}
		}
		due <- at // late wake-ups release every overdue request at once
	}
	close(due)
	wg.Wait()
	c.st.elapsed = time.Since(start)
	return c.st
}

// requireNoFailures fails the benchmark if any request of a phase failed:
// a figure that includes errors is not a throughput.
func requireNoFailures(tb testing.TB, what string, s loadStats) {
	tb.Helper()
	if s.failed > 0 {
		tb.Fatalf("%s: %d of %d requests failed; first: %v", what, s.failed, s.ok+s.failed, s.firstErr)
	}
}

// benchPrincipal owns everything prefillStore writes.
const benchPrincipal = "bench"

// prefilled is what prefillStore created.
type prefilled struct {
	token  string // bearer token of benchPrincipal
	label  string
	secret string  // the generic registration's signing secret
	rate   float64 // appends per second while prefilling
}

// prefillStore writes n pending events of one generic registration straight
// into dataDir/hookgate.db (the file `hookgate serve --data dataDir` opens)
// through the bolt backend with fsync off, from many goroutines so that the
// committer folds them into large transactions. This takes seconds where
// posting them through ingress would take minutes, and the file is the one
// the server would have written. The store is closed before it returns, so
// the binary can open it.
func prefillStore(tb testing.TB, dataDir string, n int) prefilled {
	tb.Helper()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(dataDir, "hookgate.db"), bolt.Options{NoSync: true})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	token, err := server.CreateToken(ctx, st, benchPrincipal, now)
	if err != nil {
		tb.Fatal(err)
	}
	p := prefilled{token: token, label: "bench", secret: "whsec_bench_" + rand.Text()}
	reg := store.Registration{
		ID:        "wh_" + strings.ToLower(rand.Text()),
		Principal: benchPrincipal,
		Label:     p.label,
		Provider:  "generic",
		Secrets:   []string{p.secret},
		CreatedAt: now.UTC(),
	}
	if err := st.PutRegistration(ctx, reg); err != nil {
		tb.Fatalf("put registration: %v", err)
	}

	const writers = 256
	var next atomic.Int64
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				id := "evt-" + strconv.FormatInt(i, 10)
				_, err := st.Append(ctx, store.NewEvent{
					Principal:       benchPrincipal,
					RegistrationID:  reg.ID,
					Label:           reg.Label,
					Source:          "generic",
					Type:            "bench.created",
					ProviderEventID: id,
					ReceivedAt:      time.Now().UTC(),
					Verified:        true,
					Payload:         json.RawMessage(fmt.Sprintf(`{"id":%q,"type":"bench.created","amount":%d,"currency":"usd"}`, id, i%10000)),
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	p.rate = float64(n) / time.Since(start).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatalf("prefill: %v", err)
	}
	if err := st.Close(); err != nil {
		tb.Fatalf("close prefilled store: %v", err)
	}
	return p
}

// procMemory reads a process's memory figures from /proc/<pid>/status, in
// MiB, keyed by field name (VmRSS, VmHWM, RssAnon, RssFile, …).
func procMemory(tb testing.TB, pid int) map[string]float64 {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatalf("read memory of pid %d: %v", pid, err)
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(raw)) {
		name, rest, ok := strings.Cut(line, ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseFloat(fields[0], 64)
		if err == nil {
			out[name] = kb / 1024
		}
	}
	if _, ok := out["VmRSS"]; !ok {
		tb.Fatalf("/proc/%d/status has no VmRSS", pid)
	}
	return out
}

// clockTick is USER_HZ, the unit of the CPU times in /proc/<pid>/stat; it is
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime returns the user plus system CPU time the process has used so
// far, from /proc/<pid>/stat (all its threads, including exited ones). The
// benchmarks divide it by requests served: CPU per request is less
// disturbed by other load on a shared machine than requests per second.
func cpuTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("read CPU time of pid %d: %v", pid, err)
	}
	// Fields after the parenthesised command name, which may hold spaces
	// and parentheses: state is field 3, utime 14 and stime 15 (proc(5)).
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(fields) < 13 {
		tb.Fatalf("/proc/%d/stat: too few fields: %q", pid, raw)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/%d/stat: bad CPU time %q", pid, f)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}

// machineCPU is the machine-wide CPU time from the first line of /proc/stat:
// busy (everything but idle and iowait) and idle, summed over CPUs.
type machineCPU struct{ busy, idle time.Duration }

// readMachineCPU samples /proc/stat.
func readMachineCPU(tb testing.TB) machineCPU {
	tb.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		tb.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	var m machineCPU
	for i, f := range fields[1:9] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/stat: bad field %q", f)
		}
		if d := time.Duration(n) * clockTick; i == 3 || i == 4 {
			m.idle += d // idle and iowait: nobody could use the CPU
		} else {
			m.busy += d
		}
	}
	return m
}

// cpuUse is the CPU time spent during a load phase by the server under
// test, by this process (the load generator) and by the whole machine. On
// a small shared machine it tells a slow server from a busy neighbour: the
// machine's busy time minus the two known processes is what other work
// took, and idle time says whether the phase was short of CPU at all.
type cpuUse struct {
	server, client time.Duration
	machine        machineCPU
}

// measureCPU runs fn and returns the CPU time used while it ran.
func measureCPU(tb testing.TB, serverPID int, fn func()) cpuUse {
	tb.Helper()
	s0, c0, m0 := cpuTime(tb, serverPID), cpuTime(tb, os.Getpid()), readMachineCPU(tb)
	fn()
	s1, c1, m1 := cpuTime(tb, serverPID), cpuTime(tb, os.Getpid()), readMachineCPU(tb)
	return cpuUse{server: s1 - s0, client: c1 - c0, machine: machineCPU{busy: m1.busy - m0.busy, idle: m1.idle - m0.idle}}
}

// add accumulates another phase.
func (u *cpuUse) add(o cpuUse) {
	u.server += o.server
	u.client += o.client
	u.machine.busy += o.machine.busy
	u.machine.idle += o.machine.idle
}

// otherCores is the average number of cores that processes other than the
// server and the generator used over elapsed (approximate: /proc/stat and
// the per-process times are sampled at slightly different instants).
func (u cpuUse) otherCores(elapsed time.Duration) float64 {
	return max((u.machine.busy-u.server-u.client).Seconds(), 0) / elapsed.Seconds()
}

// idleCores is the average number of idle cores over elapsed.
func (u cpuUse) idleCores(elapsed time.Duration) float64 {
	return u.machine.idle.Seconds() / elapsed.Seconds()
}

// perRequestUS returns d in microseconds per request.
func perRequestUS(d time.Duration, requests int) float64 {
	if requests == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(requests)
}

// pendingCount returns list_webhooks' pending count for label, which the
// server computes from the store: the benchmarks use it to check that every
// 200 they counted is one stored event.
func pendingCount(tb testing.TB, cs *mcp.ClientSession, label string) int {
	tb.Helper()
	hooks, _ := mustTool(tb, cs, "list_webhooks", nil).Structured["webhooks"].([]any)
	for _, h := range hooks {
		m, _ := h.(map[string]any)
		if m["label"] == label {
			n, _ := m["pending"].(float64)
			return int(n)
		}
	}
	tb.Fatalf("list_webhooks has no webhook labelled %q", label)
	return 0
}

// leaseAckRound is one agent turn on the tools path: poll_events with limit
// 50, then one ack_event with event_ids for the whole batch. It returns how
// many events it acked (0 once nothing is pending). It returns errors rather
// than failing, because agents run on their own goroutines.
func leaseAckRound(ctx context.Context, cs *mcp.ClientSession) (int, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "poll_events", Arguments: map[string]any{"limit": 50}})
	if err != nil {
		return 0, fmt.Errorf("poll_events: %w", err)
	}
	if res.IsError || len(res.Content) == 0 {
		return 0, fmt.Errorf("poll_events failed: %+v", res.Content)
	}
	text, _ := res.Content[0].(*mcp.TextContent)
	if text == nil {
		return 0, errors.New("poll_events: no text content")
	}
	var events []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(text.Text), &events); err != nil {
		return 0, fmt.Errorf("poll_events text is not a JSON array: %w", err)
	}
	if len(events) == 0 {
		return 0, nil
	}
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "ack_event", Arguments: map[string]any{"event_ids": ids}})
	if err != nil {
		return 0, fmt.Errorf("ack_event: %w", err)
	}
	if res.IsError {
		return 0, fmt.Errorf("ack_event failed: %+v", res.Content)
	}
	return len(ids), nil
}
