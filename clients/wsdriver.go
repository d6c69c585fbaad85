package clients

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// NewWebSocket returns a Driver over hookgate's GET /v1/ws, the event feed
// over a WebSocket, for programs that do not speak MCP. Unlike the SSE
// feed it has acks: each completed event is acked on the socket
// ({"ack": [...]}), as ack_event would, so the principal's pending queue
// drains. It resumes after the checkpoint's last completed event (the
// oldest retained one on a first run) and reconnects from its cursor
// after a cut.
func NewWebSocket(cfg Config) Driver { return &wsDriver{cfg: cfg} }

type wsDriver struct {
	cfg Config
	mu  sync.Mutex
	c   *websocket.Conn // the current connection; nil between connections
	// replies routes the server's answer to each ack in flight, keyed by
	// the ack value as sent (the server echoes it).
	replies map[string]chan error
}

// Run implements Driver.
func (d *wsDriver) Run(ctx context.Context, h Handler) error {
	cfg := d.cfg.withDefaults()
	base, err := cfg.baseURL()
	if err != nil {
		return err
	}
	// The connection outlives the feed: the run's last acks go over it.
	defer d.setConn(nil)
	return runWith(ctx, cfg, h, d, func(ctx context.Context, r *runner, resume string) error {
		cursor := resume
		if cursor == "" {
			cursor = beginningOfStream
		}
		return keepTrying(ctx, cfg.Logger, "websocket feed cut", func() []any { return []any{"after", cursor} }, nil, func() (bool, error) {
			return d.connectOnce(ctx, cfg, base, &cursor, r)
		})
	})
}

func (d *wsDriver) setConn(c *websocket.Conn) {
	d.mu.Lock()
	old := d.c
	d.c = c
	d.mu.Unlock()
	if old != nil && old != c {
		_ = old.Close(websocket.StatusNormalClosure, "")
	}
}

// wsReply is the feed's answer to an ack: {"acked": <as sent>, "count": n}
// or {"error": "...", "ack": <as sent>}. Events have neither field.
type wsReply struct {
	Acked json.RawMessage `json:"acked"`
	Ack   json.RawMessage `json:"ack"`
	Error string          `json:"error"`
}

// reply hands msg to the ack waiting for it, reporting whether msg was an
// ack reply at all.
func (d *wsDriver) reply(msg []byte) bool {
	var r wsReply
	if json.Unmarshal(msg, &r) != nil || (r.Acked == nil && r.Error == "") {
		return false
	}
	key, err := string(r.Acked), error(nil)
	if r.Error != "" {
		key, err = string(r.Ack), errors.New(r.Error)
	}
	d.mu.Lock()
	ch := d.replies[key]
	delete(d.replies, key)
	d.mu.Unlock()
	if ch == nil {
		d.cfg.Logger.Warn("websocket ack reply matches no ack in flight", "reply", string(msg))
		return true
	}
	ch <- err
	return true
}

// connectOnce follows one connection, offering its events, until it ends;
// it reports whether the server accepted the connection.
func (d *wsDriver) connectOnce(ctx context.Context, cfg Config, base string, cursor *string, r *runner) (bool, error) {
	q := url.Values{"after": {*cursor}}
	if cfg.Label != "" {
		q.Set("label", cfg.Label)
	}
	header := http.Header{}
	if cfg.Token != "" {
		header.Set("Authorization", "Bearer "+cfg.Token)
	}
	c, resp, err := websocket.Dial(ctx, base+"/v1/ws?"+q.Encode(), &websocket.DialOptions{HTTPClient: cfg.HTTPClient, HTTPHeader: header})
	if err != nil {
		if resp != nil {
			herr := &HTTPError{StatusCode: resp.StatusCode, Message: err.Error()}
			if herr.permanent() {
				return false, &stopError{fmt.Errorf("websocket feed: %w", herr)}
			}
		}
		return false, fmt.Errorf("websocket feed: %w", err)
	}
	c.SetReadLimit(maxEventSize)
	d.setConn(c)
	// Reads run on a context of their own: the library closes the
	// connection when a read's context ends, and the run's last acks still
	// need it. Closing the connection (setConn) ends the reader.
	msgs := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, msg, err := c.Read(context.Background())
			if err != nil {
				readErr <- err
				return
			}
			// Ack replies are taken here, so that the run's last acks
			// are confirmed even after the feed has stopped reading
			// events (those are dropped then: the next run reads them).
			if d.reply(msg) || ctx.Err() != nil {
				continue
			}
			select {
			case msgs <- msg:
			case <-ctx.Done():
			}
		}
	}()
	for {
		var msg []byte
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-readErr:
			d.setConn(nil)
			return true, fmt.Errorf("websocket feed: %w", err)
		case msg = <-msgs:
		}
		e, err := decodeEvent(msg)
		if err != nil {
			return true, &stopError{fmt.Errorf("websocket feed: %w", err)}
		}
		if err := r.offer(ctx, e); err != nil {
			return true, err
		}
		*cursor = e.ID
	}
}

// wsAckTimeout bounds one ack: its message and the server's reply. An ack
// without a reply is sent again at the next flush (acks are idempotent).
const wsAckTimeout = 10 * time.Second

func (d *wsDriver) ack(ctx context.Context, ids []string) error {
	d.mu.Lock()
	c := d.c
	d.mu.Unlock()
	if c == nil {
		return errors.New("no connection to ack on")
	}
	value, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	key := string(value)
	answer := make(chan error, 1)
	d.mu.Lock()
	if d.replies == nil {
		d.replies = make(map[string]chan error)
	}
	d.replies[key] = answer
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.replies[key] == answer {
			delete(d.replies, key)
		}
		d.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, wsAckTimeout)
	defer cancel()
	msg := append(append([]byte(`{"ack":`), value...), '}')
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("ack on websocket: %w", err)
	}
	select {
	case err := <-answer:
		if err != nil {
			return &refusalError{msg: "ack on websocket refused: " + err.Error()}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ack on websocket: no reply: %w", ctx.Err())
	}
}

// nack does nothing: the feed has no nack; the driver retries locally.
func (d *wsDriver) nack(context.Context, Event, time.Duration) (bool, error) { return false, nil }
