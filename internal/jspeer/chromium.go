package jspeer

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"time"
)

// ErrNoChromium is wrapped by the error returned when the browser binary is
// missing; tests skip on it.
var ErrNoChromium = errors.New("jspeer: chromium not found")

// DefaultChromium is where Debian's chromium package installs the browser.
const DefaultChromium = "/usr/bin/chromium"

// chromiumFlags are the flags every launch uses: headless, no sandbox (we run
// as root in containers), no GPU, nothing that phones home (the network is
// closed, and its refusals would disturb the run). QUIC stays on: WebTransport
// needs it.
var chromiumFlags = []string{
	"--headless=new",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-dev-shm-usage",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--disable-extensions",
	"--mute-audio",
	"--enable-logging=stderr",
	"--v=0",
}

// ChromiumOptions configure a browser launch.
type ChromiumOptions struct {
	// Path is the browser binary (default $MOQP2P_CHROMIUM, else
	// DefaultChromium, else chromium on PATH).
	Path string
	// Args are extra command-line flags.
	Args []string
	// Results is where the page POSTs its result. If nil, RunPage serves a
	// private Results on 127.0.0.1 and adds its URL to the page URL as the
	// query parameter "result" (the page must POST there; CORS is allowed).
	Results *Results
	// Log, if set, also receives the browser's stderr (which includes the
	// page's console messages) as it is written.
	Log io.Writer
}

func chromiumPath(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv("MOQP2P_CHROMIUM")} {
		if p != "" {
			if _, err := exec.LookPath(p); err != nil {
				return "", fmt.Errorf("%w: %s: %v", ErrNoChromium, p, err)
			}
			return p, nil
		}
	}
	if _, err := os.Stat(DefaultChromium); err == nil {
		return DefaultChromium, nil
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w at %s or on PATH (apt-get install chromium, or set MOQP2P_CHROMIUM)", ErrNoChromium, DefaultChromium)
}

// Browser is a running headless Chromium (see LaunchChromium).
type Browser struct {
	cmd     *exec.Cmd
	dataDir string
	log     *tailBuffer
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	started time.Time
	exit    error // how the process ended (cmd.Wait's error); read after done
}

// LaunchChromium starts headless Chromium on pageURL with a fresh profile
// directory. ctx bounds the browser's life; Close kills it earlier and removes
// the profile. Most callers want RunPage or Chromium instead.
func LaunchChromium(ctx context.Context, pageURL string, o ChromiumOptions) (*Browser, error) {
	bin, err := chromiumPath(o.Path)
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "moqp2p-chromium-")
	if err != nil {
		return nil, fmt.Errorf("jspeer: %w", err)
	}
	args := append(append(append([]string(nil), chromiumFlags...), "--user-data-dir="+dataDir), o.Args...)
	args = append(args, pageURL)
	bctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(bctx, bin, args...)
	ownProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcess(cmd) }
	cmd.WaitDelay = 3 * time.Second
	b := &Browser{cmd: cmd, dataDir: dataDir, log: newTailBuffer(4 << 20), cancel: cancel, done: make(chan struct{})}
	cmd.Stdout = b.log
	cmd.Stderr = b.log
	if o.Log != nil {
		cmd.Stdout = io.MultiWriter(b.log, o.Log)
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Start(); err != nil {
		cancel()
		_ = os.RemoveAll(dataDir)
		return nil, fmt.Errorf("jspeer: starting %s: %w", bin, err)
	}
	b.started = time.Now()
	go func() {
		b.exit = cmd.Wait()
		close(b.done)
	}()
	return b, nil
}

// Done is closed when the browser has exited.
func (b *Browser) Done() <-chan struct{} { return b.done }

// Log returns what the browser wrote to stdout and stderr (including the
// page's console messages), cut to its last part when very long.
func (b *Browser) Log() string { return b.log.String() }

// Close kills the browser and every process it started, waits for them, and
// removes the profile directory.
func (b *Browser) Close() error {
	var err error
	b.once.Do(func() {
		_ = killProcess(b.cmd) // the whole group, even if the main process is gone
		b.cancel()
		<-b.done
		// Helpers may still be flushing into the profile for a moment:
		// retry for up to a second; after that the error says what is left.
		for range 20 {
			if err = os.RemoveAll(b.dataDir); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return err
}

// Results collects what pages POST. It is an http.Handler (POST stores the
// body; OPTIONS answers a CORS preflight), so it can be mounted on the
// caller's own server, which keeps the page's POST same-origin.
type Results struct {
	ch chan []byte
}

// NewResults returns an empty Results.
func NewResults() *Results { return &Results{ch: make(chan []byte, 16)} }

// maxResult bounds a posted body.
const maxResult = 64 << 20

// ServeHTTP implements http.Handler.
func (r *Results) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
	switch req.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(req.Body, maxResult))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case r.ch <- body:
		default: // nobody is reading that many results; drop it
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
	}
}

// Wait returns the next posted body, or ctx's error.
func (r *Results) Wait(ctx context.Context) ([]byte, error) {
	select {
	case b := <-r.ch:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// server is a plain HTTP server on 127.0.0.1 that Close shuts down
// completely.
type server struct {
	URL    string // http://127.0.0.1:PORT
	srv    *http.Server
	served chan struct{}
}

func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("jspeer: %w", err)
	}
	s := &server{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, served: make(chan struct{})}
	go func() {
		_ = s.srv.Serve(ln)
		close(s.served)
	}()
	return s, nil
}

func (s *server) Close() {
	_ = s.srv.Close()
	<-s.served
}

// RunPage loads pageURL in headless Chromium and returns the first body the
// page POSTs, then kills the browser. It fails if ctx ends first or the
// browser exits without posting; the error includes the end of the
// browser's log (the page's console messages are in it).
//
// The page is served by the caller (any server; 127.0.0.1 counts as a secure
// context, which WebTransport needs). Where it POSTs:
//   - o.Results nil: to the URL in its own query parameter "result", a
//     private collector on 127.0.0.1 that allows cross-origin POSTs, e.g.
//     fetch(new URLSearchParams(location.search).get("result"), {method: "POST", body});
//   - o.Results set: wherever the caller mounted it (say /result on the
//     page's own server), and pageURL is loaded unchanged.
func RunPage(ctx context.Context, pageURL string, o ChromiumOptions) ([]byte, error) {
	results := o.Results
	if results == nil {
		results = NewResults()
		mux := http.NewServeMux()
		mux.Handle("/result", results)
		s, err := serve(mux)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		u, err := url.Parse(pageURL)
		if err != nil {
			return nil, fmt.Errorf("jspeer: page URL: %w", err)
		}
		q := u.Query()
		q.Set("result", s.URL+"/result")
		u.RawQuery = q.Encode()
		pageURL = u.String()
	}
	b, err := LaunchChromium(ctx, pageURL, o)
	if err != nil {
		return nil, err
	}
	defer func() { _ = b.Close() }()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.Done():
			// Give a POST that raced the exit a moment to land (it is on
			// loopback, already sent); too short only loses that result.
			select {
			case <-time.After(500 * time.Millisecond):
				cancel()
			case <-wctx.Done():
			}
		case <-wctx.Done():
		}
	}()
	body, err := results.Wait(wctx)
	if err == nil {
		return body, nil
	}
	select {
	case <-b.Done():
		if ctx.Err() == nil {
			return nil, fmt.Errorf("jspeer: chromium exited before the page posted a result (%s after its launch: %v)\n--- chromium log (tail) ---\n%s",
				time.Since(b.started).Round(time.Millisecond), b.exit, tail(b.Log(), 8<<10))
		}
	default:
	}
	return nil, fmt.Errorf("jspeer: waiting for %s to post a result: %w\n--- chromium log (tail) ---\n%s", pageURL, ctx.Err(), tail(b.Log(), 8<<10))
}

// BrowserOptions configure a browser peer run (the JS peer of RunNode, in
// headless Chromium, over native WebTransport by default).
type BrowserOptions struct {
	Scenario

	// Lib is the library the page runs: LibLite (@moq/lite 0.2.2, the
	// default) or LibNet (@moq/net 0.3.4, served from interop/jsnet).
	Lib Lib

	// URL is the moq server: https://127.0.0.1:UDPPORT/path for
	// WebTransport (an http:// URL makes @moq/lite fetch
	// /certificate.sha256 first, the moq-relay convention), or
	// http://127.0.0.1:TCPPORT/path with WebSocket set.
	URL string
	// CertHash is the SHA-256 of the server's DER certificate (which must
	// be ECDSA and valid for at most 14 days), passed as
	// serverCertificateHashes.
	CertHash []byte
	// Protocols are the WebTransport protocols to offer. nil offers
	// @moq/lite's own list (moq-lite-04, moq-lite-03, moql, moqt-17…15); an
	// empty non-nil slice offers none, which means SETUP → lite-02.
	// With WebSocket they are the app protocols, as Options.Protocol.
	Protocols []string
	// WebSocket uses the browser's WebSocket instead of WebTransport.
	WebSocket bool

	// Query adds raw query parameters to the page URL.
	Query url.Values

	ChromiumOptions
}

// pageQuery renders the page's query string.
func (o BrowserOptions) pageQuery() url.Values {
	q := url.Values{}
	if o.URL != "" {
		q.Set("url", o.URL)
	}
	if len(o.CertHash) > 0 {
		q.Set("certhash", hex.EncodeToString(o.CertHash))
	}
	if o.Protocols != nil {
		q.Set("protocols", strings.Join(o.Protocols, ","))
	}
	if o.WebSocket {
		q.Set("transport", "websocket")
	}
	if o.Lib != LibLite {
		q.Set("lib", string(o.Lib))
	}
	for _, p := range o.params() {
		q.Set(p[0], p[1])
	}
	for k, vs := range o.Query {
		q[k] = append(q[k], vs...)
	}
	return q
}

// pageResult is what browser.mjs POSTs.
type pageResult struct {
	OK        bool              `json:"ok"`
	Error     string            `json:"error"`
	Events    []json.RawMessage `json:"events"`
	Log       []string          `json:"log"`
	UserAgent string            `json:"user_agent"`
}

// Handler serves the JS peer's directory (browser.html, its modules and the
// node_modules files its import map names) with JavaScript MIME types, for
// mounting under a prefix with http.StripPrefix. Chromium uses it under
// /jspeer/.
func Handler() http.Handler { return dirHandler(Dir()) }

// dirHandler serves dir as Handler describes.
func dirHandler(dir string) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path.Ext(r.URL.Path) {
		case ".js", ".mjs":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		case ".map":
			w.Header().Set("Content-Type", "application/json")
		default:
			if t := mime.TypeByExtension(path.Ext(r.URL.Path)); t != "" {
				w.Header().Set("Content-Type", t)
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		files.ServeHTTP(w, r)
	})
}

// Chromium runs the JS peer in headless Chromium: it serves browser.html,
// the modules and node_modules under /jspeer/ and the result collector at
// /result on 127.0.0.1, loads the page with o's settings in the query,
// waits for its POST (bounded by ctx, and by the scenario's Timeout plus a
// margin), then kills the browser and removes its profile. The error is nil
// only if the page reported success.
//
// Example, a browser publisher against a Go WebTransport server at
// 127.0.0.1:port (UDP) with a self-signed ECDSA certificate cert:
//
//	hash := sha256.Sum256(cert.Leaf.Raw)
//	res, err := jspeer.Chromium(ctx, jspeer.BrowserOptions{
//		URL:      "https://127.0.0.1:" + port + "/moq",
//		CertHash: hash[:],
//		Scenario: jspeer.Scenario{Role: jspeer.RolePub, Broadcast: "js", Groups: 10, Frames: 100, Size: 1024},
//	})
//	// the Go side subscribes to js/data, verifies pattern.Expect(10, 100, 1024), then closes its session
func Chromium(ctx context.Context, o BrowserOptions) (Result, error) {
	if err := EnsureLib(ctx, o.Lib); err != nil {
		return Result{}, err
	}
	if _, err := chromiumPath(o.Path); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout()+20*time.Second)
	defer cancel()
	results := NewResults()
	mux := http.NewServeMux()
	mux.Handle("/jspeer/", http.StripPrefix("/jspeer", Handler()))
	// The @moq/net page (its import map onto its own node_modules) loads
	// the shared modules from /jspeer/.
	mux.Handle("/jsnet/", http.StripPrefix("/jsnet", dirHandler(NetDir())))
	mux.Handle("/result", results)
	s, err := serve(mux)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	co := o.ChromiumOptions
	co.Results = results
	page := "/jspeer/browser.html?"
	if o.Lib == LibNet {
		page = "/jsnet/browser.html?"
	}
	pageURL := s.URL + page + o.pageQuery().Encode()
	start := time.Now()
	body, err := RunPage(ctx, pageURL, co)
	if err != nil {
		return Result{}, err
	}
	res, err := parsePageResult(body)
	res.Elapsed = time.Since(start)
	return res, err
}

// parsePageResult turns a browser.mjs POST into a Result; the error is nil
// only if the page reported success.
func parsePageResult(body []byte) (Result, error) {
	var pr pageResult
	if err := json.Unmarshal(body, &pr); err != nil {
		return Result{}, fmt.Errorf("jspeer: page result %q: %w", tail(string(body), 1<<10), err)
	}
	res := Result{UserAgent: pr.UserAgent, Stderr: strings.Join(pr.Log, "\n")}
	for _, raw := range pr.Events {
		if e, ok := parseEvent(raw); ok {
			res.add(e)
		}
	}
	if !pr.OK {
		res.ExitCode = 1
		if res.Err == "" {
			res.Err = pr.Error
		}
		return res, fmt.Errorf("jspeer: browser peer reported failure%s", describe(res))
	}
	return res, nil
}
