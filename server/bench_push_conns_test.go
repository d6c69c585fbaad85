package server_test

// Raw connections of the push benchmarks: SSE read off the socket,
// ten thousand idle subscribers, stuck readers and their kernel queues.

import (
	"bufio"
	"bytes"
	"context"
	byteorder "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sseConn is one GET /v1/stream over a raw TCP connection. Ten thousand of
// these must cost this process little, so there is no http.Client (whose
// transport keeps two goroutines and two 4 KiB buffers per connection):
// one bufio.Reader under http.ReadResponse, which undoes the chunked
// encoding, and a small one for the lines.
type sseConn struct {
	conn       net.Conn
	lines      *bufio.Reader
	heartbeats int // comment lines seen; read only by the conn's reader
}

// dialSSE connects to GET /v1/stream at addr with query (e.g.
// "?after=<id>"), checks the answer is a 200 event stream, and reads the
// preamble (the `retry:` line and the starting cursor): once it returns
// the feed is following the log. rcvbuf > 0 sets SO_RCVBUF before
// connecting.
func dialSSE(ctx context.Context, addr, token, query string, rcvbuf int) (*sseConn, error) {
	conn, err := dialRaw(ctx, addr, rcvbuf)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(handshakeWait))
	c, err := readSSEHandshake(conn, addr, token, query)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

func readSSEHandshake(conn net.Conn, addr, token, query string) (*sseConn, error) {
	if _, err := fmt.Fprintf(conn, "GET /v1/stream%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", query, addr, token); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("GET /v1/stream: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	c := &sseConn{conn: conn, lines: bufio.NewReaderSize(resp.Body, 2048)}
	retry := false
	for {
		line, err := c.line()
		if err != nil {
			return nil, fmt.Errorf("GET /v1/stream preamble: %w", err)
		}
		if len(line) == 0 {
			break
		}
		retry = retry || bytes.HasPrefix(line, []byte("retry:"))
	}
	if !retry {
		return nil, errors.New("GET /v1/stream: the preamble has no retry: line")
	}
	return c, nil
}

// dialRaw opens a loopback TCP connection, with SO_RCVBUF set before the
// handshake when rcvbuf > 0 (so that the window it advertises is small).
func dialRaw(ctx context.Context, addr string, rcvbuf int) (net.Conn, error) {
	d := net.Dialer{Timeout: handshakeWait}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// line reads one line without its line ending; the slice is valid until
// the next read.
func (c *sseConn) line() ([]byte, error) {
	line, err := c.lines.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := slices.Clone(line)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.lines.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// next returns the ID of the next event, skipping comments (counted as
// heartbeats) and blocks without data. An event whose data is not the
// event its id: line names is an errMalformed.
func (c *sseConn) next() (string, error) {
	var id string
	data, match := false, false
	for {
		line, err := c.line()
		if err != nil {
			return "", err
		}
		switch {
		case len(line) == 0:
			if data {
				if !match {
					return id, fmt.Errorf("%w: SSE event %s: data is not that event", errMalformed, id)
				}
				return id, nil
			}
			id = ""
		case line[0] == ':':
			c.heartbeats++
		case bytes.HasPrefix(line, []byte("id:")):
			id = string(bytes.TrimSpace(line[3:]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = true
			match = id != "" && bytes.Contains(line, []byte(`"id":"`+id+`"`))
		}
	}
}

// fanSub is one idle subscriber of BenchmarkPushFanout10k and what it
// received. Only its reader goroutine writes it; the benchmark reads it
// after fanout.close has waited for every reader.
type fanSub struct {
	conn *sseConn
	ids  [fanoutRounds]string
	at   [fanoutRounds]time.Time
	n    int   // events received
	err  error // a malformed event, or the stream ending before close
}

// fanout is BenchmarkPushFanout10k's subscribers. got[i] counts the
// subscribers that have received their i-th event; the one that completes
// the count closes done[i], so the benchmark waits on a channel rather
// than polling ten thousand counters.
type fanout struct {
	subs    []fanSub
	got     [fanoutRounds]atomic.Int64
	done    [fanoutRounds]chan struct{}
	closing atomic.Bool
	readers sync.WaitGroup
}

// openFanout connects n SSE subscribers to addr, at most fanoutDialers at
// a time, each with its own reader goroutine, and returns once every one
// has read its preamble. It fails the benchmark if any could not connect.
func openFanout(b *testing.B, addr, token, query string, n int) *fanout {
	b.Helper()
	f := &fanout{subs: make([]fanSub, n)}
	for i := range f.done {
		f.done[i] = make(chan struct{})
	}
	sem := make(chan struct{}, fanoutDialers)
	var ready sync.WaitGroup // every dial bounded by handshakeWait
	var failed atomic.Int64
	errs := make(chan error, 1)
	for i := range f.subs {
		sem <- struct{}{}
		ready.Add(1)
		f.readers.Go(func() {
			c, err := dialSSE(b.Context(), addr, token, query, 0)
			<-sem
			if err != nil {
				failed.Add(1)
				select {
				case errs <- err:
				default:
				}
				ready.Done()
				return
			}
			f.subs[i].conn = c
			ready.Done()
			f.read(&f.subs[i])
		})
	}
	ready.Wait()
	b.Cleanup(func() { f.close() })
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d SSE subscribers could not connect; first: %v", n, len(f.subs), <-errs)
	}
	return f
}

// read is one subscriber's reader: it keeps the arrival time of each of
// the first fanoutRounds events and counts the rest (there should be none).
func (f *fanout) read(s *fanSub) {
	for {
		id, err := s.conn.next()
		at := time.Now()
		if err != nil {
			if !f.closing.Load() || errors.Is(err, errMalformed) {
				s.err = err
			}
			return
		}
		if s.n < fanoutRounds {
			s.ids[s.n], s.at[s.n] = id, at
			if f.got[s.n].Add(1) == int64(len(f.subs)) {
				close(f.done[s.n])
			}
		}
		s.n++
	}
}

// close closes every connection (idempotent), waits for the readers and
// returns the heartbeats they saw.
func (f *fanout) close() int {
	if f.closing.Swap(true) {
		return 0
	}
	for i := range f.subs {
		if c := f.subs[i].conn; c != nil {
			c.conn.Close()
		}
	}
	f.readers.Wait()
	hb := 0
	for i := range f.subs {
		if c := f.subs[i].conn; c != nil {
			hb += c.heartbeats
		}
	}
	return hb
}

// ensureFDs makes sure this process, and the gateway it starts afterwards
// (which inherits the limit), may each open need descriptors: it raises
// the soft RLIMIT_NOFILE toward the hard one if needed and skips the
// benchmark if the hard limit is lower. It always sets the limit
// explicitly, because Go raises its own soft limit at start-up and gives
// children the original one unless the program called Setrlimit itself.
func ensureFDs(b *testing.B, need int) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Max < uint64(need) {
		b.Skipf("RLIMIT_NOFILE hard limit %d < %d descriptors needed", lim.Max, need)
	}
	lim.Cur = max(lim.Cur, uint64(need))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("raise RLIMIT_NOFILE to %d: %v", lim.Cur, err)
	}
	b.Logf("RLIMIT_NOFILE soft %d, hard %d (this process and the gateway)", lim.Cur, lim.Max)
}

// waitServerIdle polls the server's CPU time until it stops growing for
// two samples (the work of the previous round, such as the feeds' second,
// empty read, is done), or 2 s pass, so that one fan-out round does not
// start inside the tail of the one before.
func waitServerIdle(tb testing.TB, pid int) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Second)
	last, still := cpuTime(tb, pid), 0
	for still < 2 && time.Now().Before(deadline) {
		time.Sleep(2 * clockTick) // polling against a deadline
		now := cpuTime(tb, pid)
		if now == last {
			still++
		} else {
			still = 0
		}
		last = now
	}
}

// stuckSubs are BenchmarkPushStuckSubscriber's subscribers that never
// read: one SSE feed and one 2025 MCP session's GET stream.
type stuckSubs struct {
	r       *pushRig
	opened  time.Time
	conns   map[string]net.Conn // "sse", "mcp"
	session string              // the MCP session, deleted by close
}

// openStuck connects the stuck subscribers with a small SO_RCVBUF, reads
// each response's headers (the SSE one also its preamble, so it is
// following the log) and never reads again. It checks that /proc/net/tcp
// shows both connections established, so waitCut's reading is sound.
func openStuck(b *testing.B, r *pushRig) *stuckSubs {
	b.Helper()
	addr := strings.TrimPrefix(r.g.url, "http://")
	s := &stuckSubs{r: r, conns: map[string]net.Conn{}}
	b.Cleanup(func() {
		for _, c := range s.conns {
			c.Close()
		}
	})
	sse, err := dialSSE(b.Context(), addr, r.g.token, "?label=push", stuckRcvbuf)
	if err != nil {
		b.Fatalf("stuck SSE subscriber: %v", err)
	}
	s.conns["sse"] = sse.conn

	s.session = legacySession(b, r.g.url, r.g.token, "hookgate://webhooks/push")
	conn, err := dialRaw(b.Context(), addr, stuckRcvbuf)
	if err != nil {
		b.Fatal(err)
	}
	s.conns["mcp"] = conn
	_ = conn.SetDeadline(time.Now().Add(handshakeWait))
	fmt.Fprintf(conn, "GET /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\nMcp-Protocol-Version: 2025-11-25\r\n\r\n", addr, r.g.token, s.session)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("stuck MCP GET stream: %v %v", resp, err)
	}
	_ = conn.SetDeadline(time.Time{})
	s.opened = time.Now()
	for name, c := range s.conns {
		if sock, ok := serverSideSocket(b, c); !ok || sock.state != tcpEstablished {
			b.Fatalf("stuck %s: /proc/net/tcp shows state %#x (found %v) for the server's end, want established", name, sock.state, ok)
		}
	}
	return s
}

// waitCut polls until the server has cut every stuck connection or d has
// passed since they were opened, and returns, per subscriber, how long
// after opening it was seen cut (0: not cut).
func (s *stuckSubs) waitCut(b *testing.B, d time.Duration) map[string]time.Duration {
	b.Helper()
	cut := map[string]time.Duration{}
	for time.Since(s.opened) < d && len(cut) < len(s.conns) {
		for name, c := range s.conns {
			if _, done := cut[name]; done {
				continue
			}
			if sock, ok := serverSideSocket(b, c); !ok || sock.state != tcpEstablished {
				cut[name] = time.Since(s.opened)
			}
		}
		time.Sleep(10 * pollEvery) // polling against a deadline
	}
	for name := range s.conns {
		if _, ok := cut[name]; !ok {
			cut[name] = 0
		}
	}
	return cut
}

// sendQueues returns the bytes queued in the kernel for each stuck
// subscriber on the server's side: what it wrote that the reader never
// took, which lives outside the server's RSS.
func (s *stuckSubs) sendQueues(b *testing.B) map[string]int {
	b.Helper()
	out := map[string]int{}
	for name, c := range s.conns {
		sock, _ := serverSideSocket(b, c)
		out[name] = sock.sendQ
	}
	return out
}

// close closes the stuck connections (the kernel resets them, unread data
// and all) and ends the MCP session, which would otherwise keep buffering
// notifications for a replay that never comes.
func (s *stuckSubs) close(b *testing.B) {
	b.Helper()
	for name, c := range s.conns {
		c.Close()
		delete(s.conns, name)
	}
	req, _ := http.NewRequestWithContext(b.Context(), http.MethodDelete, s.r.g.url+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+s.r.g.token)
	req.Header.Set("Mcp-Session-Id", s.session)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatalf("DELETE the stuck MCP session: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		b.Logf("DELETE the stuck MCP session: %d", resp.StatusCode)
	}
}

// legacySession initialises a 2025-11-25 MCP session over plain HTTP and
// subscribes it to uri; it returns the session ID. The SDK client cannot
// make a stuck subscriber: it reads its GET stream itself.
func legacySession(tb testing.TB, base, token, uri string) string {
	tb.Helper()
	var session string
	call := func(msg map[string]any) {
		tb.Helper()
		body, _ := json.Marshal(msg)
		req, _ := http.NewRequest(http.MethodPost, base+"/mcp", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Content-Type", "application/json")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		ctx, cancel := context.WithTimeout(context.Background(), handshakeWait)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			tb.Fatalf("%s: %v", msg["method"], err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body) // a POST's stream ends with its answer
		if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
			session = id
		}
		_, isRequest := msg["id"]
		if resp.StatusCode >= 300 || (isRequest && (!bytes.Contains(raw, []byte(`"result"`)) || bytes.Contains(raw, []byte(`"error"`)))) {
			tb.Fatalf("%s: %d %s", msg["method"], resp.StatusCode, raw)
		}
	}
	call(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "stuck-bench", "version": "1"},
	}})
	if session == "" {
		tb.Fatal("initialize returned no Mcp-Session-Id")
	}
	call(map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
	call(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": map[string]any{"uri": uri}})
	return session
}

// tcpEstablished is TCP_ESTABLISHED in /proc/net/tcp's st column.
const tcpEstablished = 0x01

// tcpSocket is one socket's line of /proc/net/tcp: its state and the
// bytes its send queue holds (written by the process, not yet acked).
type tcpSocket struct {
	state int
	sendQ int
}

// serverSideSocket returns the server's end of the client connection c
// (local = c's remote address, remote = c's local address) from
// /proc/net/tcp, which lists every IPv4 socket of this network namespace;
// ok is false when no socket has that address pair any more.
func serverSideSocket(tb testing.TB, c net.Conn) (s tcpSocket, ok bool) {
	tb.Helper()
	key := procTCPAddr(tb, c.RemoteAddr()) + " " + procTCPAddr(tb, c.LocalAddr())
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		// sl local_address rem_address st tx_queue:rx_queue ...
		fields := strings.Fields(line)
		if len(fields) < 5 || fields[1]+" "+fields[2] != key {
			continue
		}
		st, err1 := strconv.ParseInt(fields[3], 16, 32)
		tx, _, _ := strings.Cut(fields[4], ":")
		q, err2 := strconv.ParseInt(tx, 16, 64)
		if err1 != nil || err2 != nil {
			tb.Fatalf("/proc/net/tcp: cannot parse %q", line)
		}
		return tcpSocket{state: int(st), sendQ: int(q)}, true
	}
	return tcpSocket{}, false
}

// procTCPAddr formats an IPv4 TCP address as /proc/net/tcp does: the
// address as a 32-bit number in host byte order, in hex, and the port in
// hex.
func procTCPAddr(tb testing.TB, a net.Addr) string {
	tb.Helper()
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		tb.Fatalf("%v is not a TCP address", a)
	}
	ap := ta.AddrPort()
	ip := ap.Addr().Unmap()
	if !ip.Is4() {
		tb.Fatalf("%v is not IPv4", a)
	}
	b := ip.As4()
	return fmt.Sprintf("%08X:%04X", byteorder.NativeEndian.Uint32(b[:]), ap.Port())
}
