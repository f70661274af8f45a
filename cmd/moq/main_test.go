package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binEnv hands a test rerun in a private network namespace the moq binary
// its parent built.
const binEnv = "MOQP2P_TEST_MOQ_BIN"

// moqBin is the moq binary the end-to-end tests run, built once by TestMain
// (with -race when the tests run with it).
var moqBin string

func TestMain(m *testing.M) {
	if moqBin = os.Getenv(binEnv); moqBin != "" {
		// A child in a private network namespace (netns.Private): the
		// parent built the binary.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "moq-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	moqBin = filepath.Join(dir, "moq")
	args := []string{"build", "-o", moqBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building moq: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	// The in-process tests (URL parsing, the ordered writer) must not leak.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// lines is an io.Writer that keeps what a process writes, split into lines.
type lines struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func newLines() *lines { return &lines{wake: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.wake)
	l.wake = make(chan struct{})
	return len(p), nil
}

// all returns the complete lines so far (and a trailing partial one).
func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimRight(l.buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (l *lines) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}

// await returns the first complete line starting with prefix, waiting up to d.
func (l *lines) await(t *testing.T, what, prefix string, d time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		text, wake := l.buf.String(), l.wake
		l.mu.Unlock()
		for line := range strings.Lines(text) {
			if strings.HasSuffix(line, "\n") && strings.HasPrefix(line, prefix) {
				return strings.TrimSpace(line)
			}
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("%s: no line starting with %q within %s; got:\n%s", what, prefix, d, text)
			return ""
		}
	}
}

// proc is a running moq process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *lines
	stderr *lines
	done   chan struct{}
	err    error
}

// start runs moq with args; stdin may be nil. The process is killed if it
// outlives the test's budget or the test.
func start(t *testing.T, name string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, stdin, 3*time.Minute, func(ctx context.Context) *exec.Cmd {
		return exec.CommandContext(ctx, moqBin, args...)
	})
}

// startCmd is start for the command mk makes (moq run some other way),
// killed after budget.
func startCmd(t *testing.T, name string, stdin io.Reader, budget time.Duration, mk func(context.Context) *exec.Cmd) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	p := &proc{name: name, stdout: newLines(), stderr: newLines(), done: make(chan struct{})}
	p.cmd = mk(ctx)
	p.cmd.Stdin = stdin
	if p.cmd.Stdout == nil { // mk may direct it elsewhere
		p.cmd.Stdout = p.stdout
	}
	p.cmd.Stderr = p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not exit within %s\nstdout:\n%s\nstderr:\n%s", p.name, d, p.stdout.bytes(), p.stderr.bytes())
	}
	return p.cmd.ProcessState.ExitCode()
}

// interrupt sends SIGINT.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	select {
	case <-p.done: // killed at its budget, or it ended by itself: say so
		t.Fatalf("%s exited before the interrupt: %v\nstderr:\n%s", p.name, p.err, p.stderr.bytes())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
}

// mustSucceed waits for a zero exit.
func (p *proc) mustSucceed(t *testing.T, d time.Duration) {
	t.Helper()
	if code := p.wait(t, d); code != 0 {
		t.Fatalf("%s exited %d (%v)\nstdout:\n%s\nstderr:\n%s", p.name, code, p.err, p.stdout.bytes(), p.stderr.bytes())
	}
}

// field returns the value after "key: " in a line such as "listening: URL".
func field(line string) string {
	_, v, _ := strings.Cut(line, ": ")
	return v
}

// pipe returns an OS pipe for a process's stdin: the read end to give it
// and the write end to feed it (closing it is the end of input).
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.Close()
		_ = w.Close()
	})
	return r, w
}
