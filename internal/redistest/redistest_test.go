package redistest

import (
	"errors"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

func client(t *testing.T, s *Server) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func set(t *testing.T, c *goredis.Client) {
	t.Helper()
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
}

// get returns the value of k, or "" if there is none.
func get(t *testing.T, c *goredis.Client) string {
	t.Helper()
	v, err := c.Get(t.Context(), "k").Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		t.Fatalf("GET: %v", err)
	}
	return v
}

func TestRestartKeepsNothingByDefault(t *testing.T) {
	s := Start(t)
	c := client(t, s)
	set(t, c)
	s.Kill()
	if err := ping(s.Addr()); err == nil {
		t.Fatal("server answers PING after Kill")
	}
	s.Restart()
	if v := get(t, c); v != "" {
		t.Errorf("after restart k = %q, want nothing", v)
	}
}

func TestRestartReplaysAppendOnlyFile(t *testing.T) {
	s := Start(t, AppendOnly())
	c := client(t, s)
	set(t, c)
	s.Restart()
	if v := get(t, c); v != "v" {
		t.Errorf("after restart k = %q, want %q", v, "v")
	}
}

func TestPauseResume(t *testing.T) {
	s := Start(t)
	s.Pause()
	if err := ping(s.Addr()); err == nil {
		t.Error("paused server answers PING")
	}
	s.Resume()
	if err := ping(s.Addr()); err != nil {
		t.Errorf("resumed server: %v", err)
	}
}

func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() || a.Dir() == b.Dir() {
		t.Errorf("two servers share %s / %s", a.Addr(), a.Dir())
	}
}
