package server_test

import (
	"slices"
	"testing"
)

// BenchmarkIngestMetricsCost is the price of observability: ingest
// throughput of a gateway with metrics and stats on (the default) as a
// ratio to one started with --metrics=false, both driven by the same
// closed-loop generator in alternating phases of one run, so a neighbour's
// burst is likely to hit both. Target: metrics_on_vs_off ≥ 0.95.
func BenchmarkIngestMetricsCost(b *testing.B) {
	skipIfInstrumented(b)
	on := startGateway(b, b.TempDir())
	off := startGateway(b, b.TempDir(), "--metrics=false")
	onURL, onSecret := registerGeneric(b, on, "bench")
	offURL, offSecret := registerGeneric(b, off, "bench")
	onGen := newLoadGen(b, onURL, onSecret, ingestWorkers)
	offGen := newLoadGen(b, offURL, offSecret, ingestWorkers)
	ctx := b.Context()
	requireNoFailures(b, "metrics-off warm-up", offGen.closedLoop(ctx, ingestWorkers, warmUp))
	requireNoFailures(b, "metrics-on warm-up", onGen.closedLoop(ctx, ingestWorkers, warmUp))
	b.ResetTimer()
	var ons, offs measured
	var ratios []float64
	for range ingestRounds {
		offRate := offs.closedLoopPhase(b, "metrics off", offGen, off.cmd.Process.Pid)
		onRate := ons.closedLoopPhase(b, "metrics on", onGen, on.cmd.Process.Pid)
		ratios = append(ratios, onRate/offRate)
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ons.rate(), "metrics_on_events/s")
	b.ReportMetric(offs.rate(), "metrics_off_events/s")
	b.ReportMetric(ons.rate()/offs.rate(), "metrics_on_vs_off")
	b.ReportMetric(slices.Min(ratios), "ratio_min")
	b.ReportMetric(slices.Max(ratios), "ratio_max")
	b.ReportMetric(perRequestUS(ons.cpu.server, ons.ok), "on_cpu_us/event")
	b.ReportMetric(perRequestUS(offs.cpu.server, offs.ok), "off_cpu_us/event")
}
