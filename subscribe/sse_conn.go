package subscribe

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"time"
)

// sseConn is an SSE stream written straight to an HTTP/1.x connection taken
// over from net/http once the request has been checked.
//
// Why: a feed is mostly idle, and while a handler runs net/http keeps its
// connection's state alive: a 4 KiB read buffer, a 4 KiB write buffer, a
// 2 KiB chunking buffer, the request and response, a goroutine parked in
// a background read, and the handler's goroutine, whose stack (about
// 8 KiB) cannot shrink while net/http's frames sit under it. A taken-over
// feed returns from ServeHTTP at once, which releases all of that, and
// runs on a fresh goroutine of its own (a shallow stack, which the runtime
// shrinks back when the feed goes idle) plus one parked in a 1-byte read
// (see watch). In BenchmarkPushFanout10k that took hookgate's RSS per idle
// subscriber from 29.5 KiB to 16.1 KiB. What remains is mostly the two
// goroutines' stacks (about 6 KiB together), the socket, context, timer
// and feed state on the heap (about 3 KiB), and the garbage collector's
// headroom over that.
//
// What it gives up, and why that is acceptable:
//   - The body is not chunked: it is delimited by the connection's close
//     (Connection: close), which every SSE client accepts. An SSE
//     connection is never reused for another request anyway.
//   - http.Server.Shutdown neither waits for nor closes the connection (as
//     with WebSockets): FeedOptions.Stopping ends the feed, which closes
//     it, and SSEHandler.Wait waits for that.
//   - httptest.Server.CloseClientConnections does not close it either.
type sseConn struct {
	conn    net.Conn
	timeout time.Duration
	// head is the status line and headers, sent with the first write so
	// that they and the preamble take one packet.
	head  []byte
	probe [1]byte // watch's read buffer
}

// hijackSSE takes the connection of an SSE request over from net/http and
// returns it, ready to send the response headers (taken from w.Header())
// with its first write. It returns an error wrapping http.ErrNotSupported,
// with w untouched, when the request cannot be served so: not HTTP/1.x
// (HTTP/2 multiplexes streams on one connection), not a GET (HEAD expects
// no body), a request with a body (it would be left unread), or a writer
// that cannot hijack. Any other error means net/http has given up the
// connection and w is unusable.
func hijackSSE(w http.ResponseWriter, r *http.Request, timeout time.Duration) (*sseConn, error) {
	if r.ProtoMajor != 1 || r.Method != http.MethodGet || r.ContentLength != 0 {
		return nil, fmt.Errorf("sse over %s %s with a %d-byte body: %w", r.Proto, r.Method, r.ContentLength, http.ErrNotSupported)
	}
	// Hijack's writer is empty (it makes a new one) and its reader can
	// hold only bytes sent after a request without a body: a pipelined
	// request, which a Connection: close stream will never answer. Both
	// are dropped with net/http's connection when ServeHTTP returns.
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	return &sseConn{conn: conn, timeout: timeout, head: sseResponseHead(w.Header())}, nil
}

// sseResponseHead is the status line and header block of a taken-over SSE
// response: the handler's headers (the event-stream ones, and whatever a
// middleware set, such as a request ID), with the framing the connection's
// close gives the body.
func sseResponseHead(h http.Header) []byte {
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	h.Set("Connection", "close")
	if h.Get("Date") == "" {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&b) // sorted, and line breaks in values become spaces
	b.WriteString("\r\n")
	return b.Bytes()
}

// watch calls leave once the client has closed or reset its side of the
// connection, or the connection has been closed (finish), from a goroutine
// parked in a 1-byte read: the taken-over counterpart of net/http's
// background read, which ends a request's context when its client leaves.
// A client sends nothing after its request; a stray byte (a pipelined
// request, which will never be answered) is dropped.
func (c *sseConn) watch(leave func()) {
	go func() {
		defer leave()
		for {
			if _, err := c.conn.Read(c.probe[:]); err != nil {
				return
			}
		}
	}()
}

// send writes b (after the headers, the first time) in one write under the
// write timeout, so that a client that stops reading fails the write
// instead of blocking it.
func (c *sseConn) send(b []byte) error {
	if c.head != nil {
		b = append(c.head, b...)
		c.head = nil
	}
	err := c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if err == nil {
		_, err = c.conn.Write(b)
	}
	if err != nil {
		return &feedWriteError{err}
	}
	return nil
}

// heartbeat sends the heartbeat comment.
func (c *sseConn) heartbeat() error { return c.send([]byte(sseHeartbeat)) }

// finish closes the connection: the end of the stream's body. It also ends
// watch's read.
func (c *sseConn) finish() {
	_ = c.conn.Close()
}
