// Package jspeer drives the independent JavaScript moq-lite peers
// (@moq/lite 0.2.2, kept in interop/jspeer, and with Lib LibNet @moq/net
// 0.3.4, moq-lite-05, kept in interop/jsnet) from Go tests: under Node 20
// over WebSocket (RunNode, Start) and in headless Chromium over WebTransport
// (Chromium), plus a generic "load a page in Chromium and wait for what it
// POSTs" helper (RunPage, LaunchChromium, Results) for other browser pages.
//
// The peer reports one JSON event per line ({"event":"connected",…},
// "announced", "subscribed", "recv", "published", "served", "done", "error");
// the payloads follow internal/pattern, so a "done" event's summary can be
// compared with pattern.Expect.
//
// Ensure installs the pinned npm packages (npm ci from the committed
// package-lock.json) the first time, serialised across processes; RunNode and
// Chromium call it themselves.
package jspeer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// ErrNoNode is wrapped by the errors returned when node or npm is not on PATH.
var ErrNoNode = errors.New("jspeer: node/npm not found")

// dirEnv overrides where the interop/jspeer directory is.
const dirEnv = "MOQP2P_JSPEER_DIR"

// stampFile, inside node_modules, records the hash of the package-lock.json,
// package.json and .npmrc that the installed tree came from.
const stampFile = ".moqp2p-lock-sha256"

// Dir returns the absolute path of the JS peer's directory (interop/jspeer in
// the repository). $MOQP2P_JSPEER_DIR overrides it; otherwise it is found
// from this source file's location, or else by walking up from the working
// directory to the module root.
func Dir() string {
	if d := os.Getenv(dirEnv); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		d := filepath.Join(filepath.Dir(file), "..", "..", "interop", "jspeer")
		if isPeerDir(d) {
			return filepath.Clean(d)
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if p := filepath.Join(d, "interop", "jspeer"); isPeerDir(p) {
				return p
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return filepath.Join("interop", "jspeer")
}

// Lib is the JavaScript library a peer runs.
type Lib string

// The libraries: the peer scripts live in interop/jspeer; @moq/net and its
// scenario in interop/jsnet beside it.
const (
	LibLite Lib = ""    // @moq/lite 0.2.2 (lite-01..04)
	LibNet  Lib = "net" // @moq/net 0.3.4 (prefers moq-lite-05)
)

// NetDir returns the @moq/net peer's directory, interop/jsnet, beside Dir().
func NetDir() string { return filepath.Join(filepath.Dir(Dir()), "jsnet") }

// dirs are the package directories a run of lib needs installed: the peer
// scripts' (and ws) always.
func (l Lib) dirs() []string {
	if l == LibNet {
		return []string{Dir(), NetDir()}
	}
	return []string{Dir()}
}

// EnsureLib is Ensure for every package directory lib needs.
func EnsureLib(ctx context.Context, lib Lib) error {
	for _, d := range lib.dirs() {
		if err := ensureDir(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

func isPeerDir(d string) bool {
	_, err := os.Stat(filepath.Join(d, "peer.mjs"))
	return err == nil
}

var (
	ensureMu sync.Mutex
	ensured  = map[string]string{} // per directory, the lockfile hash installed by this process, once checked
)

// Ensure makes sure interop/jspeer/node_modules matches package-lock.json,
// running `npm ci` there when it is missing or stale (installed from other
// package files than the current ones). Concurrent callers, in
// this process or others (several test packages run in parallel), are
// serialised with a lock file in the temporary directory. It fails with an
// error wrapping ErrNoNode when node or npm is missing.
func Ensure(ctx context.Context) error { return ensureDir(ctx, Dir()) }

func ensureDir(ctx context.Context, dir string) error {
	if _, err := nodePath(""); err != nil {
		return err
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("%w: npm is not on PATH (install Node.js >= 20 with npm): %v", ErrNoNode, err)
	}
	h := sha256.New()
	for _, f := range []string{"package-lock.json", "package.json", ".npmrc"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && (f != ".npmrc" || !errors.Is(err, os.ErrNotExist)) {
			return fmt.Errorf("jspeer: %w", err)
		}
		h.Write(b)
	}
	want := hex.EncodeToString(h.Sum(nil))

	ensureMu.Lock()
	defer ensureMu.Unlock()
	if ensured[dir] == want && stampMatches(dir, want) {
		return nil
	}
	unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "moqp2p-jspeer-"+shortHash(dir)+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if !stampMatches(dir, want) {
		if err := npmCI(ctx, npm, dir); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "node_modules", stampFile), []byte(want+"\n"), 0o644); err != nil {
			return fmt.Errorf("jspeer: %w", err)
		}
	}
	ensured[dir] = want
	return nil
}

func stampMatches(dir, want string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", stampFile))
	return err == nil && strings.TrimSpace(string(b)) == want
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

func npmCI(ctx context.Context, npm, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=warn")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("jspeer: npm ci in %s: %w\n%s", dir, err, out.Bytes())
	}
	return nil
}

// nodePath resolves the node binary: explicit, $MOQP2P_NODE, or PATH.
func nodePath(explicit string) (string, error) {
	name := explicit
	if name == "" {
		name = os.Getenv("MOQP2P_NODE")
	}
	if name == "" {
		name = "node"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not runnable (install Node.js >= 20, or set MOQP2P_NODE): %v", ErrNoNode, name, err)
	}
	return p, nil
}

// lockFile takes an exclusive lock on path, polling until ctx ends.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jspeer: lock file: %w", err)
	}
	for {
		ok, err := tryLock(f)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("jspeer: locking %s: %w", path, err)
		}
		if ok {
			return func() { unlockFile(f); _ = f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("jspeer: waiting for %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond): // flock has no wait that takes a ctx: look again
		}
	}
}
