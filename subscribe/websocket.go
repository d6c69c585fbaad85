package subscribe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/coder/websocket"

	"github.com/hookgate/hookgate/bridge/store"
)

// Acker marks a principal's events done, as ack_event does; *bridge.Inbox
// satisfies it. An unknown ID fails the whole call with an error naming it.
type Acker interface {
	Ack(ctx context.Context, principal string, ids []string) (int, error)
}

// BearerSubprotocol is the WebSocket subprotocol a browser, which cannot set
// Authorization on a WebSocket, offers with its token as the next entry:
// new WebSocket(url, ["hookgate.bearer", token]). The auth middleware takes
// the token from there; the feed then selects this subprotocol alone, so the
// token is never echoed.
const BearerSubprotocol = "hookgate.bearer"

// NewWebSocketHandler returns the handler of GET /v1/ws: the feed of
// NewSSEHandler over a WebSocket, each event one text message of its JSON.
// after= resumes after an event ID (absent: from now); label= filters. The
// client may send {"ack":"<id>"} or {"ack":["<id>",...]}; each is answered
// with {"acked":<as sent>,"count":n}, or {"error":"...","ack":<as sent>}.
// End FeedOptions.Stopping on shutdown: http.Server does not
// track WebSockets, so nothing else would end them.
func NewWebSocketHandler(opts FeedOptions) http.Handler {
	return &wsHandler{opts: opts.withDefaults()}
}

type wsHandler struct {
	opts FeedOptions
}

func (h *wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fr, ok := h.opts.parseFeedRequest(w, r, "")
	if !ok {
		return
	}
	// Default origin check: browsers get the same-origin check, and other
	// clients send no Origin. A browser that offered BearerSubprotocol gets
	// it back, as it requires.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{BearerSubprotocol}})
	if err != nil {
		h.opts.Logger.Debug("ws feed: handshake", "principal", fr.principal, "err", err)
		return // Accept has answered the request
	}
	m := h.opts.Metrics
	m.Subscribed("websocket", "http", 1)
	defer m.Subscribed("websocket", "http", -1)
	ctx, cancel := h.opts.feedContext(r.Context())
	defer cancel()

	feed := &wsFeed{c: c, opts: h.opts, principal: fr.principal}
	// The library needs a reader running for pings, pongs and the close
	// handshake; it is also where acks arrive. A read error means the
	// client is gone or broke the protocol: end the feed. The reader runs on
	// the request's context, not the feed's, because the library closes the
	// connection when a read's context ends, and the close handshake below
	// still needs it.
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		feed.readAcks(r.Context())
	}()

	f := &Follower{
		Log:       h.opts.Log,
		Wake:      h.opts.Wake,
		Principal: fr.principal,
		Label:     fr.label,
		After:     fr.after,
		Heartbeat: h.opts.Heartbeat,
		Idle:      feed.ping,
	}
	err = f.Run(ctx, func(e store.Event) error {
		if err := feed.sendEvent(e); err != nil {
			return err
		}
		m.Pushed("websocket")
		return nil
	})
	fr.after = f.After
	var writeErr *feedWriteError
	switch {
	case errors.As(err, &writeErr):
		// The peer stopped reading or answering pings: a close handshake
		// would only wait for it in vain.
		m.Cut("websocket")
		_ = c.CloseNow()
	case h.opts.shuttingDown():
		_ = c.Close(websocket.StatusGoingAway, "server shutting down; reconnect with after="+f.After.String())
	case ctx.Err() != nil: // the client left
		_ = c.Close(websocket.StatusNormalClosure, "")
	default:
		_ = c.Close(websocket.StatusInternalError, "cannot read the event log; reconnect with after="+f.After.String())
	}
	<-readDone
	logFeedEnd(h.opts.Logger, "ws", fr, err, ctx.Err() != nil)
}

// wsFeed is one WebSocket subscriber. The library allows writes from any
// goroutine: events come from the follower's, ack replies from the reader's.
type wsFeed struct {
	c         *websocket.Conn
	opts      FeedOptions
	principal string
}

func (f *wsFeed) sendEvent(e store.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return f.write(data)
}

// write sends one text message under the write timeout. The library closes
// the connection when a write's context expires, so a client that stops
// reading is cut here.
func (f *wsFeed) write(msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.WriteTimeout)
	defer cancel()
	if err := f.c.Write(ctx, websocket.MessageText, msg); err != nil {
		return &feedWriteError{err}
	}
	return nil
}

// ping proves an idle connection alive through proxies that cut quiet ones,
// and finds a peer that vanished without closing.
func (f *wsFeed) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.WriteTimeout)
	defer cancel()
	if err := f.c.Ping(ctx); err != nil {
		return &feedWriteError{err}
	}
	return nil
}

// readAcks answers each client message until the connection ends.
func (f *wsFeed) readAcks(ctx context.Context) {
	for {
		_, msg, err := f.c.Read(ctx)
		if err != nil {
			return
		}
		if err := f.write(f.ack(ctx, msg)); err != nil {
			return
		}
	}
}

// ackResult and ackFailure are the replies to an ack message. Each echoes
// the ack value as sent, so a client with several acks in flight can match
// the replies; event messages never have these fields.
type ackResult struct {
	Acked json.RawMessage `json:"acked"`
	Count int             `json:"count"`
}

type ackFailure struct {
	Error string          `json:"error"`
	Ack   json.RawMessage `json:"ack,omitempty"`
}

// ack performs one {"ack": ...} message and returns the reply to send.
func (f *wsFeed) ack(ctx context.Context, msg []byte) []byte {
	raw, ids, err := parseAck(msg)
	if err == nil && f.opts.Acker == nil {
		err = errors.New("acks are not accepted on this server")
	}
	var n int
	if err == nil {
		n, err = f.opts.Acker.Ack(ctx, f.principal, ids)
	}
	var reply any = ackResult{Acked: raw, Count: n}
	if err != nil {
		reply = ackFailure{Error: err.Error(), Ack: raw}
	}
	out, _ := json.Marshal(reply) // these types always marshal
	return out
}

// parseAck reads {"ack":"<id>"} or {"ack":["<id>",...]}, returning the ack
// value as sent and the IDs in it.
func parseAck(msg []byte) (json.RawMessage, []string, error) {
	var req struct {
		Ack json.RawMessage `json:"ack"`
	}
	if err := json.Unmarshal(msg, &req); err != nil || len(req.Ack) == 0 {
		return nil, nil, errors.New(`want {"ack":"<event id>"} or {"ack":["<event id>",...]}`)
	}
	var one string
	if err := json.Unmarshal(req.Ack, &one); err == nil {
		return req.Ack, []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(req.Ack, &many); err != nil || len(many) == 0 {
		return req.Ack, nil, errors.New(`"ack" must be an event ID or a non-empty list of them`)
	}
	return req.Ack, many, nil
}
