package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/pattern"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	binDir  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "moqp2p-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// peerBinary builds an interop peer module (once per test run) and returns
// the binary's path.
func peerBinary(t *testing.T, module string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[module]; ok {
		return bin
	}
	bin := filepath.Join(binDir, module)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = module
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", module, err, out)
	}
	built[module] = bin
	return bin
}

// peer is a running interop peer process.
type peer struct {
	cmd    *exec.Cmd
	addr   string // set for servers
	stdout *bytes.Buffer
	stderr *bytes.Buffer
	done   chan error
}

// startPeer runs a peer; for -role server it waits for its LISTEN line.
func startPeer(t *testing.T, bin string, args ...string) *peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, bin, append(args, "-timeout", "60s")...)
	p := &peer{cmd: cmd, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if addr, ok := strings.CutPrefix(line, "LISTEN "); ok {
				listening <- addr
				continue
			}
			p.stdout.WriteString(line + "\n")
		}
		p.done <- cmd.Wait()
		cancel()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", filepath.Base(bin), p.stderr.String())
		}
	})
	if contains(args, "server") {
		select {
		case p.addr = <-listening:
		case err := <-p.done:
			t.Fatalf("peer exited before listening: %v\n%s", err, p.stderr)
		case <-time.After(30 * time.Second):
			t.Fatal("peer never printed LISTEN")
		}
	}
	return p
}

func contains(args []string, s string) bool {
	for _, a := range args {
		if a == s {
			return true
		}
	}
	return false
}

// summary waits for the peer to exit successfully and returns its JSON line.
func (p *peer) summary(t *testing.T) pattern.Summary {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("peer failed: %v\n%s", err, p.stderr)
		}
	case <-time.After(80 * time.Second):
		t.Fatal("peer did not finish")
	}
	var s pattern.Summary
	if err := json.Unmarshal(bytes.TrimSpace(p.stdout.Bytes()), &s); err != nil {
		t.Fatalf("peer output %q: %v", p.stdout.String(), err)
	}
	return s
}
