package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/hookgate/hookgate/bridge/store"
)

// Replay limits. A page holds at most MaxLogLimit events and about
// store.ReplyBytes of them (an event bigger than that comes alone), and one request
// scans at most logScanLimit events of the log whatever the filters, so a
// narrow type filter over a long log answers in bounded time (with more
// set) instead of scanning it all.
const (
	DefaultLogLimit = 1000
	MaxLogLimit     = 5000
	logScanLimit    = 10_000
	logReadBatch    = 1000
	// maxRequeueIDs bounds one requeue request, so that it commits in one
	// bounded transaction.
	maxRequeueIDs = 10_000
	// maxRequeueBody bounds a requeue request body: maxRequeueIDs IDs of
	// up to 41 characters each, quoted, with commas.
	maxRequeueBody = maxRequeueIDs*45 + 64
)

// LogQuery selects a stretch of a principal's whole log, acked and
// dead-lettered events included: what an operator replays after a crash.
type LogQuery struct {
	After store.ID // exclusive; store.Zero reads from the oldest retained event
	Until store.ID // inclusive; store.Zero means no upper bound
	Label string   // "" for every label
	// Type is the provider event type to keep: an exact type such as
	// "invoice.paid", or a prefix ending in "*" such as "invoice.*";
	// "" keeps every type.
	Type  string
	Limit int // events per page; <= 0 means DefaultLogLimit, at most MaxLogLimit
}

// LogPage is one page of ReadLog.
type LogPage struct {
	Events []store.Event `json:"events"`
	// Cursor is the last event the page looked at, matching or not: read
	// on after it, so a filter never rescans what it skipped.
	Cursor store.ID `json:"cursor"`
	// More is false once the log (up to Until) is read to its end.
	More bool `json:"more"`
}

// ReadLog returns the principal's events after q.After, in ID order, that
// match q, whatever their delivery state.
func (in *Inbox) ReadLog(ctx context.Context, principal string, q LogQuery) (LogPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	limit = min(limit, MaxLogLimit)
	page := LogPage{Events: []store.Event{}, Cursor: q.After}
	budget := store.Budget{Max: store.ReplyBytes}
	for scanned := 0; scanned < logScanLimit; {
		batch, err := in.store.Read(ctx, principal, store.Query{After: page.Cursor, Label: q.Label, Limit: logReadBatch, MaxBytes: store.ReplyBytes})
		if err != nil {
			return LogPage{}, fmt.Errorf("read log after %s: %w", page.Cursor, err)
		}
		if len(batch) == 0 {
			return page, nil
		}
		for _, e := range batch {
			if !q.Until.IsZero() && e.ID.Compare(q.Until) > 0 {
				return page, nil
			}
			matches := typeMatches(q.Type, e.Type)
			if len(page.Events) == limit || (matches && !budget.Admit(store.EventSize(e))) {
				page.More = true // e is a further event
				return page, nil
			}
			page.Cursor = e.ID
			scanned++
			if matches {
				page.Events = append(page.Events, e)
			}
		}
	}
	page.More = true
	return page, nil
}

// typeMatches reports whether an event of type typ passes the filter.
func typeMatches(filter, typ string) bool {
	if prefix, ok := strings.CutSuffix(filter, "*"); ok {
		return strings.HasPrefix(typ, prefix)
	}
	return filter == "" || filter == typ
}

// Requeue makes the principal's acked or dead-lettered events pending
// again, so pollers lease them afresh (see store.Store.Requeue), and wakes
// waiting long polls. Every text must be an event ID of the principal's;
// otherwise nothing is requeued and the error names it.
func (in *Inbox) Requeue(ctx context.Context, principal string, ids []string) (int, error) {
	parsed, err := parseEventIDs(ids)
	if err != nil {
		return 0, err
	}
	n, err := in.store.Requeue(ctx, principal, parsed)
	if err != nil {
		return 0, fmt.Errorf("requeue events: %w", err)
	}
	if n > 0 {
		in.wake.Notify(principal)
	}
	return n, nil
}

// LogHandler serves GET /v1/events, the log as hookgate replay reads it:
// query after= (exclusive, default 0-0), until= (inclusive), label=, type=
// and limit=, answered with a LogPage as JSON. principal names the caller
// the authentication middleware established ("" answers 401).
func (in *Inbox) LogHandler(principal func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := principal(r)
		if who == "" {
			writeError(w, http.StatusUnauthorized, "authentication required: send Authorization: Bearer <token>")
			return
		}
		q, err := parseLogQuery(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		page, err := in.ReadLog(r.Context(), who, q)
		if err != nil {
			in.logger.WarnContext(r.Context(), "read log", "principal", who, "err", err)
			writeUnavailable(w)
			return
		}
		writeJSON(w, http.StatusOK, page)
	})
}

// parseLogQuery reads LogHandler's query parameters.
func parseLogQuery(r *http.Request) (LogQuery, error) {
	v := r.URL.Query()
	q := LogQuery{Label: v.Get("label"), Type: v.Get("type")}
	for _, p := range []struct {
		name string
		to   *store.ID
	}{{"after", &q.After}, {"until", &q.Until}} {
		if text := v.Get(p.name); text != "" {
			id, err := store.ParseID(text)
			if err != nil {
				return LogQuery{}, fmt.Errorf("%s=%q: want an event ID <unix-ms>-<seq>", p.name, text)
			}
			*p.to = id
		}
	}
	if text := v.Get("limit"); text != "" {
		n, err := strconv.Atoi(text)
		if err != nil || n <= 0 {
			return LogQuery{}, fmt.Errorf("limit=%q: want a positive number (at most %d)", text, MaxLogLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// RequeueHandler serves POST /v1/requeue: the body {"ids": ["<event id>",
// ...]} (at most 10,000) is requeued, and the answer is {"requeued": n},
// the events that became pending. An unknown ID answers 404 and requeues
// nothing. principal is as for LogHandler.
func (in *Inbox) RequeueHandler(principal func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := principal(r)
		if who == "" {
			writeError(w, http.StatusUnauthorized, "authentication required: send Authorization: Bearer <token>")
			return
		}
		var body struct {
			IDs []string `json:"ids"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, maxRequeueBody)).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, `want {"ids": ["<event id>", ...]}: `+err.Error())
			return
		}
		if len(body.IDs) > maxRequeueIDs {
			writeError(w, http.StatusRequestEntityTooLarge, "at most "+strconv.Itoa(maxRequeueIDs)+" ids per request")
			return
		}
		n, err := in.Requeue(r.Context(), who, body.IDs)
		switch {
		case errors.Is(err, ErrInvalid):
			writeError(w, http.StatusBadRequest, err.Error())
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, err.Error())
		case err != nil:
			in.logger.WarnContext(r.Context(), "requeue", "principal", who, "err", err)
			writeUnavailable(w)
		default:
			writeJSON(w, http.StatusOK, struct {
				Requeued int `json:"requeued"`
			}{n})
		}
	})
}
