package server_test

// End-to-end tests of bodies nested too deep to deliver as JSON. Ingress
// keeps such a body exactly, in the base64 form (see bridge.MaxPayloadDepth);
// before it did, a signed body of 10,000 nested arrays made poll_events and
// events/poll hang for good and SIGTERM wait out the whole shutdown timeout.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	// deepCallLimit is how long any one call of a read path may take. The
	// calls answer in milliseconds (about 60 ms at most without the race
	// detector, 200 ms with it); this is a hang check, not a timing, so it
	// is generous enough never to fail on a loaded CI machine.
	deepCallLimit = 5 * time.Second
	// deepCallTimeout ends a call that hangs, so the test fails instead of
	// blocking.
	deepCallTimeout = 10 * time.Second
	// deepExitLimit is how long the process may take to exit after SIGTERM
	// with feeds open: far below the 30 s default --shutdown-timeout it
	// used to wait out.
	deepExitLimit = 5 * time.Second
)

// deepDepths are the nestings posted: just under Go's decoder limit of
// 10,000, at it, and deep enough that json.Valid refuses the body.
var deepDepths = []int{9_999, 10_000, 100_000}

// deepSent is one body posted to a label.
type deepSent struct {
	body       []byte
	deep       bool   // nested past bridge.MaxPayloadDepth: delivered as base64
	providerID string // the normal events' "id"
}

// deepBodies are the bodies posted to each label, in order: each deep body
// followed by a small normal event.
func deepBodies() []deepSent {
	var out []deepSent
	for _, d := range deepDepths {
		id := fmt.Sprintf("after-%d", d)
		out = append(out,
			deepSent{body: []byte(strings.Repeat("[", d) + strings.Repeat("]", d)), deep: true},
			deepSent{body: []byte(`{"id":"` + id + `","type":"t"}`), providerID: id},
		)
	}
	return out
}

// TestDeepPayloadsReachEveryPath posts bodies nested 9,999, 10,000 and
// 100,000 levels deep, each followed by a normal event, and reads them on
// every path: resources/read and poll_events in both eras,
// check_pending_events, events/poll and GET /v1/stream. Every call answers
// within deepCallLimit, every event arrives in order, a deep body as
// {contentType, base64} that decodes to exactly the signed bytes, a normal
// one as the JSON sent. Then SIGTERM with the feeds still open ends the
// process within deepExitLimit.
func TestDeepPayloadsReachEveryPath(t *testing.T) {
	g := startGateway(t, t.TempDir())
	legacy := connect(t, g.url, g.token, "2025-11-25")
	current := connect(t, g.url, g.token, "") // 2026-07-28
	eras := []struct {
		name string
		cs   *mcp.ClientSession
	}{{"2025-11-25", legacy}, {"2026-07-28", current}}

	// One label per leasing path, so each sees every event: poll_events in
	// each era, and check_pending_events (which reads every label).
	labels := []string{"deep-poll-legacy", "deep-poll-current", "deep-check"}
	sent := deepBodies()
	ids := map[string][]string{} // label → the IDs ingress answered, in order
	for _, label := range labels {
		reg := mustTool(t, current, "register_webhook", map[string]any{"label": label}).Structured
		hook, secret := reg["url"].(string), reg["secret"].(string)
		for _, s := range sent {
			status, resp := post(t, hook, http.Header{
				"X-Webhook-Signature": {signGeneric(secret, s.body)},
				"Content-Type":        {"application/json"},
			}, s.body)
			id, _ := resp["id"].(string)
			if status != http.StatusOK || id == "" || resp["duplicate"] == true {
				t.Fatalf("POST %d bytes to %s: %d %v, want 200 with a new event id", len(s.body), label, status, resp)
			}
			ids[label] = append(ids[label], id)
		}
	}

	// The paths that lease nothing read first.
	for _, label := range labels {
		for _, era := range eras {
			path := "resources/read " + era.name + " " + label
			deepCheck(t, path, label, ids[label], sent, deepReadResource(t, era.cs, path, label, len(sent)))
		}
		path := "events/poll " + label
		deepCheck(t, path, label, ids[label], sent, deepEventsPoll(t, g.url, g.token, path, label, len(sent)))
	}
	// The feeds stay open, at the tail of their label, for the SIGTERM below.
	var feeds []*feedStream
	for _, label := range labels {
		path := "GET /v1/stream " + label
		start := time.Now()
		f := openFeedURL(t, g.url+"/v1/stream?after=0-0&label="+url.QueryEscape(label), g.token, "")
		deepTimed(t, path, "GET", start)
		deepCheck(t, path, label, ids[label], sent, deepFeedEvents(t, f, path, len(sent)))
		feeds = append(feeds, f)
	}

	// Then the leasing paths, each acking what it got.
	deepCheck(t, "poll_events 2025-11-25", labels[0], ids[labels[0]], sent,
		deepDrain(t, legacy, "poll_events 2025-11-25", "poll_events", map[string]any{"label": labels[0]}, len(sent), true))
	deepCheck(t, "poll_events 2026-07-28", labels[1], ids[labels[1]], sent,
		deepDrain(t, current, "poll_events 2026-07-28", "poll_events", map[string]any{"label": labels[1]}, len(sent), true))
	// check_pending_events in the old era hands its leases back (nack), so
	// the new era's reads the same events and acks them.
	deepCheck(t, "check_pending_events 2025-11-25", labels[2], ids[labels[2]], sent,
		deepDrain(t, legacy, "check_pending_events 2025-11-25", "check_pending_events", map[string]any{}, len(sent), false))
	deepCheck(t, "check_pending_events 2026-07-28", labels[2], ids[labels[2]], sent,
		deepDrain(t, current, "check_pending_events 2026-07-28", "check_pending_events", map[string]any{}, len(sent), true))

	start := time.Now()
	g.signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(deepExitLimit):
		t.Fatalf("hookgate still running %s after SIGTERM with %d feeds open; stderr: %s", deepExitLimit, len(feeds), g.stderr)
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	g.waitExit() // requires exit status 0
	for _, f := range feeds {
		f.waitEnd(t)
	}
}

// deepCheck requires got to be the events sent to label, in order: the
// IDs ingress answered, each deep body in the base64 form decoding to
// exactly the bytes signed, each normal body as the JSON sent.
func deepCheck(t *testing.T, path, label string, ids []string, sent []deepSent, got []testEvent) {
	t.Helper()
	if len(got) != len(sent) {
		t.Fatalf("%s: %d events, want %d: %v", path, len(got), len(sent), eventIDs(got))
	}
	for i, e := range got {
		s := sent[i]
		if e.ID != ids[i] || e.Label != label || !e.Verified {
			t.Errorf("%s: event %d is %s of %q (verified %v), want %s of %q", path, i, e.ID, e.Label, e.Verified, ids[i], label)
		}
		if !s.deep {
			if e.ProviderEventID != s.providerID || !bytes.Equal(e.Payload, s.body) {
				t.Errorf("%s: event %s: providerEventId %q payload %s, want %q %s", path, e.ID, e.ProviderEventID, e.Payload, s.providerID, s.body)
			}
			continue
		}
		var form map[string]json.RawMessage
		var contentType, encoded string
		if err := json.Unmarshal(e.Payload, &form); err != nil || len(form) != 2 ||
			json.Unmarshal(form["contentType"], &contentType) != nil || json.Unmarshal(form["base64"], &encoded) != nil {
			t.Errorf("%s: event %s: payload %.120s… (%d bytes) is not {contentType, base64}", path, e.ID, e.Payload, len(e.Payload))
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || contentType != "application/json" || !bytes.Equal(raw, s.body) {
			t.Errorf("%s: event %s: contentType %q, base64 decodes to %d bytes (%v), want application/json and the %d bytes signed",
				path, e.ID, contentType, len(raw), err, len(s.body))
		}
	}
}

// deepTimed fails the test if a call that started at start took longer
// than deepCallLimit.
func deepTimed(t *testing.T, path, call string, start time.Time) {
	t.Helper()
	if took := time.Since(start); took > deepCallLimit {
		t.Fatalf("%s: %s took %s, want under %s", path, call, took.Round(time.Millisecond), deepCallLimit)
	}
}

// deepTool calls a tool with a deadline and requires a timely success.
func deepTool(t *testing.T, cs *mcp.ClientSession, path, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deepCallTimeout)
	defer cancel()
	start := time.Now()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %s after %s: %v", path, name, time.Since(start).Round(time.Millisecond), err)
	}
	deepTimed(t, path, name, start)
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("%s: %s failed: %+v", path, name, res.Content)
	}
	return res
}

// deepDrain reads n events with a leasing tool, a batch a call, then acks
// them (and requires the queue empty after) or, with ack false, nacks them
// so they are pending again.
func deepDrain(t *testing.T, cs *mcp.ClientSession, path, tool string, args map[string]any, n int, ack bool) []testEvent {
	t.Helper()
	var all []testEvent
	batch := func() []testEvent {
		res := deepTool(t, cs, path, tool, args)
		text, _ := res.Content[0].(*mcp.TextContent)
		if text == nil {
			t.Fatalf("%s: %s answered no text", path, tool)
		}
		var events []testEvent
		if tool == "poll_events" { // the three-tool pattern's bare array
			if err := json.Unmarshal([]byte(text.Text), &events); err != nil {
				t.Fatalf("%s: text is not an event array: %v", path, err)
			}
		} else {
			events = decodeBatch(t, text.Text).Events
		}
		structured, _ := res.StructuredContent.(map[string]any)
		if list, _ := structured["events"].([]any); len(list) != len(events) {
			t.Fatalf("%s: text has %d events, structuredContent %d", path, len(events), len(list))
		}
		return events
	}
	for len(all) < n {
		events := batch()
		if len(events) == 0 {
			t.Fatalf("%s: empty reply after %d of %d events", path, len(all), n)
		}
		all = append(all, events...)
		if ack {
			deepTool(t, cs, path, "ack_event", map[string]any{"event_ids": eventIDs(events)})
		}
	}
	if !ack {
		for _, e := range all {
			deepTool(t, cs, path, "nack_event", map[string]any{"event_id": e.ID})
		}
		return all
	}
	if extra := batch(); len(extra) != 0 {
		t.Fatalf("%s: %d more events after the %d sent: %v", path, len(extra), n, eventIDs(extra))
	}
	return all
}

// deepReadResource reads hookgate://webhooks/{label} page by page from the
// start.
func deepReadResource(t *testing.T, cs *mcp.ClientSession, path, label string, n int) []testEvent {
	t.Helper()
	var all []testEvent
	uri := "hookgate://webhooks/" + label
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatalf("%s: more than %d pages", path, pages)
		}
		ctx, cancel := context.WithTimeout(context.Background(), deepCallTimeout)
		start := time.Now()
		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
		cancel()
		if err != nil {
			t.Fatalf("%s: read %s after %s: %v", path, uri, time.Since(start).Round(time.Millisecond), err)
		}
		deepTimed(t, path, "read "+uri, start)
		var page struct {
			Events  []testEvent `json:"events"`
			Cursor  string      `json:"cursor"`
			HasMore bool        `json:"hasMore"`
		}
		if len(res.Contents) != 1 || json.Unmarshal([]byte(res.Contents[0].Text), &page) != nil {
			t.Fatalf("%s: read %s: contents %+v are not one {events, cursor, hasMore}", path, uri, res.Contents)
		}
		all = append(all, page.Events...)
		if !page.HasMore {
			return all
		}
		if len(page.Events) == 0 {
			t.Fatalf("%s: an empty page says hasMore", path)
		}
		uri = "hookgate://webhooks/" + label + "?after=" + page.Cursor
	}
}

// deepEventsPoll reads the label with raw 2026-07-28 events/poll from the
// oldest event: cursor "0-0" is before every ID, and startAt moves it up to
// the retention floor, which the events just posted are well after.
func deepEventsPoll(t *testing.T, base, token, path, label string, n int) []testEvent {
	t.Helper()
	var all []testEvent
	cursor := "0-0"
	for polls := 0; ; polls++ {
		if polls > n {
			t.Fatalf("%s: more than %d polls", path, polls)
		}
		raw := deepEvCall(t, base, token, path, "events/poll", map[string]any{"name": label, "arguments": map[string]any{}, "cursor": cursor})
		var page struct {
			Events []struct {
				Name string    `json:"name"`
				Data testEvent `json:"data"`
			} `json:"events"`
			Cursor  string `json:"cursor"`
			HasMore bool   `json:"hasMore"`
		}
		if err := json.Unmarshal(raw, &page); err != nil || page.Cursor == "" {
			t.Fatalf("%s: result %.300s: %v", path, raw, err)
		}
		for _, o := range page.Events {
			if o.Name != label {
				t.Errorf("%s: occurrence of %q, want %q", path, o.Name, label)
			}
			all = append(all, o.Data)
		}
		if !page.HasMore {
			return all
		}
		cursor = page.Cursor
	}
}

// deepEvCall is evCall with a deadline and a time limit: one raw
// 2026-07-28 request, whose JSON-RPC result it returns.
func deepEvCall(t *testing.T, base, token, path, method string, params map[string]any) json.RawMessage {
	t.Helper()
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	ctx, cancel := context.WithTimeout(context.Background(), deepCallTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/mcp", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %s after %s: %v", path, method, time.Since(start).Round(time.Millisecond), err)
	}
	defer resp.Body.Close()
	var msg struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for ev := range sseEvents(resp.Body) {
			if json.Unmarshal([]byte(ev.data), &msg) == nil && (msg.Result != nil || msg.Error != nil) {
				break
			}
		}
	} else {
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: %s: read the reply after %s: %v", path, method, time.Since(start).Round(time.Millisecond), err)
		}
		_ = json.Unmarshal(raw, &msg)
	}
	if resp.StatusCode != http.StatusOK || msg.Error != nil || msg.Result == nil {
		t.Fatalf("%s: %s: HTTP %d, error %+v, after %s", path, method, resp.StatusCode, msg.Error, time.Since(start).Round(time.Millisecond))
	}
	deepTimed(t, path, method, start)
	return msg.Result
}

// deepFeedEvents returns the next n events of a feed, each of which must
// arrive within deepCallLimit.
func deepFeedEvents(t *testing.T, f *feedStream, path string, n int) []testEvent {
	t.Helper()
	var out []testEvent
	for len(out) < n {
		start := time.Now()
		ev := f.nextEvent(t)
		deepTimed(t, path, fmt.Sprintf("event %d", len(out)+1), start)
		var e testEvent
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil || ev.id != e.ID {
			t.Fatalf("%s: block id %q data %.200s: %v", path, ev.id, ev.data, err)
		}
		out = append(out, e)
	}
	return out
}
