package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/pattern"
)

// gomoqtPeer builds one of the gomoqt interop peers (their own modules in
// interop/, see interop/doc.go) once per run.
var gomoqtPeer = struct {
	sync.Mutex
	bins map[string]string
}{bins: map[string]string{}}

func buildGomoqt(t *testing.T, module string) string {
	t.Helper()
	gomoqtPeer.Lock()
	defer gomoqtPeer.Unlock()
	if bin, ok := gomoqtPeer.bins[module]; ok {
		return bin
	}
	bin := filepath.Join(filepath.Dir(moqBin), module)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..", "interop", module)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", module, err, out)
	}
	gomoqtPeer.bins[module] = bin
	return bin
}

// TestGomoqt runs the moq binary against the independent gomoqt peers
// (moq-lite-03 and -04) over moql://, both as the dialing side (the issue's
// requirement) and as the listening side, publishing and subscribing.
func TestGomoqt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gomoqt peers")
	}
	t.Parallel()
	want := pattern.Expect(100, 100, 1024) // the gomoqt peers' default workload
	pubArgs := []string{"--broadcast", "bench", "--track", "data", "--frames", "10000", "--group-frames", "100", "--size", "1024", "--wait"}
	subArgs := []string{"--broadcast", "bench", "--track", "data"}
	for _, module := range []string{"gomoqt-lite03", "gomoqt-lite04"} {
		t.Run(module, func(t *testing.T) {
			t.Parallel()
			bin := buildGomoqt(t, module)
			gomoqt := func(t *testing.T, args ...string) *exec.Cmd {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				t.Cleanup(cancel)
				return exec.CommandContext(ctx, bin, append(args, "-timeout", "30s")...)
			}
			for _, c := range []struct {
				name    string
				moqRole string // what moq does; gomoqt does the other
			}{{"moq-sub", "sub"}, {"moq-pub", "pub"}} {
				t.Run(c.name+"/moq-connects", func(t *testing.T) {
					t.Parallel()
					mode := map[string]string{"sub": "pub", "pub": "sub"}[c.moqRole]
					g := gomoqt(t, "-role", "server", "-mode", mode)
					out := newLines()
					g.Stdout, g.Stderr = out, out
					if err := g.Start(); err != nil {
						t.Fatal(err)
					}
					var waitErr error
					done := make(chan struct{})
					go func() { waitErr = g.Wait(); close(done) }()
					t.Cleanup(func() { _ = g.Process.Kill(); <-done })
					addr := strings.TrimPrefix(out.await(t, module, "LISTEN ", 20*time.Second), "LISTEN ")
					args := map[string][]string{"pub": pubArgs, "sub": subArgs}[c.moqRole]
					m := start(t, "moq "+c.moqRole, nil, append([]string{c.moqRole, "--connect", "moql://" + addr, "--insecure"}, args...)...)
					m.mustSucceed(t, 40*time.Second)
					select {
					case <-done:
					case <-time.After(20 * time.Second):
						t.Fatalf("%s did not exit\n%s", module, out.bytes())
					}
					if waitErr != nil {
						t.Fatalf("%s: %v\n%s", module, waitErr, out.bytes())
					}
					if got := lastSummary(t, "moq", m.stdout.all()); got != want {
						t.Errorf("moq %s: %+v, want %+v", c.moqRole, got, want)
					}
					if got := lastSummary(t, module, out.all()); got != want {
						t.Errorf("%s: %+v, want %+v", module, got, want)
					}
				})
				t.Run(c.name+"/moq-listens", func(t *testing.T) {
					t.Parallel()
					args := map[string][]string{"pub": pubArgs, "sub": subArgs}[c.moqRole]
					m, connect := listenFor(t, c.moqRole, "moql://127.0.0.1:0", true, args...)
					mode := map[string]string{"sub": "pub", "pub": "sub"}[c.moqRole]
					g := gomoqt(t, "-role", "client", "-mode", mode, "-addr", strings.TrimPrefix(connect[1], "moql://"))
					if b, err := g.CombinedOutput(); err != nil {
						t.Fatalf("%s: %v\n%s", module, err, b)
					} else if got := lastSummary(t, module, strings.Split(strings.TrimSpace(string(b)), "\n")); got != want {
						t.Errorf("%s: %+v, want %+v", module, got, want)
					}
					m.mustSucceed(t, 40*time.Second)
					if got := lastSummary(t, "moq", m.stdout.all()); got != want {
						t.Errorf("moq %s: %+v, want %+v", c.moqRole, got, want)
					}
				})
			}
		})
	}
}
