package clients_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
	"github.com/hookgate/hookgate/clients"
)

// drivers lists every driver constructor: they all take a Config and
// give a Driver, so a program switches by changing the call.
var drivers = []struct {
	name string
	new  func(clients.Config) clients.Driver
	acks bool // the path acks on the server, so nothing stays pending
}{
	{"tool-poller", clients.NewToolPoller, true},
	{"subscriber-2025", clients.NewSubscriber, true},
	{"listener-2026", clients.NewListener, true},
	{"events-poll", clients.NewEventsPoller, false},
	{"events-stream", clients.NewEventsStream, false},
	{"sse", clients.NewSSE, false},
	{"websocket", clients.NewWebSocket, true},
}

// recorder watches a driver from outside: which handlers finished, and
// every ack (ack_event over HTTP, {"ack": ...} messages on the WebSocket,
// and the checkpoint) to check that none comes before its handler
// finished.
type recorder struct {
	t        *testing.T
	mu       sync.Mutex
	finished map[string]int // event ID → handler runs that returned nil
	started  int
	acked    int
	methods  map[string]int // MCP methods and tools seen on the wire
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, finished: make(map[string]int), methods: make(map[string]int)}
}

// handler is the one Handler of the tests. With stopAt > 0, the stopAt-th
// call cancels the run's context and fails, as if the program died in the
// middle of that event.
func (rc *recorder) handler(stopAt int, cancel context.CancelFunc) clients.Handler {
	return func(ctx context.Context, e clients.Event) error {
		rc.mu.Lock()
		rc.started++
		n := rc.started
		rc.mu.Unlock()
		if n == stopAt {
			cancel()
			return ctx.Err()
		}
		if e.ID == "" || e.Label == "" || len(e.Payload) == 0 {
			rc.t.Errorf("handler got a partial event %+v", e)
		}
		rc.mu.Lock()
		rc.finished[e.ID]++
		rc.mu.Unlock()
		return nil
	}
}

// checkAcked records an ack of ids, failing the test for any whose
// handler has not finished.
func (rc *recorder) checkAcked(how string, ids []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, id := range ids {
		if rc.finished[id] == 0 {
			rc.t.Errorf("%s acked %s before its handler finished", how, id)
		}
	}
	rc.acked += len(ids)
}

func (rc *recorder) completed() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ids := make([]string, 0, len(rc.finished))
	for id := range rc.finished {
		ids = append(ids, id)
	}
	return ids
}

func (rc *recorder) has(ids []string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, id := range ids {
		if rc.finished[id] == 0 {
			return false
		}
	}
	return true
}

// RoundTrip records the MCP methods of each request and checks the IDs of
// every ack_event call before passing it on. A WebSocket it lets through
// has what the client writes on it tapped, to check its acks likewise.
func (rc *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			Method string `json:"method"`
			Params struct {
				Name      string `json:"name"`
				Arguments struct {
					EventID  string   `json:"event_id"`
					EventIDs []string `json:"event_ids"`
				} `json:"arguments"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &msg) == nil {
			rc.mu.Lock()
			rc.methods[msg.Method]++
			if msg.Method == "tools/call" {
				rc.methods[msg.Params.Name]++
			}
			rc.mu.Unlock()
			if msg.Method == "tools/call" && msg.Params.Name == "ack_event" {
				ids := msg.Params.Arguments.EventIDs
				if msg.Params.Arguments.EventID != "" {
					ids = append(ids, msg.Params.Arguments.EventID)
				}
				rc.checkAcked("ack_event", ids)
			}
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			resp.Body = &wsTap{ReadWriteCloser: rwc, rc: rc}
		}
	}
	return resp, err
}

// wsTap is the client's side of a WebSocket as the recorder sees it: it
// decodes the frames the client writes and checks each {"ack": ...}
// message when its last byte is written, before the server can read it.
type wsTap struct {
	io.ReadWriteCloser
	rc  *recorder
	mu  sync.Mutex
	buf []byte // written, not yet a whole frame
	msg []byte // the message being assembled from its frames
}

func (w *wsTap) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	w.decode()
	w.mu.Unlock()
	return w.ReadWriteCloser.Write(p)
}

// decode takes the whole frames off buf (RFC 6455 §5.2; a client's frames
// are masked) and checks the acks among the messages they complete.
func (w *wsTap) decode() {
	for {
		b := w.buf
		if len(b) < 2 {
			return
		}
		fin, rsv, opcode := b[0]&0x80 != 0, b[0]&0x70, b[0]&0x0f
		n, off := uint64(b[1]&0x7f), 2
		switch n {
		case 126:
			if len(b) < 4 {
				return
			}
			n, off = uint64(binary.BigEndian.Uint16(b[2:4])), 4
		case 127:
			if len(b) < 10 {
				return
			}
			n, off = binary.BigEndian.Uint64(b[2:10]), 10
		}
		var mask []byte
		if b[1]&0x80 != 0 {
			if len(b) < off+4 {
				return
			}
			mask, off = b[off:off+4], off+4
		}
		if uint64(len(b)-off) < n {
			return
		}
		payload := slices.Clone(b[off : off+int(n)])
		for i := range payload {
			if mask != nil {
				payload[i] ^= mask[i%4]
			}
		}
		w.buf = b[off+int(n):]
		if rsv != 0 {
			w.rc.t.Errorf("websocket tap: a compressed frame, which it cannot read")
		}
		if opcode >= 8 {
			continue // ping, pong, close
		}
		w.msg = append(w.msg, payload...)
		if fin {
			w.message(w.msg)
			w.msg = nil
		}
	}
}

// message checks one message the client sent, if it is an ack.
func (w *wsTap) message(msg []byte) {
	var m struct {
		Ack json.RawMessage `json:"ack"`
	}
	if json.Unmarshal(msg, &m) != nil || m.Ack == nil {
		return
	}
	var ids []string
	if err := json.Unmarshal(m.Ack, &ids); err != nil {
		var one string
		if err := json.Unmarshal(m.Ack, &one); err != nil {
			w.rc.t.Errorf("websocket tap: an ack it cannot read: %s", msg)
			return
		}
		ids = []string{one}
	}
	w.rc.mu.Lock()
	w.rc.methods["websocket ack"]++
	w.rc.mu.Unlock()
	w.rc.checkAcked("websocket ack", ids)
}

func (rc *recorder) method(name string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.methods[name]
}

// checkedCheckpoint is a FileCheckpoint whose saves are checked: every ID
// it records as completed must have finished its handler.
type checkedCheckpoint struct {
	clients.FileCheckpoint
	rc *recorder
}

func (c checkedCheckpoint) Save(ctx context.Context, p clients.Progress) error {
	c.rc.checkAcked("checkpoint", p.Recent)
	if p.Last != "" {
		c.rc.checkAcked("checkpoint (last)", []string{p.Last})
	}
	return c.FileCheckpoint.Save(ctx, p)
}

// TestDriversRecoverFromRestart runs the same Handler under each driver
// against a real hookgate while 300 events are POSTed, kills the driver
// (cancels its context) in the middle of a random event, restarts it over
// the same checkpoint file, and checks that every event was handled at
// least once, none was acked before its handler finished, and the
// completed set is exactly the POSTed set.
func TestDriversRecoverFromRestart(t *testing.T) {
	const events = 300
	g := startHookgate(t)
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			label := "drv-" + d.name
			url, secret := g.register(t, label)
			rc := newRecorder(t)
			cfg := clients.Config{
				Server: g.url, Token: g.token, Label: label,
				Checkpoint:  checkedCheckpoint{clients.FileCheckpoint(filepath.Join(t.TempDir(), "checkpoint.json")), rc},
				Concurrency: 2,
				Resync:      2 * time.Second,
				PollWait:    time.Second,
				HTTPClient:  &http.Client{Transport: rc},
			}

			posted := make(chan []string, 1)
			go func() {
				ids, err := postMany(url, secret, events)
				if err != nil {
					t.Error(err)
				}
				posted <- ids
			}()

			stopAt := 20 + rand.IntN(events-60)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.new(cfg).Run(ctx, rc.handler(stopAt, cancel)) }()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("first run ended with %v, want context.Canceled at event %d", err, stopAt)
				}
			case <-time.After(30 * time.Second):
				cancel()
				t.Fatalf("first run never reached event %d", stopAt)
			}
			cancel()
			ids := <-posted
			if len(ids) != events {
				t.Fatalf("posted %d events, want %d", len(ids), events)
			}
			before := len(rc.completed())

			// Restart over the same checkpoint with a handler that works.
			ctx2, cancel2 := context.WithCancel(context.Background())
			defer cancel2()
			go func() { done <- d.new(cfg).Run(ctx2, rc.handler(0, nil)) }()
			waitUntil(t, 30*time.Second, "every posted event handled", func() bool { return rc.has(ids) })
			cancel2()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("second run ended with %v", err)
			}

			got := rc.completed()
			slices.Sort(got)
			slices.Sort(ids)
			if !slices.Equal(got, ids) {
				t.Errorf("completed %d events, posted %d: the sets differ", len(got), len(ids))
			}
			if d.acks {
				pending, err := g.srv.Store().ReadPending(context.Background(), "alice", store.Query{Label: label, Limit: events})
				if err != nil || len(pending) != 0 {
					t.Errorf("%d events still pending on the server after the run (%v): acks missing", len(pending), err)
				}
			}
			// The acks were seen, so their check is not vacuous.
			if acks := rc.method("ack_event") + rc.method("websocket ack"); d.acks && acks == 0 {
				t.Errorf("no ack seen on the wire, so none was checked")
			}
			if before == 0 || before == events {
				t.Errorf("the first run completed %d of %d events: not stopped mid-way", before, events)
			}
			t.Logf("stopped at handler call %d after %d completed; %d acks checked, %d ack messages on the wire",
				stopAt, before, rc.acked, rc.method("ack_event")+rc.method("websocket ack"))
		})
	}
}
