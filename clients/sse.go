package clients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Reconnect and liveness defaults of StreamSSE.
const (
	// DefaultIdleTimeout is how long a stream may stay silent before it is
	// taken for dead: three of the server's 15 s heartbeats.
	DefaultIdleTimeout = 45 * time.Second
	// defaultRetry is the first reconnect delay until the server sends its
	// own in a retry: field.
	defaultRetry = 2 * time.Second
	// maxRetry bounds the backoff while the server stays unreachable.
	maxRetry = 30 * time.Second
	// maxEventSize bounds one event's data; hookgate's default body limit
	// is 1 MiB, which base64 and the envelope grow by about a half.
	maxEventSize = 16 << 20
)

// SSEOptions configures StreamSSE.
type SSEOptions struct {
	// Server is hookgate's base URL, such as "https://hooks.example.com".
	Server string
	// Token is the bearer token; "" sends none (a --no-auth server).
	Token string
	// Label, when set, receives only that webhook's events.
	Label string
	// After starts the stream after this event ID; "0-0" starts from the
	// oldest retained event, and "" from now.
	After string
	// HTTPClient makes the requests; nil means http.DefaultClient. Its
	// Timeout, if any, cuts every stream (it bounds the whole response), so
	// leave it zero.
	HTTPClient *http.Client
	// Retry, when > 0, is the first reconnect delay in place of the
	// server's retry: hint (2 s from hookgate). Later attempts back off
	// exponentially up to 30 s until a connection succeeds.
	Retry time.Duration
	// IdleTimeout is how long the stream may carry nothing, not even a
	// heartbeat, before it is cut and reconnected: it finds a connection
	// that died without closing. 0 means DefaultIdleTimeout; < 0 never.
	IdleTimeout time.Duration
	// Logger receives a line per connection change (connected, cut,
	// retrying); nil discards.
	Logger *slog.Logger
}

// HTTPError is a response other than the stream: the status and the
// server's message.
type HTTPError struct {
	StatusCode int
	Message    string
}

// Error gives the status and the server's message.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("hookgate answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// permanent reports whether retrying cannot help: a 4xx (a bad token, an
// unknown label, a malformed cursor) other than timeouts and rate limits.
func (e *HTTPError) permanent() bool {
	return e.StatusCode >= 400 && e.StatusCode < 500 &&
		e.StatusCode != http.StatusRequestTimeout && e.StatusCode != http.StatusTooManyRequests
}

// StreamSSE follows the principal's events on GET /v1/stream and calls
// handle with each, in ID order, one at a time. When the stream is cut it
// reconnects with Last-Event-ID set to the last event handled, so handle
// sees every event once, with nothing skipped, for as long as StreamSSE
// runs (events stay retained on the server for their registration's TTL).
//
// It returns ctx.Err() when ctx ends; the error of handle, wrapped, when
// handle fails (that event counts as not handled); and an *HTTPError at once
// when the server refuses the request with a 4xx such as 401 (bad token) or
// 404 (unknown label), which no retry could fix. Other failures (network,
// 5xx, a restart of the server) are retried with bounded backoff.
func StreamSSE(ctx context.Context, opts SSEOptions, handle func(Event) error) error {
	endpoint, err := streamURL(opts.Server, opts.Label)
	if err != nil {
		return err
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &sseConn{opts: opts, endpoint: endpoint, cursor: opts.After, retry: defaultRetry}
	for attempt := 0; ; attempt++ {
		connected, err := s.run(ctx, handle)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var stop *stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if connected {
			attempt = 0 // the server was fine; start the backoff over
		}
		delay := s.backoff(attempt)
		opts.Logger.Info("stream cut; reconnecting", "err", err, "after", s.cursor, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// streamURL is the feed's URL on server, with the label filter.
func streamURL(server, label string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("server %q: want a base URL such as https://hooks.example.com", server)
	}
	u = u.JoinPath("v1", "stream")
	if label != "" {
		u.RawQuery = url.Values{"label": {label}}.Encode()
	}
	return u.String(), nil
}

// stopError carries out of a connection an error that ends StreamSSE
// rather than causing a reconnect: the handler's, or one no retry can fix.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// sseConn is the state that outlives one connection: where to resume and
// how long to wait before doing so.
type sseConn struct {
	opts     SSEOptions
	endpoint string
	cursor   string        // the last event handled (or the stream's start)
	retry    time.Duration // the server's retry: hint
}

// backoff is the wait before reconnect attempt n (0 after a connection
// that worked), with jitter so that many clients cut by one restart do not
// return in one burst.
func (s *sseConn) backoff(n int) time.Duration {
	d := s.retry
	if s.opts.Retry > 0 {
		d = s.opts.Retry
	}
	for range min(n, 16) {
		d = min(2*d, maxRetry)
	}
	return d + rand.N(d/5+1)
}

// run makes one connection and handles its events until it ends, and
// reports whether the server accepted it.
func (s *sseConn) run(ctx context.Context, handle func(Event) error) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint, nil)
	if err != nil {
		return false, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if s.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	}
	if s.cursor != "" {
		req.Header.Set("Last-Event-ID", s.cursor)
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		herr := responseError(resp)
		if herr.permanent() {
			return false, &stopError{fmt.Errorf("stream %s: %w", s.endpoint, herr)}
		}
		return false, herr
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		// Something other than hookgate answered (a proxy's login page, a
		// wrong path); retrying would only repeat it.
		return false, &stopError{fmt.Errorf("stream %s: got Content-Type %q, not an event stream: is %s hookgate?", s.endpoint, mt, s.opts.Server)}
	}
	s.opts.Logger.Info("connected", "url", s.endpoint, "after", s.cursor)

	body := io.Reader(resp.Body)
	if s.opts.IdleTimeout > 0 {
		idle := time.AfterFunc(s.opts.IdleTimeout, cancel)
		defer idle.Stop()
		body = &idleReader{r: resp.Body, timer: idle, timeout: s.opts.IdleTimeout}
	}
	err = s.read(body, handle)
	var stop *stopError
	if ctx.Err() != nil && !errors.As(err, &stop) {
		err = fmt.Errorf("stream silent for %s, not even a heartbeat: %w", s.opts.IdleTimeout, err)
	}
	return true, err
}

// idleReader restarts the idle timer whenever bytes arrive.
type idleReader struct {
	r       io.Reader
	timer   *time.Timer
	timeout time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.timeout)
	}
	return n, err
}

// read parses the event stream (the WHATWG Server-Sent Events format, with
// LF or CRLF line ends) and hands each event to handle. The cursor moves
// only once handle has returned nil.
func (s *sseConn) read(body io.Reader, handle func(Event) error) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventSize)
	var (
		data    []byte
		hasData bool
		id      string
		hasID   bool
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 { // a blank line ends the block: dispatch it
			if hasData {
				e, err := decodeEvent(data)
				if err != nil {
					// Reconnecting would fetch the same bytes again.
					return &stopError{fmt.Errorf("stream %s after %s: %w", s.endpoint, s.cursor, err)}
				}
				if err := handle(e); err != nil {
					return &stopError{fmt.Errorf("handle event %s: %w", e.ID, err)}
				}
				if !hasID {
					id = e.ID
				}
				s.cursor = id
			} else if hasID {
				// An id without data moves the cursor too: hookgate sends the
				// stream's starting point this way.
				s.cursor = id
			}
			data, hasData, hasID = nil, false, false
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "": // a comment, such as the heartbeat
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				id, hasID = string(value), true
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil && ms > 0 {
				s.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stream: %w", err)
	}
	return fmt.Errorf("read stream: %w", io.ErrUnexpectedEOF)
}

// responseError turns a refusal into an *HTTPError with the server's
// message: hookgate's JSON {"error": ...}, or the text of the body.
func responseError(resp *http.Response) *HTTPError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := string(bytes.TrimSpace(b))
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		msg = body.Error
	}
	return &HTTPError{StatusCode: resp.StatusCode, Message: msg}
}
