// Package redistest starts real redis-server processes for tests.
//
// Tests of the Redis store run against the server itself rather than a fake,
// because what they check (Lua atomicity, AOF reload after a crash, WAIT
// with a real replica, the errors a dead server produces) is exactly what a
// fake would get wrong. Each server listens on a free loopback port, keeps
// its files in the test's temporary directory and is killed when the test
// ends.
//
// When redis-server is not on PATH the test is skipped, except in CI (CI set
// to "true"), where a silent skip would hide a broken setup: there it fails.
// `make test` installs the server.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// missing is the message for a machine without redis-server.
const missing = "redis-server missing: make test installs it"

// Timeouts for a server to come up; generous because an AOF reload or a
// loaded CI machine can take a while.
const (
	readyTimeout = 15 * time.Second
	pollInterval = 10 * time.Millisecond
)

// portAttempts bounds how often Start picks another port after the chosen
// one was taken between picking and binding.
const portAttempts = 5

// An Option adjusts the server Start runs.
type Option func(*config)

type config struct {
	args []string
}

// AppendOnly makes the server durable the way hookgate's documentation
// asks of a production Redis: every write is appended to the AOF and
// fsynced before the reply, and the AOF is replayed on Restart.
func AppendOnly() Option {
	return func(c *config) {
		c.args = append(c.args, "--appendonly", "yes", "--appendfsync", "always")
	}
}

// ReplicaOf makes the server a replica of primary.
func ReplicaOf(primary *Server) Option {
	return func(c *config) {
		c.args = append(c.args, "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	}
}

// Args passes further configuration to redis-server, in its command-line
// form ("--maxmemory", "1mb").
func Args(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is one redis-server process owned by a test. Its methods must be
// called from the test's goroutine, as they fail the test on error.
type Server struct {
	t    testing.TB
	dir  string
	port int
	args []string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// Start runs redis-server on a free loopback port with its files in a new
// temporary directory, waits until it answers PING and stops it when the
// test ends. Unless an option says otherwise it keeps nothing on disk
// (--save "" and no AOF), so Restart brings it back empty.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}
	var c config
	for _, opt := range opts {
		opt(&c)
	}
	s := &Server{t: t, dir: t.TempDir(), args: c.args}
	t.Cleanup(s.stop)
	var err error
	for range portAttempts {
		if s.port, err = freePort(); err != nil {
			t.Fatalf("redistest: pick a port: %v", err)
		}
		if err = s.launch(); err == nil {
			return s
		}
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("redistest: start redis-server: %v\n%s", err, s.logTail())
	return nil
}

// URL returns the redis:// URL of the server's database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir returns the directory holding the server's log and data files.
func (s *Server) Dir() string { return s.dir }

// Kill ends the server with SIGKILL, as a crash would: nothing is flushed
// beyond what its configuration already wrote.
func (s *Server) Kill() { s.stop() }

// Pause stops the server with SIGSTOP: it keeps its connections but answers
// nothing, as a hung or overloaded server would, until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatalf("redistest: signal %v to a server that is not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

// Restart kills the server if it is running and starts it again on the same
// port and directory, so an AOF written before is replayed. It returns once
// the server answers PING, that is after the reload.
func (s *Server) Restart() {
	s.t.Helper()
	s.stop()
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restart redis-server: %v\n%s", err, s.logTail())
	}
}

// errExited reports a server that exited while starting, typically because
// its port was taken.
var errExited = errors.New("redis-server exited while starting")

// launch starts the process and waits until it is ready.
func (s *Server) launch() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "no",
	}
	// Later arguments override earlier ones, so options win.
	args = append(args, s.args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	if err := s.waitReady(); err != nil {
		s.stop()
		return err
	}
	return nil
}

// waitReady polls with PING until the server answers PONG. A server that is
// replaying its AOF answers LOADING meanwhile.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return errExited
		default:
		}
		if last = ping(s.Addr()); last == nil {
			return nil
		}
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("no PONG within %v: %w", readyTimeout, last)
}

// ping sends one PING in RESP and checks the answer, without a client
// library, so the harness depends on nothing but the server.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// stop kills the process if it runs and waits for it to exit.
func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// logTail returns the end of the server's log, for failure messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return "(no redis log: " + err.Error() + ")"
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// freePort asks the kernel for an unused loopback port. Another process may
// take it before redis-server binds it; Start then tries another.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
