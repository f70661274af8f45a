package watch

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestURLs(t *testing.T) {
	if got := WatchURL("http://127.0.0.1:4443", "a b/c.hang"); got != "http://127.0.0.1:4443/watch?name=a+b%2Fc.hang" {
		t.Fatal(got)
	}
	if got := PublishURL("http://h:1", "cam.hang"); got != "http://h:1/publish?name=cam.hang" {
		t.Fatal(got)
	}
}

// The checked-in bundle is what the lockfile builds: npm ci in a copy of
// web/, then the build, byte for byte.
func TestBundleMatchesLockfile(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		if os.Getenv("MOQP2P_REQUIRE_NODE") != "" {
			t.Fatalf("npm not found (MOQP2P_REQUIRE_NODE=%s)", os.Getenv("MOQP2P_REQUIRE_NODE"))
		}
		t.Skip("skipping: npm not found (set MOQP2P_REQUIRE_NODE=1 to fail instead)")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "entry.js"} {
		b, err := os.ReadFile(filepath.Join("web", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(dir, "moq.js")
	for _, args := range [][]string{{"ci", "--no-audit", "--no-fund"}, {"run", "build"}} {
		cmd := exec.CommandContext(ctx, "npm", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "OUT="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm %s: %v\n%s", strings.Join(args, " "), err, b)
		}
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
