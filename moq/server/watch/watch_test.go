package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/hang"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
)

func get(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHandlerServesThePages(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, want := range map[string]string{
		"/":                         `action="/watch"`,
		"/watch?name=demo.hang":     "<moq-watch",
		"/publish?name=camera.hang": "<moq-publish",
		"/moq.js":                   "customElements.define",
		"/report.js":                "result",
	} {
		resp, body := get(t, srv, http.MethodGet, path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, %d bytes, want %q in it", path, resp.StatusCode, len(body), want)
		}
		ct := resp.Header.Get("Content-Type")
		if strings.HasSuffix(path, ".js") != strings.Contains(ct, "javascript") {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/watch.html/../../etc/passwd"},
		{http.MethodGet, "/nothing"},
		{http.MethodGet, "/web/package.json"},
		{http.MethodPost, "/watch"},
	} {
		if resp, _ := get(t, srv, c.method, c.path); resp.StatusCode < 400 {
			t.Errorf("%s %s: %d, want an error", c.method, c.path, resp.StatusCode)
		}
	}
}

// NodeHandler adds the node's statistics to the pages, which it still
// serves.
func TestNodeHandlerServesStats(t *testing.T) {
	h, err := moq.NewHost(moq.HostConfig{ListenAddrs: []ma.Multiaddr{}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := moq.New(h)
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	defer func() {
		_ = m.Shutdown(context.Background())
		_ = h.Close()
	}()
	b := broadcast.New(broadcast.Config{})
	defer b.Finish()
	if _, err := m.Publish(t.Context(), "room/cam", b.Consume()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NodeHandler(m))
	defer srv.Close()
	resp, body := get(t, srv, http.MethodGet, "/stats")
	var doc server.NodeStats
	if err := json.Unmarshal([]byte(body), &doc); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/stats: %v, %q: %s", err, resp.Header.Get("Content-Type"), body)
	}
	if doc.Peer != h.ID().String() || len(doc.Broadcasts) != 1 || doc.Broadcasts[0] != "room/cam" || len(doc.Sessions) != 0 {
		t.Errorf("/stats: %+v", doc)
	}
	if resp, body := get(t, srv, http.MethodGet, "/watch?name=room/cam"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "node.js") {
		t.Errorf("/watch: %s", resp.Status)
	}
	// Handler alone has no /stats: the page says so.
	plain := httptest.NewServer(Handler())
	defer plain.Close()
	if resp, _ := get(t, plain, http.MethodGet, "/stats"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("Handler's /stats: %s", resp.Status)
	}
}

func TestURLs(t *testing.T) {
	if got := WatchURL("http://127.0.0.1:4443", "a b/c.hang"); got != "http://127.0.0.1:4443/watch?name=a+b%2Fc.hang" {
		t.Fatal(got)
	}
	if got := PublishURL("http://h:1", "cam.hang"); got != "http://h:1/publish?name=cam.hang" {
		t.Fatal(got)
	}
}

// npmInstall copies web/ into a temporary directory and runs npm ci there
// (once per test binary), skipping the test without npm unless
// MOQP2P_REQUIRE_NODE is set.
func npmInstall(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		if os.Getenv("MOQP2P_REQUIRE_NODE") != "" {
			t.Fatalf("npm not found (MOQP2P_REQUIRE_NODE=%s)", os.Getenv("MOQP2P_REQUIRE_NODE"))
		}
		t.Skip("skipping: npm not found (set MOQP2P_REQUIRE_NODE=1 to fail instead)")
	}
	installOnce.Do(func() {
		dir, err := os.MkdirTemp("", "moqp2p-watch-web-")
		if err != nil {
			installErr = err
			return
		}
		installDir = dir
		for _, f := range []string{"package.json", "package-lock.json", "entry.js"} {
			b, err := os.ReadFile(filepath.Join("web", f))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
			}
			if err != nil {
				installErr = err
				return
			}
		}
		installErr = npm(dir, nil, "ci", "--no-audit", "--no-fund")
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
	return installDir
}

var (
	installOnce sync.Once
	installDir  string
	installErr  error
)

// npm runs npm with args in dir.
func npm(dir string, env []string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// The checked-in bundle is what the lockfile builds: npm ci in a copy of
// web/, then the build, byte for byte.
func TestBundleMatchesLockfile(t *testing.T) {
	dir := npmInstall(t)
	out := filepath.Join(t.TempDir(), "moq.js")
	if err := npm(dir, []string{"OUT=" + out}, "run", "build"); err != nil {
		t.Fatal(err)
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checked, err := os.ReadFile(filepath.Join("assets", "moq.js"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, checked) {
		t.Fatalf("assets/moq.js (%d bytes) is not what web/ builds (%d bytes): run npm ci && npm run build in web/", len(checked), len(built))
	}
}

// The catalogs package hang writes pass @moq/hang's own schema (the one
// @moq/watch validates with, run in Node) and come out of it unchanged:
// a video rendition with an avcC description and an AAC audio one, as
// moq pub --media makes them.
func TestCatalogPassesHangSchema(t *testing.T) {
	dir := npmInstall(t)
	latency := true
	c := &hang.Catalog{
		Video: &hang.Video{Renditions: map[string]hang.VideoConfig{"video": {
			Codec: "avc1.42c01e", Container: hang.Legacy, Description: "0142c01effe100",
			CodedWidth: 320, CodedHeight: 240, OptimizeForLatency: &latency,
		}}},
		Audio: &hang.Audio{Renditions: map[string]hang.AudioConfig{"audio": {
			Codec: "mp4a.40.2", Container: hang.Legacy, Description: "1188", SampleRate: 48000, NumberOfChannels: 1,
		}}},
	}
	ours, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// @moq/watch's own copy of @moq/hang, bundled for Node by the
	// lockfile's esbuild (the published modules import without file
	// extensions, for bundlers).
	script := `import { RootSchema } from "./node_modules/@moq/watch/node_modules/@moq/hang/catalog/index.js";
const input = JSON.parse(process.argv[2]);
process.stdout.write(JSON.stringify(RootSchema.parse(input)));`
	if err := os.WriteFile(filepath.Join(dir, "check.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := npm(dir, nil, "exec", "--", "esbuild", "check.mjs", "--bundle", "--platform=node", "--format=esm", "--outfile=check.bundle.mjs"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "check.bundle.mjs", string(ours))
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("@moq/hang refused %s: %v\n%s", ours, err, stderr)
	}
	var want, got any
	if err := json.Unmarshal(ours, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("@moq/hang parsed\n%s\nas\n%s", ours, out)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if installDir != "" {
		_ = os.RemoveAll(installDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
