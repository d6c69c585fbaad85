package observe

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/bridge/store"
)

// queueCollector exports each registration's queue at scrape time: how
// many events are pending and how old the oldest of them is. A growing age
// with a flat depth is the signature of an agent that stopped acking, which
// no counter shows until leases start expiring.
//
// It reads the registrations of the principals this process has seen
// traffic for (the store has no list of principals, by design: a token
// names one), so right after a restart a queue appears with its first
// webhook, lease or ack.
type queueCollector struct {
	o       *Observer
	timeout time.Duration
	depth   *prometheus.Desc
	age     *prometheus.Desc
	failed  *prometheus.Desc
}

func newQueueCollector(o *Observer) *queueCollector {
	labels := []string{"principal", "webhook"}
	return &queueCollector{
		o:       o,
		timeout: 5 * time.Second,
		depth: prometheus.NewDesc("hookgate_queue_depth",
			"Pending events (neither acked nor dead-lettered, leased or not) per webhook, read from the store at scrape time.", labels, nil),
		age: prometheus.NewDesc("hookgate_queue_oldest_pending_age_seconds",
			"Age of the oldest pending event per webhook (0 when none is pending), from the commit time its ID carries.", labels, nil),
		failed: prometheus.NewDesc("hookgate_queue_scrape_errors",
			"Registrations whose queue could not be read from the store during this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.age
	ch <- c.failed
}

// Collect implements prometheus.Collector.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	now := c.o.now()
	failed := 0
	for _, principal := range c.o.principals() {
		regs, err := c.o.store.Registrations(ctx, principal)
		if err != nil {
			failed++
			continue
		}
		for _, reg := range regs {
			depth, age, err := c.queue(ctx, principal, reg.Label, now)
			if err != nil {
				failed++
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(depth), principal, reg.Label)
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age.Seconds(), principal, reg.Label)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, float64(failed))
}

// queue reads one registration's depth and oldest pending age.
func (c *queueCollector) queue(ctx context.Context, principal, label string, now time.Time) (int, time.Duration, error) {
	depth, err := c.o.store.Pending(ctx, principal, label)
	if err != nil || depth == 0 {
		return depth, 0, err
	}
	oldest, err := c.o.store.ReadPending(ctx, principal, store.Query{Label: label, Limit: 1})
	if err != nil || len(oldest) == 0 {
		return depth, 0, err
	}
	return depth, max(now.Sub(time.UnixMilli(int64(oldest[0].ID.MS))), 0), nil
}

// principals lists the principals this process has seen traffic for.
func (o *Observer) principals() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := make(map[string]bool)
	var out []string
	for k := range o.windows {
		if !seen[k.principal] {
			seen[k.principal] = true
			out = append(out, k.principal)
		}
	}
	return out
}
