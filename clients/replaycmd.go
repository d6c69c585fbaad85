package clients

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// defaultProgressEvery spaces out Replay's progress lines.
const defaultProgressEvery = 2 * time.Second

// ReplayOptions is what hookgate replay does: read q's stretch of the log
// and write it as NDJSON to Out (the default), POST it to To signed with
// Secret, or requeue it (Requeue); with DryRun, only count it.
type ReplayOptions struct {
	Log LogQuery
	// Out receives the NDJSON, one event per line, when To is "" and
	// Requeue is false.
	Out io.Writer
	// To, when set, receives each event as a Standard Webhooks POST signed
	// with Secret; Sender, when set, is used instead (its URL and Secret
	// win), to tune retries.
	To, Secret string
	Sender     *WebhookSender
	// Requeue makes the events pending again for pollers.
	Requeue bool
	// DryRun counts what would be replayed and sends nothing.
	DryRun bool
	// Progress, when set, gets a line every ProgressEvery (default 2 s)
	// while the replay runs and a summary at the end.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// ReplayResult says how far a replay got.
type ReplayResult struct {
	// Events counts the events written, delivered, requeued or (DryRun)
	// counted.
	Events int
	// Last is the last event that was done; "" if none.
	Last string
	// Requeued counts the events the server made pending (Requeue).
	Requeued int
}

// ReplayError is a replay that stopped part-way: Resume is the ID to pass
// as --since (the last event done, or the original --since) to carry on
// with no gap and no repeat.
type ReplayError struct {
	Resume string
	Err    error
}

// Error says where the replay stopped and why.
func (e *ReplayError) Error() string {
	return fmt.Sprintf("%v; resume with --since %s", e.Err, e.Resume)
}

// Unwrap returns the failure that stopped the replay.
func (e *ReplayError) Unwrap() error { return e.Err }

// Replay runs o. When it stops on a failure after it started, the error
// is a *ReplayError naming where to resume.
func Replay(ctx context.Context, o ReplayOptions) (ReplayResult, error) {
	var res ReplayResult
	for _, f := range []struct{ name, value string }{{"--since", o.Log.Since}, {"--until", o.Log.Until}} {
		if _, ok := parseEventID(f.value); f.value != "" && !ok {
			return res, fmt.Errorf("replay: %s %q: want an event ID <unix-ms>-<seq>, such as 1764050400123-0", f.name, f.value)
		}
	}
	if o.To != "" && o.Requeue {
		return res, errors.New("replay: --to and --requeue exclude each other")
	}
	sender := o.Sender
	if o.To != "" && sender == nil {
		sender = &WebhookSender{}
	}
	if sender != nil {
		if o.To != "" {
			sender.URL = o.To
		}
		if o.Secret != "" {
			sender.Secret = o.Secret
		}
		if sender.URL == "" || sender.Secret == "" {
			return res, errors.New("replay: --to needs --secret (the receiver's whsec_… signing secret)")
		}
	}
	var (
		out  *NDJSON
		rq   *Requeuer
		verb = "written"
	)
	switch {
	case sender != nil:
		verb = "delivered"
	case o.Requeue:
		verb = "requeued"
		rq = &Requeuer{Server: o.Log.Server, Token: o.Log.Token, HTTPClient: o.Log.HTTPClient}
	default:
		if o.Out == nil {
			o.Out = io.Discard
		}
		out = NewNDJSON(o.Out)
	}
	if o.DryRun {
		verb = "to be " + verb + " (dry run)"
	}
	prog := newProgress(o.Progress, o.ProgressEvery)
	err := ReadLog(ctx, o.Log, func(e Event) error {
		if !o.DryRun {
			var err error
			switch {
			case sender != nil:
				err = sender.Send(ctx, e)
			case rq != nil:
				err = rq.Add(ctx, e)
			default:
				err = out.Write(e)
			}
			if err != nil {
				return err
			}
		}
		res.Last = e.ID
		res.Events++
		prog.tick(res.Events, e.ID, verb)
		return nil
	})
	if err == nil && out != nil {
		err = out.Flush()
	}
	if rq != nil && !o.DryRun {
		if err == nil {
			err = rq.Flush(ctx)
		}
		// Only what the server confirmed is done.
		res.Last, res.Requeued = rq.Last, rq.Requeued
	}
	prog.done(res, verb, err)
	var refused *HTTPError
	if errors.As(err, &refused) && refused.StatusCode == http.StatusBadRequest {
		return res, err // a malformed --since, --until or --type: nothing to resume
	}
	if err != nil {
		resume := res.Last
		if resume == "" {
			resume = o.Log.Since
		}
		if resume == "" {
			resume = beginningOfStream
		}
		return res, &ReplayError{Resume: resume, Err: err}
	}
	return res, nil
}

// progress prints Replay's progress lines.
type progress struct {
	w       io.Writer
	every   time.Duration
	start   time.Time
	next    time.Time
	printed bool
}

func newProgress(w io.Writer, every time.Duration) *progress {
	if every <= 0 {
		every = defaultProgressEvery
	}
	now := time.Now()
	return &progress{w: w, every: every, start: now, next: now.Add(every)}
}

// tick prints a line when one is due. Reading the clock costs tens of
// nanoseconds against microseconds per event.
func (p *progress) tick(n int, id, verb string) {
	if p.w == nil {
		return
	}
	now := time.Now()
	if now.Before(p.next) {
		return
	}
	p.next = now.Add(p.every)
	p.printed = true
	elapsed := now.Sub(p.start)
	fmt.Fprintf(p.w, "replay: %s %s, %.0f/s, at %s\n", countEvents(n), verb, float64(n)/elapsed.Seconds(), id)
}

// countEvents is "1 event", "2 events", "0 events".
func countEvents(n int) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}

// done prints the summary.
func (p *progress) done(res ReplayResult, verb string, err error) {
	if p.w == nil {
		return
	}
	elapsed := time.Since(p.start)
	status := "done"
	if err != nil {
		status = "stopped"
	}
	line := fmt.Sprintf("replay: %s: %s %s in %s", status, countEvents(res.Events), verb, elapsed.Round(time.Millisecond))
	if res.Last != "" {
		line += ", last " + res.Last
	}
	fmt.Fprintln(p.w, line)
}
