package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqp2p/moqp2p/metrics"
	"github.com/moqp2p/moqp2p/session"
)

// -metrics-overhead: P1 and P3 for our stack only, with Prometheus metrics
// off and on (package metrics, as moq.WithMetrics installs it) in
// alternating runs of the same invocation, so both see the same machine.
// P1's helper processes learn the setting from metricsEnv; P3 runs two
// fan-outs side by side in this process, one of each.

// metricsEnv, when set in a helper's environment, gives its sessions the
// Prometheus tracer.
const metricsEnv = "MOQP2P_BENCH_METRICS"

// inprocMetrics says whether sessions made in this process now get the
// tracer (P3's fan-outs; the helpers read metricsEnv).
var inprocMetrics bool

var benchRegistry = sync.OnceValue(func() *prometheus.Registry { return prometheus.NewRegistry() })

// benchTracer is the MetricsTracer for a bench session: nil (no metrics)
// unless metrics are on.
func benchTracer() session.MetricsTracer {
	if !inprocMetrics && os.Getenv(metricsEnv) == "" {
		return nil
	}
	return metrics.NewTracer(metrics.WithRegisterer(benchRegistry()))
}

// runMetricsOverhead is -metrics-overhead.
func runMetricsOverhead(ctx context.Context, cfg config) []*line {
	var lines []*line
	if slices.Contains(cfg.rows, "P1") {
		lines = append(lines, metricsP1(ctx, cfg)...)
	}
	if slices.Contains(cfg.rows, "P3") {
		lines = append(lines, metricsP3(ctx, cfg)...)
	}
	return lines
}

// overheadLine puts metrics on in the ours column and off in the raw one:
// the ratio column is on ÷ off.
func overheadLine(row, metric, note string, on, off sample, higherBetter bool) *line {
	l := &line{Row: row + " metrics", Metric: metric, Note: note + "; ours = metrics on, raw = metrics off", Ours: on, Raw: off}
	if higherBetter {
		l.Target = "≥ 0.97× off"
		l.Check = atLeast((*line).vsRaw, 0.97)
	}
	return l
}

func metricsP1(ctx context.Context, cfg config) []*line {
	fps, cpu := p1Pairs(ctx, cfg, func(on int) string { return [2]string{"metrics-off", "metrics-on"}[on] },
		func(on int, run func()) {
			if on == 1 {
				_ = os.Setenv(metricsEnv, "1")
			}
			run()
			_ = os.Unsetenv(metricsEnv)
		})
	return []*line{
		overheadLine("P1", "frames/s", "1 KiB frames, 100/group", fps[1], fps[0], true),
		overheadLine("P1", "CPU s/GiB", "both processes", cpu[1], cpu[0], false),
	}
}

func metricsP3(ctx context.Context, cfg config) []*line {
	const size, perGroup = 1 << 10, 100
	n := cfg.p3Subs[len(cfg.p3Subs)-1]
	groups := max(1, cfg.p3Bytes*mib/(n*perGroup*size))
	// A fresh fan-out per run and setting: two long-lived ones differ by
	// a few percent even with the same setting (the one made second costs
	// more CPU), which would hide what is measured here.
	once := func(on bool, name string) (fanResult, error) {
		inprocMetrics = on
		f, err := newMoqFan(ctx, n)
		inprocMetrics = false
		if err != nil {
			return fanResult{}, err
		}
		defer f.close()
		_, _ = moqFanRun(ctx, f, name+"-warm", max(1, groups/5), perGroup, size)
		return moqFanRun(ctx, f, name, groups, perGroup, size)
	}
	var thr, cpu [2]sample
	for run := range cfg.runs {
		for k := range 2 {
			on := (k + run) % 2
			r, err := once(on == 1, fmt.Sprintf("mfan%d-%d", on, run))
			if err != nil {
				logf("P3 metrics=%v run %d: %v", on == 1, run+1, err)
				continue
			}
			thr[on] = append(thr[on], float64(r.bytes)/mib/r.m.wall.Seconds())
			cpu[on] = append(cpu[on], r.m.cpu.Seconds()/(float64(r.bytes)/gib))
			logf("P3 metrics=%-5v run %d: %.1f MiB/s, %.2f CPU s/GiB", on == 1, run+1, thr[on][len(thr[on])-1], cpu[on][len(cpu[on])-1])
		}
	}
	note := fmt.Sprintf("%d subscribers", n)
	return []*line{
		overheadLine("P3", "delivered MiB/s", note, thr[1], thr[0], true),
		overheadLine("P3", "CPU s/GiB", note+", both ends", cpu[1], cpu[0], false),
	}
}
