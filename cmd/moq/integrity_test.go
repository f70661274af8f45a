package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/pattern"
)

// These tests hold the CLI to its promises about data: a finite transfer
// delivers every frame or fails naming what it lost, a slow reader does not
// make sub's memory grow, and an interrupt is obeyed at once.

// lostGroups matches sub's error for an incomplete file transfer.
var lostGroups = regexp.MustCompile(`moq: groups lost: \d+ group\(s\) did not arrive whole: [0-9, -]+`)

// TestImpairedFileTransfer sends a file from pub --stdin to sub --out over
// a link with 25 ms of delay each way (50 ms round trip) and 1 % or 10 %
// loss each way, between two network namespaces, over moql:// and libp2p.
// The output must be the input, with exit 0, or sub must fail naming the
// groups it lost: never a short file and success.
func TestImpairedFileTransfer(t *testing.T) {
	t.Parallel()
	link, err := netns.Routed(t, netns.Impairment{}, binEnv+"="+moqBin)
	switch {
	case err != nil:
		netns.Unavailable(t, "no network namespaces for the impaired link (as root, it runs): %v", err)
	case link == nil:
		return // the child ran it
	}
	const size = 2 << 20
	in := make([]byte, size)
	_, _ = rand.Read(in)
	want := sha256.Sum256(in)
	dir := t.TempDir()
	inPath := filepath.Join(dir, "in")
	if err := os.WriteFile(inPath, in, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, loss := range []float64{0.01, 0.10} {
		for _, via := range []string{"moql", "libp2p"} {
			name := fmt.Sprintf("%s/loss-%g%%", via, loss*100)
			t.Run(name, func(t *testing.T) {
				link.SetImpairment(netns.Impairment{Delay: 25 * time.Millisecond, Loss: loss})
				passed0, dropped0 := link.Counts()
				listen := "/ip4/" + link.AddrA + "/udp/0/quic-v1"
				prefix := "listening: /"
				if via == "moql" {
					listen, prefix = "moql://"+link.AddrA+":0", "listening: moql://"
				}
				f, err := os.Open(inPath)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				const budget = 4 * time.Minute
				begin := time.Now()
				pub := startCmd(t, "pub "+name, f, budget, func(ctx context.Context) *exec.Cmd {
					return link.Command(ctx, link.A, moqBin, "pub", "--listen", listen, "--broadcast", "file",
						"--stdin", "--wait", "--size", "4096", "--group-frames", "8")
				})
				addr := field(pub.stderr.await(t, pub.name, prefix, 30*time.Second))
				outPath := filepath.Join(dir, strings.ReplaceAll(name, "/", "-"))
				args := []string{"sub", "--connect", addr, "--broadcast", "file", "--out", outPath}
				if via == "moql" {
					args = append(args, "--insecure")
				}
				sub := startCmd(t, "sub "+name, nil, budget, func(ctx context.Context) *exec.Cmd {
					return link.Command(ctx, link.B, moqBin, args...)
				})
				code := sub.wait(t, budget)
				if code != 0 {
					pub.interrupt(t) // with no subscriber left it would wait for one
				}
				pub.wait(t, 30*time.Second)
				passed, dropped := link.Counts()
				t.Logf("%s: sub exit %d after %s; link forwarded %d packets, dropped %d",
					name, code, time.Since(begin).Round(time.Millisecond), passed-passed0, dropped-dropped0)
				out, _ := os.ReadFile(outPath)
				switch {
				case code == 0 && sha256.Sum256(out) == want:
					// complete
				case code == 0:
					t.Errorf("sub exited 0 with %d of %d bytes, sha256 %x (want %x)\nstderr:\n%s",
						len(out), size, sha256.Sum256(out), want, sub.stderr.bytes())
				case lostGroups.Match(sub.stderr.bytes()):
					t.Logf("sub failed naming the lost groups: %s", bytes.TrimSpace(sub.stderr.bytes()))
				default:
					t.Errorf("sub exited %d without naming lost groups\nstderr:\n%s\npub stderr:\n%s",
						code, sub.stderr.bytes(), pub.stderr.bytes())
				}
			})
		}
	}
}

// vmHWM returns a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) uint64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// subHeapBound is the live heap sub may hold against a publisher that
// outruns its reader: the received track's cache
// (broadcast.DefaultCacheMaxBytes, 64 MiB), the groups waiting ahead of a
// missing one (maxAheadBytes, 32 MiB), the group being read
// (broadcast.DefaultGroupMaxBytes, 32 MiB), and the QUIC stack's buffers.
const subHeapBound = 200 << 20

// liveHeap matches the heap sizes in a GODEBUG=gctrace=1 line: before the
// collection, after it, and the live (marked) heap.
var liveHeap = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB`)

// TestSlowReaderBounded: sub --out - writing into a pipe that is read
// slowly, against a publisher that sends as fast as it can, keeps its
// memory bounded, and exits promptly on the first SIGINT although its
// output is blocked. The live heap after each collection comes from the Go
// runtime's GC trace; the resident set (which the race detector inflates)
// is logged and checked loosely.
func TestSlowReaderBounded(t *testing.T) {
	t.Parallel()
	pub, connect := listenFor(t, "pub", "moql://127.0.0.1:0", true, "--broadcast", "fast", "--frames", "0", "--rate", "0",
		"--size", "4096", "--group-frames", "30", "--wait")
	r, w := pipe(t)
	sub := startCmd(t, "sub --out - | slow", nil, 60*time.Second, func(ctx context.Context) *exec.Cmd {
		c := exec.CommandContext(ctx, moqBin, append(append([]string{"sub"}, connect...), "--broadcast", "fast", "--out", "-")...)
		c.Stdout = w
		c.Env = append(os.Environ(), "GODEBUG=gctrace=1")
		return c
	})
	_ = w.Close() // the child has it
	// Read 64 KiB every 50 ms (1.25 MiB/s) for 8 s: far slower than
	// loopback delivers.
	buf := make([]byte, 64<<10)
	var read int
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range 160 {
		<-tick.C
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("reading sub's output: %v\nstderr:\n%s", err, sub.stderr.bytes())
		}
		read += n
	}
	rss := vmHWM(t, sub.cmd.Process.Pid)
	var heap uint64
	gcs := 0
	for _, m := range liveHeap.FindAllSubmatch(sub.stderr.bytes(), -1) {
		live, _ := strconv.ParseUint(string(m[3]), 10, 64)
		heap = max(heap, live<<20)
		gcs++
	}
	t.Logf("read %d KiB in 8 s; sub: peak live heap %d MiB over %d collections, peak RSS %d MiB", read>>10, heap>>20, gcs, rss>>20)
	switch {
	case gcs == 0:
		t.Errorf("no GC trace from sub:\n%s", sub.stderr.bytes())
	case heap > subHeapBound:
		t.Errorf("sub's live heap reached %d MiB, over %d MiB", heap>>20, subHeapBound>>20)
	}
	if rss > 1<<30 {
		t.Errorf("sub's peak RSS %d MiB", rss>>20)
	}
	sub.interrupt(t)
	begin := time.Now()
	if code := sub.wait(t, 5*time.Second); code != 0 {
		t.Errorf("interrupted sub exited %d\nstderr:\n%s", code, sub.stderr.bytes())
	}
	t.Logf("sub exited %s after SIGINT", time.Since(begin).Round(time.Millisecond))
	pub.interrupt(t)
	pub.mustSucceed(t, 10*time.Second)
}

// TestPubFlagLimits: --rate must be a finite, non-negative number and
// --linger must not be negative.
func TestPubFlagLimits(t *testing.T) {
	t.Parallel()
	base := []string{"pub", "--broadcast", "x", "--listen", "moql://127.0.0.1:0"}
	for _, c := range []struct{ flag, value, want string }{
		{"--rate", "NaN", "--rate must be 0"},
		{"--rate", "Inf", "--rate must be 0"},
		{"--rate", "-Inf", "--rate must be 0"},
		{"--rate", "-1", "--rate must be 0"},
		{"--rate", "1e-9", "--rate must be 0"},
		{"--linger", "-1s", "--linger must not be negative"},
	} {
		t.Run(c.flag+"="+c.value, func(t *testing.T) {
			t.Parallel()
			p := start(t, "pub "+c.flag, nil, append(base, c.flag+"="+c.value)...)
			code := p.wait(t, 15*time.Second)
			errLines := p.stderr.all()
			if code != 2 || len(errLines) != 1 || !strings.Contains(errLines[0], c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and one line containing %q", code, errLines, c.want)
			}
		})
	}
}

// TestPubLingerVanishedSubscriber: a subscriber that vanishes (killed, so
// its connection never closes) holds pub no longer than --linger after the
// last frame, not until the connection times out (30 s), and pub says it
// gave up on it.
func TestPubLingerVanishedSubscriber(t *testing.T) {
	t.Parallel()
	// A dead-peer bound longer than the test keeps the session up, so that
	// --linger is what ends it.
	pub, connect := listenFor(t, "pub", "moql://127.0.0.1:0", true, "--broadcast", "v", "--frames", "300",
		"--size", "1024", "--group-frames", "10", "--rate", "200", "--wait", "--linger", "1s", "--dead-peer-timeout", "30s")
	sub := start(t, "sub", nil, append(append([]string{"sub"}, connect...), "--broadcast", "v", "--out", "-", "--dead-peer-timeout", "30s")...)
	waitOutput(t, sub) // it is receiving: kill it mid-transfer
	if err := sub.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	sub.wait(t, 5*time.Second)
	killed := time.Now()
	// pub produces the rest (under 1.5 s at --rate 200), then gives up
	// after 1 s without progress.
	pub.mustSucceed(t, 15*time.Second)
	t.Logf("pub exited %s after the subscriber was killed", time.Since(killed).Round(time.Millisecond))
	if got := lastSummary(t, "pub", pub.stdout.all()); got != pattern.Expect(30, 10, 1024) {
		t.Errorf("pub summary %+v; want 30 groups of 10 frames", got)
	}
	if !strings.Contains(string(pub.stderr.bytes()), "no progress") {
		t.Errorf("pub did not say it gave up on the subscriber:\n%s", pub.stderr.bytes())
	}
}

// waitOutput waits until p has written something on stdout.
func waitOutput(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		p.stdout.mu.Lock()
		n, wake := p.stdout.buf.Len(), p.stdout.wake
		p.stdout.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-wake:
		case <-p.done:
			t.Fatalf("%s exited before writing anything\nstderr:\n%s", p.name, p.stderr.bytes())
		case <-deadline.C:
			t.Fatalf("%s wrote nothing within 20 s", p.name)
		}
	}
}

// TestTinyGroupBurst: 10 000 one-byte frames, one per group, produced as
// fast as possible: a finite transfer goes at the subscriber's pace, so
// sub gets every frame (it used to get a fifth), over moql:// and libp2p,
// and pub reports them all delivered.
func TestTinyGroupBurst(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, url string }{
		{"moql", "moql://127.0.0.1:0"},
		{"libp2p", "/ip4/127.0.0.1/udp/0/quic-v1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pub, connect := listenFor(t, "pub", c.url, true, "--broadcast", "tiny", "--frames", "10000",
				"--size", "1", "--group-frames", "1", "--wait")
			// A file transfer (--out): every group, however late. A live
			// sub skips a group missing for 500 ms, and on a loaded runner
			// one demoted behind newer groups has trailed that long.
			out := filepath.Join(t.TempDir(), "out")
			sub := start(t, "sub", nil, append(append([]string{"sub"}, connect...), "--broadcast", "tiny", "--out", out)...)
			sub.mustSucceed(t, 45*time.Second)
			pub.mustSucceed(t, 45*time.Second)
			want := pattern.Expect(10000, 1, 1)
			var s subSummary
			jsonLine(t, "sub", sub.stdout.all(), &s)
			if s.Summary != want || s.SkippedGroups != 0 {
				t.Errorf("sub summary %+v, want %+v and no skipped groups", s, want)
			}
			var p pubSummary
			jsonLine(t, "pub", pub.stdout.all(), &p)
			if p.Summary != want || p.DeliveredGroups != 10000 || p.DeliveredFrames != 10000 {
				t.Errorf("pub summary %+v, want %+v, all delivered", p, want)
			}
			for _, p := range []*proc{pub, sub} {
				if s := string(p.stderr.bytes()); strings.Contains(s, "level=") {
					t.Errorf("%s logged:\n%s", p.name, s)
				}
			}
		})
	}
}

// jsonLine parses the last line of out into v.
func jsonLine(t *testing.T, who string, out []string, v any) {
	t.Helper()
	if len(out) == 0 {
		t.Fatalf("%s printed no summary", who)
	}
	if err := json.Unmarshal([]byte(out[len(out)-1]), v); err != nil {
		t.Fatalf("%s: summary %q: %v", who, out[len(out)-1], err)
	}
}
