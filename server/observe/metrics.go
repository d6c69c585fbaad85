package observe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/bridge"
)

// latencyBuckets (seconds) span a fast local webhook to an agent that acts
// after an hour.
var latencyBuckets = []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600}

// metrics are the Prometheus collectors. Labels are low-cardinality by
// construction: provider names, outcomes, and the (principal, webhook
// label) pairs operators configured; never event IDs or payload text.
type metrics struct {
	requests     *prometheus.CounterVec
	ingressTime  *prometheus.HistogramVec
	delivery     *prometheus.HistogramVec
	processing   *prometheus.HistogramVec
	acks         *prometheus.CounterVec
	nacks        *prometheus.CounterVec
	expiries     *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	storeOps     *prometheus.HistogramVec
	pushes       *prometheus.CounterVec
	cuts         *prometheus.CounterVec
	subscribers  *prometheus.GaugeVec
	callbackRuns *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
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
			Name: "hookgate_leases_expired_total", Help: "Leases that ran out without an ack.",
		}, []string{"principal", "webhook"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_events_dead_lettered_total", Help: "Events moved to the dead-letter list by a nack after their last attempt.",
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
			Name: "hookgate_callback_deliveries_total", Help: "MCP Events webhook-mode deliveries by result.",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.ingressTime, m.delivery, m.processing, m.acks, m.nacks,
			m.expiries, m.deadLetters, m.storeOps, m.pushes, m.cuts, m.subscribers, m.callbackRuns)
	}
	return m
}

func (m *metrics) ingress(r bridge.WebhookReport) {
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

func (m *metrics) acked(principal, label string, took time.Duration) {
	m.acks.WithLabelValues(principal, label).Inc()
	m.processing.WithLabelValues(principal, label).Observe(took.Seconds())
}

func (m *metrics) nacked(principal, label string, dead bool) {
	m.nacks.WithLabelValues(principal, label).Inc()
	if dead {
		m.deadLetters.WithLabelValues(principal, label).Inc()
	}
}

func (m *metrics) leaseExpired(principal, label string) {
	m.expiries.WithLabelValues(principal, label).Inc()
}

// Subscribed implements subscribe.Metrics.
func (o *Observer) Subscribed(path, era string, delta int) {
	o.metrics.subscribers.WithLabelValues(path, era).Add(float64(delta))
}

// Pushed implements subscribe.Metrics.
func (o *Observer) Pushed(path string) { o.metrics.pushes.WithLabelValues(path).Inc() }

// Cut implements subscribe.Metrics.
func (o *Observer) Cut(path string) { o.metrics.cuts.WithLabelValues(path).Inc() }

// CallbackDelivered counts one MCP Events webhook-mode delivery attempt by
// its result (e.g. "ok", "retry", "gone", "refused").
func (o *Observer) CallbackDelivered(result string) {
	o.metrics.callbackRuns.WithLabelValues(result).Inc()
}
