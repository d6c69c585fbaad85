package observe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/bridge"
)

// latencyBuckets (seconds) span a fast local webhook to an agent that acts
// after an hour.
var latencyBuckets = []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600}

// recorder takes the observer's metric updates. With metrics on it is
// promMetrics; with them off (no Registerer) it is nopMetrics, so that
// --metrics=false does no metric work on the request paths, rather than
// updating collectors nobody exports.
type recorder interface {
	ingress(r bridge.WebhookReport)
	acked(principal, label string, took time.Duration)
	nacked(principal, label string)
	deadLettered(principal, label string, n int)
	expiredUnacked(principal, label string, n int)
	leaseExpired(principal, label string)
	storeOp(op, result string, took time.Duration)
	subscribed(path, era string, delta int)
	pushed(path string)
	cut(path string)
	callback(result string)
}

// nopMetrics is the recorder of an observer without metrics.
type nopMetrics struct{}

func (nopMetrics) ingress(bridge.WebhookReport)          {}
func (nopMetrics) acked(string, string, time.Duration)   {}
func (nopMetrics) nacked(string, string)                 {}
func (nopMetrics) deadLettered(string, string, int)      {}
func (nopMetrics) expiredUnacked(string, string, int)    {}
func (nopMetrics) leaseExpired(string, string)           {}
func (nopMetrics) storeOp(string, string, time.Duration) {}
func (nopMetrics) subscribed(string, string, int)        {}
func (nopMetrics) pushed(string)                         {}
func (nopMetrics) cut(string)                            {}
func (nopMetrics) callback(string)                       {}

// promMetrics are the Prometheus collectors. Labels are low-cardinality by
// construction: provider names, outcomes, and the (principal, webhook
// label) pairs operators configured; never event IDs or payload text.
type promMetrics struct {
	requests     *prometheus.CounterVec
	ingressTime  *prometheus.HistogramVec
	delivery     *prometheus.HistogramVec
	processing   *prometheus.HistogramVec
	acks         *prometheus.CounterVec
	nacks        *prometheus.CounterVec
	expiries     *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	expired      *prometheus.CounterVec
	storeOps     *prometheus.HistogramVec
	pushes       *prometheus.CounterVec
	cuts         *prometheus.CounterVec
	subscribers  *prometheus.GaugeVec
	callbackRuns *prometheus.CounterVec
}

// newPromMetrics makes the collectors and registers them with reg. sweep
// counts the leases that ran out since the last look; the lease-expiry
// counter runs it at every scrape, so a stuck agent's expiries show even
// when nothing else (a poll, an ack, get_stats) comes by to notice them.
func newPromMetrics(reg prometheus.Registerer, sweep func()) *promMetrics {
	m := &promMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_ingress_requests_total",
			Help: "Webhook requests by provider and outcome (accepted, duplicate, bad_signature, stale, too_large, unknown, gone, store_error, handshake, bad_request).",
		}, []string{"provider", "outcome"}),
		ingressTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookgate_ingress_duration_seconds",
			Help:    "Time to answer a webhook request, including the durable write.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .5, 1},
		}, []string{"provider"}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookgate_delivery_latency_seconds",
			Help:    "Provider's event time (where the payload or signature carries one) to hookgate's 2xx.",
			Buckets: latencyBuckets,
		}, []string{"principal", "webhook", "provider"}),
		processing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookgate_processing_latency_seconds",
			Help:    "hookgate's 2xx to the agent's ack.",
			Buckets: latencyBuckets,
		}, []string{"principal", "webhook"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_events_acked_total", Help: "Events acked by agents.",
		}, []string{"principal", "webhook"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_events_nacked_total", Help: "Events handed back by agents.",
		}, []string{"principal", "webhook"}),
		expiries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_leases_expired_total", Help: "Leases that ran out without an ack (the event comes back, so this is not a drop).",
		}, []string{"principal", "webhook"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_events_dead_lettered_total", Help: "Events moved to the dead-letter list without an ack after their last attempt: nacked, or their last lease ran out.",
		}, []string{"principal", "webhook"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_events_expired_unacked_total", Help: "Events deleted by retention while still pending (never acked nor dead-lettered).",
		}, []string{"principal", "webhook"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookgate_store_operation_seconds",
			Help:    "Store operation latency by operation and result.",
			Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .05, .1, .5, 1},
		}, []string{"op", "result"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_push_notifications_total", Help: "Events pushed, by path: for mcp one per event per principal (the SDK fans it out to that principal's subscribed sessions), for sse and websocket one per event per stream.",
		}, []string{"path"}),
		cuts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_push_cuts_total", Help: "Streams cut because their reader fell behind or stopped reading, by path.",
		}, []string{"path"}),
		subscribers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookgate_subscribers", Help: "Open subscriptions by path and protocol era.",
		}, []string{"path", "era"}),
		callbackRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_callback_deliveries_total", Help: "MCP Events webhook-mode delivery attempts by result: ok (2xx), refused (410 or 413: event skipped), retry (failed, another attempt due), abandoned (failed on the last attempt: event skipped).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.requests, m.ingressTime, m.delivery, m.processing, m.acks, m.nacks,
		sweepFirst{Collector: m.expiries, sweep: sweep}, m.deadLetters, m.expired, m.storeOps, m.pushes, m.cuts, m.subscribers, m.callbackRuns)
	return m
}

// sweepFirst is a collector that runs sweep before collecting: Gather
// collects the registered collectors concurrently, so the sweep must run
// inside the collector whose values it changes to be seen in the same
// scrape.
type sweepFirst struct {
	prometheus.Collector
	sweep func()
}

// Collect implements prometheus.Collector.
func (c sweepFirst) Collect(ch chan<- prometheus.Metric) {
	c.sweep()
	c.Collector.Collect(ch)
}

func (m *promMetrics) ingress(r bridge.WebhookReport) {
	provider := r.Provider
	if provider == "" {
		provider = "unknown"
	}
	m.requests.WithLabelValues(provider, string(r.Outcome)).Inc()
	m.ingressTime.WithLabelValues(provider).Observe(r.Duration.Seconds())
	if r.Outcome == bridge.OutcomeAccepted && !r.EventTime.IsZero() {
		m.delivery.WithLabelValues(r.Principal, r.Label, provider).Observe(r.ReceivedAt.Sub(r.EventTime).Seconds())
	}
}

func (m *promMetrics) acked(principal, label string, took time.Duration) {
	m.acks.WithLabelValues(principal, label).Inc()
	m.processing.WithLabelValues(principal, label).Observe(took.Seconds())
}

func (m *promMetrics) nacked(principal, label string) {
	m.nacks.WithLabelValues(principal, label).Inc()
}

func (m *promMetrics) deadLettered(principal, label string, n int) {
	m.deadLetters.WithLabelValues(principal, label).Add(float64(n))
}

func (m *promMetrics) expiredUnacked(principal, label string, n int) {
	m.expired.WithLabelValues(principal, label).Add(float64(n))
}

func (m *promMetrics) leaseExpired(principal, label string) {
	m.expiries.WithLabelValues(principal, label).Inc()
}

func (m *promMetrics) storeOp(op, result string, took time.Duration) {
	m.storeOps.WithLabelValues(op, result).Observe(took.Seconds())
}

func (m *promMetrics) subscribed(path, era string, delta int) {
	m.subscribers.WithLabelValues(path, era).Add(float64(delta))
}

func (m *promMetrics) pushed(path string) { m.pushes.WithLabelValues(path).Inc() }

func (m *promMetrics) cut(path string) { m.cuts.WithLabelValues(path).Inc() }

func (m *promMetrics) callback(result string) { m.callbackRuns.WithLabelValues(result).Inc() }

// Subscribed implements subscribe.Metrics.
func (o *Observer) Subscribed(path, era string, delta int) { o.metrics.subscribed(path, era, delta) }

// Pushed implements subscribe.Metrics.
func (o *Observer) Pushed(path string) { o.metrics.pushed(path) }

// Cut implements subscribe.Metrics.
func (o *Observer) Cut(path string) { o.metrics.cut(path) }

// CallbackDelivered implements subscribe.CallbackMetrics: it counts one
// MCP Events webhook-mode delivery attempt by its result.
func (o *Observer) CallbackDelivered(result string) { o.metrics.callback(result) }
