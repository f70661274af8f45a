package jspeer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// needChromium is RequireChromium: under CI (RequireChromiumEnv set) a
// missing browser fails these tests instead of skipping them.
func needChromium(t *testing.T) {
	t.Helper()
	RequireChromium(t)
}

// A page that reports its user agent to wherever it is told to POST.
const trivialPage = `<!doctype html><html><body><script>
const target = new URLSearchParams(location.search).get("result") ?? "/result";
fetch(target, {method: "POST", headers: {"Content-Type": "application/json"},
	body: JSON.stringify({hello: "world", ua: navigator.userAgent, secure: isSecureContext})});
</script></body></html>`

func pageServer(t *testing.T, results *Results) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = fmt.Fprint(w, trivialPage)
	})
	if results != nil {
		mux.Handle("/result", results)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type trivialResult struct {
	Hello, UA string
	Secure    bool
}

func checkTrivial(t *testing.T, body []byte) {
	t.Helper()
	var r trivialResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("posted %q: %v", body, err)
	}
	if r.Hello != "world" || !strings.Contains(r.UA, "Chrome") || !r.Secure {
		t.Fatalf("posted %+v", r)
	}
}

// Chromium loads a page from the caller's own server, and what the page
// POSTs arrives, both to the harness's collector (cross-origin, the URL in
// ?result=) and to a Results mounted on the caller's server (same origin).
func TestRunPage(t *testing.T) {
	needChromium(t)
	t.Run("harness collector", func(t *testing.T) {
		srv := pageServer(t, nil)
		start := time.Now()
		body, err := RunPage(ctxFor(t, 60*time.Second), srv.URL+"/page", ChromiumOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkTrivial(t, body)
		t.Logf("page posted after %v", time.Since(start))
	})
	t.Run("caller's results", func(t *testing.T) {
		results := NewResults()
		srv := pageServer(t, results)
		body, err := RunPage(ctxFor(t, 60*time.Second), srv.URL+"/page", ChromiumOptions{Results: results})
		if err != nil {
			t.Fatal(err)
		}
		checkTrivial(t, body)
	})
}

// A page that never posts: RunPage ends with ctx and kills the browser.
func TestRunPageTimeout(t *testing.T) {
	needChromium(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprint(w, "<!doctype html><p>silent</p>")
	}))
	defer srv.Close()
	start := time.Now()
	_, err := RunPage(ctxFor(t, 3*time.Second), srv.URL+"/", ChromiumOptions{})
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestChromiumMissing(t *testing.T) {
	_, err := RunPage(ctxFor(t, 5*time.Second), "http://127.0.0.1:1/", ChromiumOptions{Path: "/nonexistent/chromium"})
	if !errors.Is(err, ErrNoChromium) {
		t.Fatalf("err %v", err)
	}
}

// In Chromium, browser.html resolves @moq/lite through its import map from
// the served node_modules, and the page's pattern (WebCrypto digest) equals
// internal/pattern.
func TestChromiumSelftest(t *testing.T) {
	needChromium(t)
	res, err := Chromium(ctxFor(t, 90*time.Second), BrowserOptions{Query: url.Values{
		"selftest": {"1"},
		"payloads": {strings.Join(selftestPayloads, ",")},
		"expect":   {strings.Join(selftestExpect, ",")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := res.Event("selftest")
	if !ok {
		t.Fatalf("no selftest event: %+v", res)
	}
	checkSelftest(t, e.Raw)
	var extra struct {
		MoqPath      string `json:"moq_path"`
		WebTransport bool   `json:"webtransport"`
	}
	if err := json.Unmarshal(e.Raw, &extra); err != nil {
		t.Fatal(err)
	}
	if extra.MoqPath != "a/b" || !extra.WebTransport {
		t.Fatalf("module check %+v (user agent %s)", extra, res.UserAgent)
	}
	t.Logf("%s, %v", res.UserAgent, res.Elapsed)
}

// The browser peer fails cleanly, with an error event, when no WebTransport
// server answers.
func TestChromiumConnectFails(t *testing.T) {
	needChromium(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	start := time.Now()
	res, err := Chromium(ctxFor(t, 90*time.Second), BrowserOptions{
		URL:      "https://" + addr + "/moq",
		CertHash: bytes.Repeat([]byte{0xab}, 32),
		Scenario: Scenario{Timeout: 20 * time.Second},
	})
	if err == nil {
		t.Fatal("connected to nothing")
	}
	e, ok := res.Event("error")
	if !ok || e.Error == "" {
		t.Fatalf("no error event: %v", err)
	}
	t.Logf("failed after %v: %s", time.Since(start), e.Error)
}
