package jspeer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/internal/pattern"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ensure installs the packages once for the tests that run the peer.
func ensure(t *testing.T) {
	t.Helper()
	if err := Ensure(ctxFor(t, 5*time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// The lockfile pins exactly the packages and integrity hashes we tested
// against (docs/interop.md#javascript-client).
func TestLockfilePins(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(Dir(), "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct {
			Version   string `json:"version"`
			Integrity string `json:"integrity"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"@moq/lite":    {"0.2.2", "sha512-o5X4qQlfhO8xWcWwpYsEEWWHr66SIPQKFY++ZxgMYhU+77rTfe1vWgomYjqoQcCZT3flRY2iTRLJriHgyDX/gA=="},
		"@moq/qmux":    {"0.0.6", "sha512-ISuGz05lUvf1hzHW3Aw3VnsGRJe1w9Qdog3LQ66KS+l+5mzQsPANvW8yOioEe1Z9dJO2G3sAHoGPnzwnsY9SIQ=="},
		"@moq/signals": {"0.1.10", "sha512-TSnQwcaywn/gIwC3UpwZbqYnXm2Zo8KZO6Y043jPiPnbnSlFWJVZ9TVdGAvQqrXGiaNihdcioF/0IEDABsfovw=="},
		"async-mutex":  {"0.5.0", "sha512-1A94B18jkJ3DYq284ohPxoXbfTA5HsQ7/Mf4DEhcyLx3Bz27Rh59iScbB6EPiP+B+joue6YCxcMXSbFC1tZKwA=="},
	}
	for name, w := range want {
		p, ok := lock.Packages["node_modules/"+name]
		if !ok {
			t.Errorf("%s missing from package-lock.json", name)
			continue
		}
		if p.Version != w[0] || p.Integrity != w[1] {
			t.Errorf("%s: got %s %s, want %s %s", name, p.Version, p.Integrity, w[0], w[1])
		}
	}
	if p := lock.Packages["node_modules/ws"]; !strings.HasPrefix(p.Version, "8.") {
		t.Errorf("ws %q, want 8.x", p.Version)
	}
}

// npm ci installs from the lockfile into a copy of the peer's directory (the
// real one may be in use by other test packages), only when the installed
// tree is missing or stale, and concurrent callers are serialised.
func TestEnsureInstallsFromLockfile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", ".npmrc", "peer.mjs"} {
		b, err := os.ReadFile(filepath.Join(Dir(), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(dirEnv, dir)
	t.Cleanup(func() { _ = os.Remove(filepath.Join(os.TempDir(), "moqp2p-jspeer-"+shortHash(dir)+".lock")) })
	if Dir() != dir {
		t.Fatalf("Dir() = %s, want %s", Dir(), dir)
	}
	ctx := ctxFor(t, 5*time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = Ensure(ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var pkg struct{ Version string }
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "@moq", "lite", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version != "0.2.2" {
		t.Fatalf("@moq/lite version %q (%v)", pkg.Version, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "zod")); err == nil {
		t.Error("zod (an optional peer dependency) was installed")
	}

	// Up to date: no reinstall (a marker file survives).
	marker := filepath.Join(dir, "node_modules", "marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("Ensure reinstalled an up-to-date tree")
	}
	// Stale (the lockfile changed since): npm ci again, which replaces node_modules.
	if err := os.WriteFile(filepath.Join(dir, "node_modules", stampFile), []byte("stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("Ensure did not reinstall a stale tree")
	}
}

func TestEnsureWithoutNode(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("MOQP2P_NODE", "")
	err := Ensure(ctxFor(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "node") {
		t.Fatalf("Ensure without node: %v", err)
	}
	if _, err := RunNode(ctxFor(t, 10*time.Second), Options{URL: "http://127.0.0.1:1/"}); err == nil {
		t.Fatal("RunNode without node succeeded")
	}
}

// closedPort returns 127.0.0.1:PORT where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// With nothing listening, the peer fails at once with an error event and a
// non-zero exit, whichever way it connects.
func TestNodeConnectionRefused(t *testing.T) {
	ensure(t)
	addr := closedPort(t)
	for _, proto := range []string{"", "moq-lite-03", "moq-lite-04"} {
		t.Run("protocol="+proto, func(t *testing.T) {
			start := time.Now()
			res, err := RunNode(ctxFor(t, 30*time.Second), Options{URL: "http://" + addr + "/moq", Protocol: proto})
			if err == nil {
				t.Fatal("RunNode succeeded against a closed port")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v to fail", d)
			}
			if res.ExitCode == 0 {
				t.Errorf("exit code 0")
			}
			e, ok := res.Event("error")
			if !ok || !strings.Contains(e.Error, "ECONNREFUSED") {
				t.Errorf("error event %+v (%v)", e, ok)
			}
			if !strings.Contains(err.Error(), "ECONNREFUSED") {
				t.Errorf("error does not say why: %v", err)
			}
		})
	}
}

// A server that accepts TCP but never answers: the peer's own timeout ends
// the run with an error event.
func TestNodeTimeout(t *testing.T) {
	ensure(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	start := time.Now()
	res, err := RunNode(ctxFor(t, 30*time.Second), Options{
		URL:      "http://" + ln.Addr().String() + "/moq",
		Protocol: "moq-lite-04",
		Scenario: Scenario{Timeout: time.Second},
	})
	if err == nil {
		t.Fatal("RunNode succeeded against a silent server")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	if e, ok := res.Event("error"); !ok || !strings.Contains(e.Error, "timeout") {
		t.Errorf("error event %+v", e)
	}
}

// When ctx ends first, the Go side kills node.
func TestNodeKilledByContext(t *testing.T) {
	ensure(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The listener never accepts: the WebSocket handshake hangs.
	res, err := RunNode(ctx, Options{URL: "http://" + ln.Addr().String() + "/moq", Scenario: Scenario{Timeout: time.Minute}})
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err %v", err)
	}
	if res.ExitCode != -1 {
		t.Errorf("exit code %d, want -1 (killed)", res.ExitCode)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("took %v", d)
	}
}

type selftestEvent struct {
	Payloads []struct {
		I      string `json:"i"`
		Size   int    `json:"size"`
		Hex    string `json:"hex"`
		SHA256 string `json:"sha256"`
	} `json:"payloads"`
	Expect []struct {
		Groups, Frames, Size int
		Summary, Collector   pattern.Summary
	} `json:"expect"`
}

var (
	selftestPayloads = []string{"0:0", "1:3", "3:12", "7:8", "255:9", "256:100", "1000003:1024", "4294967297:20", "18446744073709551615:16"}
	selftestExpect   = []string{"1:1:16", "2:3:10", "3:4:100", "5:7:0", "10:10:1", "100:100:1024"}
)

// checkSelftest compares the JS pattern with internal/pattern.
func checkSelftest(t *testing.T, raw json.RawMessage) {
	t.Helper()
	var st selftestEvent
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Payloads) != len(selftestPayloads) || len(st.Expect) != len(selftestExpect) {
		t.Fatalf("selftest answered %d/%d cases: %s", len(st.Payloads), len(st.Expect), raw)
	}
	for _, p := range st.Payloads {
		i, err := strconv.ParseUint(p.I, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		want := pattern.Payload(i, p.Size)
		sum := sha256.Sum256(want)
		if p.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("Payload(%d, %d): JS sha256 %s, Go %x", i, p.Size, p.SHA256, sum)
		}
		if p.Size <= 64 && p.Hex != hex.EncodeToString(want) {
			t.Errorf("Payload(%d, %d): JS %s, Go %x", i, p.Size, p.Hex, want)
		}
	}
	for _, e := range st.Expect {
		want := pattern.Expect(e.Groups, e.Frames, e.Size)
		if e.Summary != want {
			t.Errorf("Expect(%d, %d, %d): JS %+v, Go %+v", e.Groups, e.Frames, e.Size, e.Summary, want)
		}
		if e.Collector != want {
			t.Errorf("Collector fed in reverse group order (%d, %d, %d): JS %+v, Go %+v", e.Groups, e.Frames, e.Size, e.Collector, want)
		}
	}
}

// The JS payload pattern and digest equal internal/pattern's.
func TestSelftestMatchesPattern(t *testing.T) {
	ensure(t)
	res, err := RunNode(ctxFor(t, 60*time.Second), Options{Args: []string{
		"--selftest", "--payloads", strings.Join(selftestPayloads, ","), "--expect", strings.Join(selftestExpect, ","),
	}})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := res.Event("selftest")
	if !ok {
		t.Fatalf("no selftest event: %+v", res)
	}
	checkSelftest(t, e.Raw)
	if got := pattern.Expect(100, 100, 1024).SHA256; got != "e8cdd9860b277b83603140009184a5f71784a60bf714a5c8811d8df42e95880f" {
		t.Fatalf("pinned digest changed: %s", got)
	}
}

func TestScenarioArgs(t *testing.T) {
	o := Options{URL: "http://x/y", Protocol: "moq-lite-04", Tap: true, Scenario: Scenario{
		Role: RolePub, Broadcast: "b", Groups: 2, Frames: 3, Size: 4, NoAnnounce: true, Linger: 1500 * time.Millisecond,
	}}
	got := strings.Join(o.args()[1:], " ")
	want := "--url http://x/y --protocol moq-lite-04 --role pub --broadcast b --no-announce --groups 2 --frames 3 --size 4 --linger 1500ms --timeout 30000ms --tap"
	if got != want {
		t.Fatalf("args\n got %s\nwant %s", got, want)
	}
	if s := (Scenario{}).Expect(); s != pattern.Expect(1, 1, 16) {
		t.Fatalf("default Expect %+v", s)
	}
	q := BrowserOptions{URL: "https://h/p", CertHash: []byte{1, 2}, Protocols: []string{}, Scenario: Scenario{Groups: 5}}.pageQuery()
	if q.Get("certhash") != "0102" || !q.Has("protocols") || q.Get("protocols") != "" || q.Get("groups") != "5" {
		t.Fatalf("query %v", q)
	}
	if (BrowserOptions{}).pageQuery().Has("protocols") {
		t.Fatal("nil Protocols must leave the library default")
	}
}

// The npm lock excludes a second holder (flock locks belong to the open
// file, so this works within one process too) until it is released.
func TestLockFileExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockFile(ctxFor(t, 5*time.Second), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if u2, err := lockFile(ctx, path); err == nil {
		u2()
		t.Fatal("second lock taken while the first is held")
	}
	unlock()
	u3, err := lockFile(ctxFor(t, 5*time.Second), path)
	if err != nil {
		t.Fatal(err)
	}
	u3()
}

// TestRequireOutcome: a missing peer skips unless required; anything else
// (npm ci failing with node present) always fails.
func TestRequireOutcome(t *testing.T) {
	npmFailed := fmt.Errorf("jspeer: npm ci in /x: exit status 1")
	noNode := fmt.Errorf("%w: node is not runnable", ErrNoNode)
	for _, c := range []struct {
		name     string
		err      error
		required bool
		skip     bool
		fail     bool
	}{
		{"present", nil, false, false, false},
		{"present, required", nil, true, false, false},
		{"no node", noNode, false, true, false},
		{"no node, required", noNode, true, false, true},
		{"npm ci failed", npmFailed, false, false, true},
		{"npm ci failed, required", npmFailed, true, false, true},
	} {
		skip, msg := outcome(c.err, ErrNoNode, c.required)
		if skip != c.skip || (msg != "" && !skip) != c.fail {
			t.Errorf("%s: skip=%v msg=%q, want skip=%v fail=%v", c.name, skip, msg, c.skip, c.fail)
		}
	}
}
