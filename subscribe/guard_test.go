package subscribe_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/subscribe"
)

// sseMessage is one Server-Sent Event as the SDK writes it, with a JSON-RPC
// message of about size bytes: a reply (with id) or a notification.
func sseMessage(reply bool, size int) []byte {
	filler := strings.Repeat("x", size)
	if reply {
		return fmt.Appendf(nil, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"text\":%q}}\n\n", filler)
	}
	return fmt.Appendf(nil, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"text\":%q}}\n\n", filler)
}

// A reply several times the stream buffer arrives whole over real HTTP: the
// buffer bounds a backlog of notifications, never the answer to a request.
func TestGuardReplyLargerThanBufferArrivesWhole(t *testing.T) {
	reply := sseMessage(true, 3*subscribe.DefaultStreamBuffer)
	h := subscribe.GuardStreams(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		if _, err := w.Write(sseMessage(false, 100)); err != nil {
			t.Errorf("notification: %v", err)
		}
		if _, err := w.Write(reply); err != nil {
			t.Errorf("reply refused: %v", err)
		}
	}), subscribe.GuardOptions{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(body, reply) {
		t.Fatalf("got %d bytes, want the %d-byte reply at the end", len(body), len(reply))
	}
}

// stuckWriter is a ResponseWriter whose writes block until released, like a
// client that stopped reading; entered is signalled on each write.
type stuckWriter struct {
	header  http.Header
	entered chan struct{}
	release chan struct{}
}

func (w *stuckWriter) Header() http.Header { return w.header }
func (w *stuckWriter) WriteHeader(int)     {}
func (w *stuckWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	return len(p), nil
}

// Behind a reader that stopped, notifications past the buffer cut the
// stream, while a reply of any size is still queued.
func TestGuardCutsNotificationBacklogNotReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		third   []byte
		wantCut bool
	}{
		{"notification past the buffer", sseMessage(false, 600<<10), true},
		{"reply past the buffer", sseMessage(true, 3<<20), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &stuckWriter{header: http.Header{}, entered: make(chan struct{}, 8), release: make(chan struct{})}
			result := make(chan error, 1)
			h := subscribe.GuardStreams(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				rw.Header().Set("Content-Type", "text/event-stream")
				rw.WriteHeader(http.StatusOK)
				if _, err := rw.Write(sseMessage(false, 10)); err != nil {
					result <- fmt.Errorf("first write: %w", err)
					return
				}
				select { // the pump holds the first write: the reader is stuck
				case <-w.entered:
				case <-time.After(10 * time.Second):
					result <- fmt.Errorf("the pump never wrote")
					return
				}
				// A single message larger than half the buffer is queued
				// whatever its size, because nothing is queued before it.
				if _, err := rw.Write(sseMessage(false, 600<<10)); err != nil {
					result <- fmt.Errorf("second write: %w", err)
					return
				}
				_, err := rw.Write(tc.third)
				result <- err
				close(w.release)
				go func() { // drain what the pump still writes
					for range w.entered {
					}
				}()
			}), subscribe.GuardOptions{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/mcp", nil))
			}()
			select {
			case err := <-result:
				if tc.wantCut && err == nil {
					t.Fatal("the third write was queued; want the stream cut")
				}
				if !tc.wantCut && err != nil {
					t.Fatalf("the reply was refused: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("handler did not finish")
			}
			<-done
			close(w.entered)
		})
	}
}
