package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"
)

// sample is one metric measured once per run; its runs are summarised by
// the median and the spread (min–max).
type sample []float64

func (s sample) median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	v := slices.Clone(s)
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else {
		return (v[n/2-1] + v[n/2]) / 2
	}
}

func (s sample) spread() (lo, hi float64) {
	if len(s) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(s), slices.Max(s)
}

// ratios divides a by b run by run (runs are interleaved, so run i of both
// saw the same machine load).
func ratios(a, b sample) sample {
	var r sample
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return r
}

// line is one row of the table: one metric of one scenario, for our stack
// and the baselines, with the target it is held to.
type line struct {
	Row    string `json:"row"`
	Metric string `json:"metric"`
	Ours   sample `json:"ours"`
	Gomoqt sample `json:"gomoqt,omitempty"`
	Raw    sample `json:"raw,omitempty"`
	// Target is the goal in words ("≥ 0.8× raw"); Check evaluates it on the
	// median ratios (nil when the line is informational).
	Target string          `json:"target,omitempty"`
	Check  func(*line) any `json:"-"`
	Met    *bool           `json:"met,omitempty"`
	Note   string          `json:"note,omitempty"`
}

// vsGomoqt and vsRaw are the run-by-run ratios ours/baseline.
func (l *line) vsGomoqt() sample { return ratios(l.Ours, l.Gomoqt) }
func (l *line) vsRaw() sample    { return ratios(l.Ours, l.Raw) }

func (l *line) evaluate() {
	if l.Check == nil {
		return
	}
	switch v := l.Check(l).(type) {
	case bool:
		l.Met = &v
	}
}

// atLeast returns a check that the median of ratio(l) is ≥ x.
func atLeast(ratio func(*line) sample, x float64) func(*line) any {
	return func(l *line) any {
		r := ratio(l)
		if len(r) == 0 {
			return nil
		}
		return r.median() >= x
	}
}

// atMost returns a check that the median of ratio(l) is ≤ x.
func atMost(ratio func(*line) sample, x float64) func(*line) any {
	return func(l *line) any {
		r := ratio(l)
		if len(r) == 0 {
			return nil
		}
		return r.median() <= x
	}
}

// fmtNum prints v with three significant digits.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "–"
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// cell is "median (min–max)" or "–".
func cell(s sample) string {
	if len(s) == 0 {
		return "–"
	}
	if len(s) == 1 {
		return fmtNum(s[0])
	}
	lo, hi := s.spread()
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.median()), fmtNum(lo), fmtNum(hi))
}

func ratioCell(s sample) string {
	if len(s) == 0 {
		return "–"
	}
	lo, hi := s.spread()
	if len(s) == 1 {
		return fmt.Sprintf("%.2f×", s[0])
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", s.median(), lo, hi)
}

// printTable writes the lines as a Markdown table.
func printTable(w io.Writer, lines []*line) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| row\t| metric\t| ours\t| gomoqt\t| raw quic-go\t| ours/gomoqt\t| ours/raw\t| target\t| met\t|")
	fmt.Fprintln(tw, "| ---\t| ---\t| ---\t| ---\t| ---\t| ---\t| ---\t| ---\t| ---\t|")
	for _, l := range lines {
		met := ""
		if l.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*l.Met]
		}
		metric := l.Metric
		if l.Note != "" {
			metric += " (" + l.Note + ")"
		}
		fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t|\n",
			l.Row, metric, cell(l.Ours), cell(l.Gomoqt), cell(l.Raw),
			ratioCell(l.vsGomoqt()), ratioCell(l.vsRaw()), l.Target, met)
	}
	_ = tw.Flush()
}

func printJSON(w io.Writer, lines []*line) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(lines)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// meter measures a stretch of in-process work: wall time, CPU time and
// heap allocations.
type meter struct {
	start  time.Time
	cpu    time.Duration
	allocs uint64
}

func startMeter() meter {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return meter{start: time.Now(), cpu: cpuTime(), allocs: ms.Mallocs}
}

type measured struct {
	wall, cpu time.Duration
	allocs    uint64
	packets   uint64 // QUIC packets sent, where the row counts them
}

func (m meter) stop() measured {
	wall, cpu := time.Since(m.start), cpuTime()-m.cpu
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return measured{wall: wall, cpu: cpu, allocs: ms.Mallocs - m.allocs}
}

const gib = 1 << 30
const mib = 1 << 20

// logf reports progress on stderr (the table goes to stdout).
func logf(format string, args ...any) {
	if !quiet {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	}
}

var quiet bool

// only restricts the in-process rows to one stack ("ours" or "raw"), for
// profiling; "" runs both.
var only string

// skip says whether stack i (0 ours, 1 raw) is left out by -only.
func skip(i int) bool { return only != "" && only != []string{"ours", "raw"}[min(i, 1)] }
