package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// pairResult is one P1/P2 transfer between two processes.
type pairResult struct {
	frames, bytes uint64
	elapsed       time.Duration // subscriber: request to last frame
	cpu           time.Duration // both processes, user + system, whole lifetime
}

// runPair starts the server (publisher), then the client (subscriber) on
// the address it printed, waits for both, and returns the subscriber's
// figures and the CPU time of both processes (from their rusage).
func runPair(ctx context.Context, server, client []string) (pairResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, server[0], server[1:]...)
	var srvErr bytes.Buffer
	srv.Stderr = &srvErr
	out, err := srv.StdoutPipe()
	if err != nil {
		return pairResult{}, err
	}
	if err := srv.Start(); err != nil {
		return pairResult{}, err
	}
	srvDone := make(chan error, 1)
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				listening <- addr
			}
		}
		srvDone <- srv.Wait()
	}()
	kill := func() { _ = srv.Process.Kill(); <-srvDone }
	var addr string
	select {
	case addr = <-listening:
	case err := <-srvDone:
		return pairResult{}, fmt.Errorf("server exited before listening: %v: %s", err, srvErr.String())
	case <-ctx.Done():
		kill()
		return pairResult{}, fmt.Errorf("server never listened")
	}
	cli := exec.CommandContext(ctx, client[0], append(client[1:], "-addr", addr)...)
	var cliOut, cliErr bytes.Buffer
	cli.Stdout, cli.Stderr = &cliOut, &cliErr
	if err := cli.Run(); err != nil {
		kill()
		return pairResult{}, fmt.Errorf("subscriber: %v: %s", err, cliErr.String())
	}
	select {
	case err := <-srvDone:
		if err != nil {
			return pairResult{}, fmt.Errorf("publisher: %v: %s", err, srvErr.String())
		}
	case <-time.After(20 * time.Second):
		kill()
		return pairResult{}, fmt.Errorf("publisher did not exit after the subscriber left")
	}
	var hr helperResult
	lines := strings.Split(strings.TrimSpace(cliOut.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &hr); err != nil {
		return pairResult{}, fmt.Errorf("subscriber output %q: %w", cliOut.String(), err)
	}
	cpu := srv.ProcessState.UserTime() + srv.ProcessState.SystemTime() +
		cli.ProcessState.UserTime() + cli.ProcessState.SystemTime()
	return pairResult{frames: hr.Frames, bytes: hr.Bytes, elapsed: time.Duration(hr.ElapsedNS), cpu: cpu}, nil
}

// buildGomoqt builds the gomoqt interop peer (its own module) into dir.
func buildGomoqt(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "gomoqt-lite04")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(root, "interop", "gomoqt-lite04")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", cmd.Dir, err, out)
	}
	return bin, nil
}

// throughputCase is P1 or P2.
type throughputCase struct {
	row               string
	size, perGroup, n int
}

// runThroughput measures one case for every stack, runs interleaved, and
// returns its lines.
func runThroughput(ctx context.Context, c throughputCase, gomoqtBin string, runs int, profDir string) []*line {
	self, err := os.Executable()
	if err != nil {
		logf("%s: %v", c.row, err)
		return nil
	}
	groups := (c.n + c.perGroup - 1) / c.perGroup
	count := strconv.Itoa(groups * c.perGroup)
	pubArgs := []string{"-role", "server", "-mode", "pub", "-groups", strconv.Itoa(groups), "-frames", strconv.Itoa(c.perGroup), "-size", strconv.Itoa(c.size), "-timeout", "90s"}
	subArgs := []string{"-role", "client", "-mode", "sub", "-count", count, "-timeout", "90s"}
	stacks := []struct {
		name     string
		pub, sub []string
	}{
		{"ours", append([]string{self, "-helper", "ours"}, pubArgs...), append([]string{self, "-helper", "ours"}, subArgs...)},
		{"raw", append([]string{self, "-helper", "raw"}, pubArgs...), append([]string{self, "-helper", "raw"}, subArgs...)},
	}
	if gomoqtBin != "" {
		stacks = append(stacks, struct {
			name     string
			pub, sub []string
		}{"gomoqt", append([]string{gomoqtBin, "-bench", "-broadcast", "/bench", "-track", "data"}, pubArgs...),
			append([]string{gomoqtBin, "-bench", "-broadcast", "/bench", "-track", "data"}, subArgs...)})
	}
	fps, mibs, cpu := map[string]sample{}, map[string]sample{}, map[string]sample{}
	for run := range runs {
		for _, st := range stacks {
			pub, sub := st.pub, st.sub
			if profDir != "" && st.name == "ours" && run == 0 {
				pub = append(pub[:len(pub):len(pub)], "-cpuprofile", filepath.Join(profDir, c.row+"-ours-pub.cpu"))
				sub = append(sub[:len(sub):len(sub)], "-cpuprofile", filepath.Join(profDir, c.row+"-ours-sub.cpu"))
			}
			r, err := runPair(ctx, pub, sub)
			if err != nil {
				logf("%s %s run %d: %v", c.row, st.name, run+1, err)
				continue
			}
			secs := r.elapsed.Seconds()
			fps[st.name] = append(fps[st.name], float64(r.frames)/secs)
			mibs[st.name] = append(mibs[st.name], float64(r.bytes)/mib/secs)
			cpu[st.name] = append(cpu[st.name], r.cpu.Seconds()/(float64(r.bytes)/gib))
			logf("%s %-6s run %d: %.0f frames/s, %.1f MiB/s, %.2f CPU s/GiB", c.row, st.name, run+1,
				float64(r.frames)/secs, float64(r.bytes)/mib/secs, r.cpu.Seconds()/(float64(r.bytes)/gib))
		}
	}
	what := fmt.Sprintf("%s frames, %d/group", sizeName(c.size), c.perGroup)
	l1 := &line{Row: c.row, Metric: "frames/s", Note: what, Ours: fps["ours"], Gomoqt: fps["gomoqt"], Raw: fps["raw"]}
	l2 := &line{Row: c.row, Metric: "MiB/s", Ours: mibs["ours"], Gomoqt: mibs["gomoqt"], Raw: mibs["raw"]}
	l3 := &line{Row: c.row, Metric: "CPU s/GiB", Note: "both processes", Ours: cpu["ours"], Gomoqt: cpu["gomoqt"], Raw: cpu["raw"]}
	lines := []*line{l1, l2, l3}
	if len(fps["gomoqt"]) > 0 {
		// For scale: how far the same bytes on bare quic-go are ahead of gomoqt.
		lines = append(lines, &line{Row: c.row, Metric: "raw quic-go ÷ gomoqt frames/s (raw's figures in the ours column)", Ours: fps["raw"], Gomoqt: fps["gomoqt"]})
	}
	switch c.row {
	case "P1":
		// Raw quic-go carrying the same bytes is itself only 1.8–2.8× gomoqt
		// (its row below), so the bar is raw quic-go's pace at its cost.
		l1.Target = "≥ 1.0× raw"
		l1.Check = atLeast((*line).vsRaw, 1.0)
		l3.Target = "≤ 1.0× raw"
		l3.Check = atMost((*line).vsRaw, 1.0)
	case "P2":
		l1.Target = "≥ 0.9× raw"
		l1.Check = atLeast((*line).vsRaw, 0.9)
	}
	return lines
}

func sizeName(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}
