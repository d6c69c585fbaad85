package clients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Replay paging: events per GET /v1/events (the server's maximum) and per
// POST /v1/requeue.
const (
	logPageSize    = 5000
	requeueBatch   = 1000
	maxLogResponse = 512 << 20
)

// LogQuery selects a stretch of a principal's whole log, acked and
// dead-lettered events included, as GET /v1/events serves it: what an
// operator replays after a crash.
type LogQuery struct {
	// Server is hookgate's base URL; Token its bearer token.
	Server, Token string
	// Label and Type filter; Type may end in "*" to match a prefix
	// ("invoice.*"). "" keeps all.
	Label, Type string
	// Since is exclusive: events after it. "" and "0-0" start at the
	// oldest retained event.
	Since string
	// Until is inclusive; "" means up to the newest event.
	Until string
	// HTTPClient makes the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// ReadLog calls fn with each event q selects, in ID order, reading the log
// page by page. It stops at the first error of fn, returning it as is.
func ReadLog(ctx context.Context, q LogQuery, fn func(Event) error) error {
	base, err := (Config{Server: q.Server}).baseURL()
	if err != nil {
		return err
	}
	client := q.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	after := q.Since
	if after == "" {
		after = beginningOfStream
	}
	for {
		v := url.Values{"after": {after}, "limit": {strconv.Itoa(logPageSize)}}
		for name, value := range map[string]string{"until": q.Until, "label": q.Label, "type": q.Type} {
			if value != "" {
				v.Set(name, value)
			}
		}
		page, err := readLogPage(ctx, client, base+"/v1/events?"+v.Encode(), q.Token)
		if err != nil {
			return err
		}
		for _, raw := range page.Events {
			e, err := decodeEvent(raw)
			if err != nil {
				return fmt.Errorf("read log after %s: %w", after, err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if !page.More || page.Cursor == "" || page.Cursor == after {
			return nil
		}
		after = page.Cursor
	}
}

// logPage is GET /v1/events' answer.
type logPage struct {
	Events []json.RawMessage `json:"events"`
	Cursor string            `json:"cursor"`
	More   bool              `json:"more"`
}

func readLogPage(ctx context.Context, client *http.Client, u, token string) (logPage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return logPage{}, fmt.Errorf("read log: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	var page logPage
	for attempt := 1; ; attempt++ {
		resp, err := client.Do(req)
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				err = json.NewDecoder(io.LimitReader(resp.Body, maxLogResponse)).Decode(&page)
				resp.Body.Close()
				if err != nil {
					return logPage{}, fmt.Errorf("read log: decode %s: %w", u, err)
				}
				return page, nil
			}
			herr := responseError(resp)
			resp.Body.Close()
			if herr.permanent() {
				return logPage{}, fmt.Errorf("read log: %w", herr)
			}
			err = herr
		}
		if attempt == 5 || ctx.Err() != nil {
			return logPage{}, fmt.Errorf("read log: %w", err)
		}
		if !sleep(ctx, reconnect().Delay(attempt)) {
			return logPage{}, ctx.Err()
		}
	}
}

// NDJSON writes each event as one JSON line, exactly as the server sent
// it; call Flush at the end.
type NDJSON struct{ w *bufio.Writer }

// NewNDJSON returns an NDJSON writer on w.
func NewNDJSON(w io.Writer) *NDJSON { return &NDJSON{w: bufio.NewWriterSize(w, 64<<10)} }

// Write writes one event.
func (n *NDJSON) Write(e Event) error {
	raw := e.Raw
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(e); err != nil {
			return fmt.Errorf("encode event %s: %w", e.ID, err)
		}
	}
	if _, err := n.w.Write(raw); err != nil {
		return fmt.Errorf("write event %s: %w", e.ID, err)
	}
	return n.w.WriteByte('\n')
}

// Flush writes out what is buffered.
func (n *NDJSON) Flush() error { return n.w.Flush() }

// Requeuer makes events pending again on the server (POST /v1/requeue),
// so pollers lease them afresh; it sends them in batches. Call Flush at
// the end.
type Requeuer struct {
	Server, Token string
	HTTPClient    *http.Client // nil means http.DefaultClient
	ids           []string
	// Requeued counts the events the server made pending (already pending
	// ones are not counted).
	Requeued int
	// Last is the last event of the last batch the server confirmed.
	Last string
}

// Add queues one event, sending a batch when it is full.
func (q *Requeuer) Add(ctx context.Context, e Event) error {
	q.ids = append(q.ids, e.ID)
	if len(q.ids) >= requeueBatch {
		return q.Flush(ctx)
	}
	return nil
}

// Flush sends the queued events.
func (q *Requeuer) Flush(ctx context.Context) error {
	if len(q.ids) == 0 {
		return nil
	}
	base, err := (Config{Server: q.Server}).baseURL()
	if err != nil {
		return err
	}
	client := q.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	body, _ := json.Marshal(map[string][]string{"ids": q.ids})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/requeue", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("requeue: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if q.Token != "" {
		req.Header.Set("Authorization", "Bearer "+q.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("requeue %s: %w", countEvents(len(q.ids)), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("requeue %s from %s: %w", countEvents(len(q.ids)), q.ids[0], responseError(resp))
	}
	var out struct {
		Requeued int `json:"requeued"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("requeue: decode answer: %w", err)
	}
	q.Requeued += out.Requeued
	q.Last = q.ids[len(q.ids)-1]
	q.ids = q.ids[:0]
	return nil
}
