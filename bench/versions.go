package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// -alpn forces one moq-lite version on every row (liteEnv, which helper
// processes inherit); -versions A,B instead runs P1 and P6 (those in -rows)
// for our stack with version A and version B in alternating runs of the
// same invocation, so both see the same machine: the ours column is A,
// the raw column B, and the ratio A ÷ B.

// runVersions is -versions.
func runVersions(ctx context.Context, cfg config) []*line {
	var lines []*line
	if slices.Contains(cfg.rows, "P1") {
		lines = append(lines, versionsP1(ctx, cfg)...)
	}
	if slices.Contains(cfg.rows, "P6") {
		lines = append(lines, versionsP6(ctx, cfg)...)
	}
	return lines
}

// withVersion runs f with our servers offering only alpn.
func withVersion(alpn string, f func()) {
	prev, had := os.LookupEnv(liteEnv)
	_ = os.Setenv(liteEnv, alpn)
	defer func() {
		if had {
			_ = os.Setenv(liteEnv, prev)
		} else {
			_ = os.Unsetenv(liteEnv)
		}
	}()
	f()
}

// versusLine puts version a in the ours column and b in the raw one.
func versusLine(row, metric, note string, a, b string, sa, sb sample) *line {
	return &line{Row: row + " " + a + " vs " + b, Metric: metric, Note: note + "; ours = " + a + ", raw = " + b, Ours: sa, Raw: sb}
}

func versionsP1(ctx context.Context, cfg config) []*line {
	fps, cpu := p1Pairs(ctx, cfg, func(i int) string { return cfg.versions[i] },
		func(i int, run func()) { withVersion(cfg.versions[i], run) })
	a, b := cfg.versions[0], cfg.versions[1]
	return []*line{
		versusLine("P1", "frames/s", "1 KiB frames, 100/group", a, b, fps[0], fps[1]),
		versusLine("P1", "CPU s/GiB", "both processes", a, b, cpu[0], cpu[1]),
	}
}

// p1Pairs runs P1's publisher and subscriber processes cfg.runs times in
// each of two settings, alternating which goes first (the second of two
// back-to-back runs tends to cost more). apply(i, run) calls run with
// setting i in force; name(i) labels it in logs and profile files. It
// returns frames/s and CPU s/GiB per setting.
func p1Pairs(ctx context.Context, cfg config, name func(i int) string, apply func(i int, run func())) (fps, cpu [2]sample) {
	self, err := os.Executable()
	if err != nil {
		logf("P1: %v", err)
		return fps, cpu
	}
	const size, perGroup = 1 << 10, 100
	groups := (cfg.p1Frames + perGroup - 1) / perGroup
	pub := []string{self, "-helper", "ours", "-role", "server", "-mode", "pub", "-groups", strconv.Itoa(groups),
		"-frames", strconv.Itoa(perGroup), "-size", strconv.Itoa(size), "-timeout", "90s"}
	sub := []string{self, "-helper", "ours", "-role", "client", "-mode", "sub", "-count", strconv.Itoa(groups * perGroup), "-timeout", "90s"}
	for run := range cfg.runs {
		for k := range 2 {
			i := (k + run) % 2
			pub, sub := pub, sub
			if cfg.profDir != "" && run == 0 {
				pub = append(pub[:len(pub):len(pub)], "-cpuprofile", filepath.Join(cfg.profDir, "P1-"+name(i)+"-pub.cpu"))
				sub = append(sub[:len(sub):len(sub)], "-cpuprofile", filepath.Join(cfg.profDir, "P1-"+name(i)+"-sub.cpu"))
			}
			var r pairResult
			apply(i, func() { r, err = runPair(ctx, pub, sub) })
			if err != nil {
				logf("P1 %s run %d: %v", name(i), run+1, err)
				continue
			}
			secs := r.elapsed.Seconds()
			fps[i] = append(fps[i], float64(r.frames)/secs)
			cpu[i] = append(cpu[i], r.cpu.Seconds()/(float64(r.bytes)/gib))
			logf("P1 %s run %d: %.0f frames/s, %.2f CPU s/GiB", name(i), run+1, fps[i][len(fps[i])-1], cpu[i][len(cpu[i])-1])
		}
	}
	return fps, cpu
}

func versionsP6(ctx context.Context, cfg config) []*line {
	var gps, cpu [2]sample
	for run := range cfg.runs {
		for k := range 2 {
			i := (k + run) % 2
			v := cfg.versions[i]
			var m measured
			var err error
			withVersion(v, func() {
				f, ferr := newMoqFan(ctx, 1)
				if ferr != nil {
					err = ferr
					return
				}
				defer f.close()
				m, err = moqChurnRun(ctx, f, "churn-"+strconv.Itoa(run)+"-"+strconv.Itoa(i), cfg.p6Groups)
			})
			if err != nil {
				logf("P6 %s run %d: %v", v, run+1, err)
				continue
			}
			gps[i] = append(gps[i], float64(cfg.p6Groups)/m.wall.Seconds())
			cpu[i] = append(cpu[i], float64(m.cpu.Microseconds())/float64(cfg.p6Groups))
			logf("P6 %s run %d: %.0f groups/s, %.1f CPU µs/group", v, run+1, gps[i][len(gps[i])-1], cpu[i][len(cpu[i])-1])
		}
	}
	a, b := cfg.versions[0], cfg.versions[1]
	return []*line{
		versusLine("P6", "groups/s", "one uni stream per group", a, b, gps[0], gps[1]),
		versusLine("P6", "CPU µs/group", "both ends", a, b, cpu[0], cpu[1]),
	}
}
