package subscribe

// Metrics is told what the push paths do; the server exports it. Methods
// run on delivery paths and must be quick. A nil Metrics in options means
// none is told.
type Metrics interface {
	// Subscribed changes the number of open subscriptions of a path
	// ("mcp", "sse", "websocket") and protocol era (an MCP version, or
	// "http") by delta.
	Subscribed(path, era string, delta int)
	// Pushed counts one event pushed on a path: for "mcp" once per event
	// per principal (the SDK fans it out to the sessions), for the feeds
	// once per event per stream.
	Pushed(path string)
	// Cut counts a stream cut because its reader fell behind or stopped.
	Cut(path string)
}

// nopMetrics is the Metrics of options that name none.
type nopMetrics struct{}

func (nopMetrics) Subscribed(string, string, int) {}
func (nopMetrics) Pushed(string)                  {}
func (nopMetrics) Cut(string)                     {}

// The results CallbackMetrics counts.
const (
	CallbackOK        = "ok"        // 2xx: delivered
	CallbackRefused   = "refused"   // 410 or 413: the callback will never take the event, which is skipped
	CallbackRetry     = "retry"     // failed (an error or another status); another attempt is due
	CallbackAbandoned = "abandoned" // failed on the last attempt: the event is skipped
)

// CallbackMetrics is told of MCP Events webhook-mode deliveries; the
// server exports it. Its method runs on the delivery path and must be
// quick. A nil CallbackMetrics in EventsOptions means none is told.
type CallbackMetrics interface {
	// CallbackDelivered counts one delivery attempt by its result
	// (CallbackOK, CallbackRefused, CallbackRetry or CallbackAbandoned).
	CallbackDelivered(result string)
}

// nopCallbackMetrics is the CallbackMetrics of options that name none.
type nopCallbackMetrics struct{}

func (nopCallbackMetrics) CallbackDelivered(string) {}

func metricsOrNop(m Metrics) Metrics {
	if m == nil {
		return nopMetrics{}
	}
	return m
}
