// Command bench runs moqp2p's benchmark suite in one run, side by side with
// its baselines, and prints a Markdown table with the ratios:
//
//	P1  one publisher → one subscriber, 1 KiB frames: ours, gomoqt v0.16.1, raw quic-go
//	P2  the same with 64 KiB frames
//	P3  one publisher → N subscriber sessions (fan-out), next to raw quic-go
//	P4  publish→deliver latency at 30 groups/s with 100 subscribers, next to raw quic-go
//	P5  memory per idle session, next to a raw quic-go connection
//	P6  group churn: one uni stream per group, next to raw quic-go stream churn
//	P7  1000 concurrent Connect to one peer: handshakes and time
//	P8  a relay hop: one publisher → relay → one subscriber, next to a direct session
//	P9  failover: the relay in use goes away, the subscriber's track carries on
//	P10 Connect to first frame behind two NATs (hole-punched), next to the open network (root: a NAT lab)
//	P11 10 000 idle sessions on one node: heap, goroutines, file descriptors per session, accept rate
//	F1  goodput of a live stream over 10 % loss + 50 ms, next to raw quic-go
//	    (not in the default rows: -rows F1; -f1-duration 60s is the full profile)
//
// Usage (from the repository root; BENCHMARKS.md has the results):
//
//	go run ./bench [-rows P1,P2,...] [-runs 5] [-json] [-quick]
//	go run ./bench -rows P6 -only ours -profile DIR [-contention]
//	go run ./bench -rows P1,P6 -versions moq-lite-05,moq-lite-04 [-runs 3]
//	go run ./bench -alpn moq-lite-04 ...   (every row on one version)
//
// P1 and P2 run every stack as two processes, publisher (QUIC server) and
// subscriber (client): gomoqt through its interop peer
// (interop/gomoqt-lite04 -bench, built on the fly: gomoqt cannot be linked
// into this module), ours and raw quic-go through helper modes of this
// command (-helper). Throughput is the subscriber's count over the time from
// its request to its last frame; CPU is the user+system time of both
// processes from their rusage, whole lifetime. P3–P7 run in this process,
// both ends included; their CPU is getrusage(RUSAGE_SELF) and their
// allocations runtime.MemStats.Mallocs around the measured stretch. Every
// stack of a row runs once per round, rounds repeat -runs times, and a cell
// shows the median and the spread (min–max); ratios are taken run by run
// (the runs of one round saw the same machine load) and then summarised.
// P11's peers run in a helper process too (-helper-many), so that the
// node's figures are its own. Only loopback is used, and every load loop is
// bounded in count and time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// profDir is -profile: where profiles go ("" for none).
var profDir string

// p8GroupsFlag and p8CacheMiB are -p8-groups and -p8-cache-mib (0: the
// defaults).
var p8GroupsFlag, p8CacheMiB int

type config struct {
	rows        []string
	runs        int
	quick       bool
	contention  bool
	profDir     string
	gomoqtBin   string
	p1Frames    int
	p2Frames    int
	p3Subs      []int
	p3Bytes     int
	p4Subs      int
	p4Duration  time.Duration
	p5Sessions  int
	p6Groups    int
	p7Connects  int
	p11Sessions int
	f1Duration  time.Duration // F1 (impaired.go)
	// metricsOverhead: P1 and P3 with metrics off and on (metrics.go)
	metricsOverhead bool
	// versions: P1 and P6 with two moq-lite versions (versions.go)
	versions []string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-helper" {
		helperMain(os.Args[1:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "-helper-many" {
		manyHelperMain(os.Args[2:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "-nat-helper" {
		natHelperMain(os.Args[1:])
		return
	}
	var cfg config
	rows := flag.String("rows", "P1,P2,P3,P4,P5,P6,P7,P8,P9,P10,P11", "rows to run, comma-separated")
	flag.IntVar(&cfg.runs, "runs", 5, "rounds per row (median and spread are reported)")
	flag.BoolVar(&cfg.quick, "quick", false, "smaller loads (a smoke test; numbers are rougher)")
	jsonOut := flag.Bool("json", false, "print the results as JSON instead of a table")
	flag.StringVar(&cfg.profDir, "profile", "", "write pprof profiles to this directory: CPU and allocs of the in-process rows, CPU of our P1/P2 processes (first run), P5 heap diffs")
	flag.BoolVar(&cfg.contention, "contention", false, "with -profile: also mutex and block profiles (they slow the run)")
	flag.StringVar(&cfg.gomoqtBin, "gomoqt", "", "prebuilt interop/gomoqt-lite04 binary (default: build it)")
	flag.IntVar(&cfg.p1Frames, "p1-frames", 200_000, "P1: 1 KiB frames per transfer")
	flag.IntVar(&cfg.p2Frames, "p2-frames", 6_000, "P2: 64 KiB frames per transfer")
	flag.IntVar(&p8GroupsFlag, "p8-groups", 0, "P8: groups of 100 × 1 KiB per transfer (default 1024; -quick 256)")
	flag.IntVar(&p8CacheMiB, "p8-cache-mib", 0, "P8: bound our relay's track caches (the forwarded track's and its upstream subscription's) to this many MiB besides the latest group (default: 64 MiB or 5 s)")
	p3subs := flag.String("p3-subs", "10,100", "P3: subscriber counts (the last one is held to the target)")
	flag.IntVar(&cfg.p3Bytes, "p3-mib", 512, "P3: MiB delivered in total per run")
	flag.IntVar(&cfg.p4Subs, "p4-subs", 100, "P4: subscribers")
	flag.DurationVar(&cfg.p4Duration, "p4-duration", 5*time.Second, "P4: duration of a run")
	flag.IntVar(&cfg.p5Sessions, "p5-sessions", 20, "P5: idle sessions per run")
	flag.IntVar(&cfg.p6Groups, "p6-groups", 100_000, "P6: groups per run")
	flag.IntVar(&cfg.p7Connects, "p7-connects", 1000, "P7: concurrent Connect calls")
	flag.IntVar(&cfg.p11Sessions, "p11-sessions", 10_000, "P11: idle sessions on one node (-quick: 1000)")
	flag.DurationVar(&cfg.f1Duration, "f1-duration", 10*time.Second, "F1: duration of the impaired stream (60s: the full profile)")
	flag.BoolVar(&quiet, "q", false, "no progress on stderr")
	flag.BoolVar(&cfg.metricsOverhead, "metrics-overhead", false, "instead of the rows: P1 and P3 (in -rows) for ours with Prometheus metrics off and on, alternating")
	flag.StringVar(&only, "only", "", "run only this stack in P3–P6: ours or raw (for profiling)")
	alpn := flag.String("alpn", "", "the one moq-lite version our servers offer in every row, e.g. moq-lite-04 (default: all, lite-05 preferred)")
	versions := flag.String("versions", "", "instead of the rows: P1 and P6 (in -rows) for ours with two versions, alternating, e.g. moq-lite-05,moq-lite-04")
	memRate := flag.Int("memprofilerate", 0, "with -profile: runtime.MemProfileRate (1 records every allocation; 0 keeps the default)")
	flag.Parse()
	if *alpn != "" {
		_ = os.Setenv(liteEnv, *alpn) // helper processes inherit it
	}
	if *versions != "" {
		if cfg.versions = strings.Split(*versions, ","); len(cfg.versions) != 2 {
			fmt.Fprintln(os.Stderr, "bench: -versions takes two versions, e.g. moq-lite-05,moq-lite-04")
			os.Exit(2)
		}
	}
	for _, r := range strings.Split(*rows, ",") {
		if r = strings.ToUpper(strings.TrimSpace(r)); r != "" {
			cfg.rows = append(cfg.rows, r)
		}
	}
	for _, s := range strings.Split(*p3subs, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err == nil && n > 0 {
			cfg.p3Subs = append(cfg.p3Subs, n)
		}
	}
	if cfg.quick {
		cfg.p1Frames, cfg.p2Frames, cfg.p3Bytes = 50_000, 1_500, 128
		cfg.p4Duration, cfg.p6Groups = 2*time.Second, 20_000
		cfg.p11Sessions = min(cfg.p11Sessions, 1_000)
	}
	cfg.runs = max(cfg.runs, 1)
	profDir = cfg.profDir
	switch {
	case profDir != "" && *memRate > 0:
		runtime.MemProfileRate = *memRate
	case profDir != "" && len(cfg.rows) == 1 && cfg.rows[0] == "P5":
		runtime.MemProfileRate = 1 // every allocation: P5's heap profiles diff a few KB per session
	}

	start := time.Now()
	lines, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	for _, l := range lines {
		l.evaluate()
	}
	if *jsonOut {
		printJSON(os.Stdout, lines)
		return
	}
	fmt.Printf("moqp2p bench: %s, %s, GOMAXPROCS=%d, %s, runs=%d, took %s\n\n",
		runtime.Version(), runtime.GOARCH, runtime.GOMAXPROCS(0), time.Now().Format("2006-01-02"), cfg.runs, time.Since(start).Round(time.Second))
	printTable(os.Stdout, lines)
}

func run(cfg config) ([]*line, error) {
	ctx := context.Background()
	want := func(r string) bool { return slices.Contains(cfg.rows, r) }
	if cfg.profDir != "" {
		if err := os.MkdirAll(cfg.profDir, 0o755); err != nil {
			return nil, err
		}
		if cfg.contention {
			runtime.SetMutexProfileFraction(10)
			runtime.SetBlockProfileRate(int(time.Microsecond))
		}
		f, err := os.Create(filepath.Join(cfg.profDir, "inproc.cpu"))
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
			kinds := []string{"allocs"}
			if cfg.contention {
				kinds = append(kinds, "mutex", "block")
			}
			for _, p := range kinds {
				if f, err := os.Create(filepath.Join(cfg.profDir, "inproc."+p)); err == nil {
					_ = pprof.Lookup(p).WriteTo(f, 0)
					_ = f.Close()
				}
			}
		}()
	}
	if cfg.metricsOverhead {
		return runMetricsOverhead(ctx, cfg), nil
	}
	if len(cfg.versions) == 2 {
		return runVersions(ctx, cfg), nil
	}
	var lines []*line
	if want("P1") || want("P2") {
		bin := cfg.gomoqtBin
		if bin == "" {
			dir, err := os.MkdirTemp("", "moqp2p-bench-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			logf("building the gomoqt peer")
			if bin, err = buildGomoqt(ctx, dir); err != nil {
				logf("gomoqt unavailable: %v", err)
			}
		}
		if want("P1") {
			lines = append(lines, runThroughput(ctx, throughputCase{"P1", 1 << 10, 100, cfg.p1Frames}, bin, cfg.runs, cfg.profDir)...)
		}
		if want("P2") {
			lines = append(lines, runThroughput(ctx, throughputCase{"P2", 64 << 10, 4, cfg.p2Frames}, bin, cfg.runs, cfg.profDir)...)
		}
	}
	if want("P3") {
		lines = append(lines, runFanout(ctx, cfg)...)
	}
	if want("P4") {
		lines = append(lines, runLatency(ctx, cfg)...)
	}
	if want("P5") {
		lines = append(lines, runIdle(ctx, cfg)...)
	}
	if want("P6") {
		lines = append(lines, runChurn(ctx, cfg)...)
	}
	if want("P7") {
		lines = append(lines, runConnect(ctx, cfg)...)
	}
	if want("P8") {
		lines = append(lines, runRelayHop(ctx, cfg)...)
	}
	if want("P9") {
		lines = append(lines, runFailover(ctx, cfg)...)
	}
	if want("P11") {
		lines = append(lines, runMany(ctx, cfg)...)

	}
	if want("F1") {
		lines = append(lines, runImpaired(ctx, cfg)...)
	}
	if want("P10") {
		lines = append(lines, runNATRow(ctx, cfg)...)
	}
	return lines, nil
}
