package jspeer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/moqp2p/moqp2p/internal/pattern"
)

// Role says whether the JS peer subscribes or publishes.
type Role string

// The roles of the JS peer.
const (
	RoleSub Role = "sub" // wait for the announce, subscribe, verify the payloads
	RolePub Role = "pub" // publish a broadcast and serve each subscription
)

// DefaultTimeout bounds a JS peer run when Scenario.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Scenario is what the JS peer does once connected; the Node peer and the
// browser page take the same settings. Zero values mean the JS defaults
// (noted per field).
type Scenario struct {
	Role      Role   // RoleSub (default) or RolePub
	Broadcast string // broadcast path; default "bench" (JS trims leading and trailing slashes)
	Track     string // track name; default "data"

	// Prefix is the announce prefix a subscriber asks for (default "").
	Prefix string
	// NoAnnounce makes a subscriber subscribe at once instead of waiting
	// for the broadcast to be announced.
	NoAnnounce bool

	// Groups, Frames and Size describe the run: Groups groups of Frames
	// frames of Size bytes (pattern.Payload(g*Frames+f, Size)). A publisher
	// sends them, a subscriber expects exactly them. Defaults 1, 1, 16.
	Groups, Frames, Size int
	// Priority is the subscriber's SUBSCRIBE priority.
	Priority int

	// FrameEvents makes a subscriber print a "recv" event for every frame
	// (group, frame, len, sha256, match); otherwise only the summary.
	FrameEvents bool
	// Subscriptions is how many subscriptions to the track a publisher
	// serves before it reports "served" (default 1).
	Subscriptions int
	// Linger bounds how long a publisher waits, after serving, for the other
	// side to close the connection; it then ends successfully. Zero: wait
	// for the close (until Timeout, which is a failure).
	Linger time.Duration
	// StopTrack, for a publisher that lingers, ends the linger early (and
	// the run successfully) once a subscription to this track of its
	// broadcast arrives, which it refuses: the other side's way of saying
	// it has everything without closing the connection (Chromium reports a
	// WebTransport session the server closes as lost).
	StopTrack string
	// GroupInterval paces a publisher's groups (default: all at once).
	GroupInterval time.Duration
	// Repeat, for a subscriber, subscribes Repeat times in turn to the
	// tracks Track-0, Track-1, …, which the publisher finishes after
	// Groups×Frames: each subscription reads until the track ends and must
	// have every frame by then. Each reports a "rep" event; the "done"
	// event fails if any was incomplete.
	Repeat int
	// Timeout bounds the whole JS run (default DefaultTimeout); the JS side
	// then reports an error and exits non-zero.
	Timeout time.Duration
	// Timestamps (LibNet) makes a subscriber also require every frame's
	// timestamp to be frame number × 33 ms, as a LibNet publisher stamps
	// them (the "done" event reports the timestamps it saw either way).
	Timestamps bool
	// Fetch (LibNet) makes a subscriber, once its run is in, fetch group 0
	// again (lite-05 FETCH) and check it ("fetched" event; "done" fails
	// if it is not whole). A publisher also writes the run, before it
	// serves anything, into the track Track+"-kept", which it keeps open
	// with its groups retained for two minutes, for the other side to
	// FETCH from.
	Fetch bool
	// Datagrams (LibNet) makes the run Groups single-frame groups sent as
	// datagrams (a publisher appends datagrams; a subscriber reads them,
	// failing unless all arrive).
	Datagrams bool
}

// Expect returns the summary a complete run of s produces (the "done"
// event of both roles carries it).
func (s Scenario) Expect() pattern.Summary {
	g, f, z := s.Groups, s.Frames, s.Size
	if g == 0 {
		g = 1
	}
	if f == 0 {
		f = 1
	}
	if z == 0 {
		z = 16
	}
	return pattern.Expect(g, f, z)
}

func (s Scenario) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

// params renders s as name/value pairs: --name value for Node, name=value
// in the browser page's query. A boolean has the value "".
func (s Scenario) params() [][2]string {
	var p [][2]string
	add := func(name, value string) { p = append(p, [2]string{name, value}) }
	num := func(name string, v int) {
		if v != 0 {
			add(name, strconv.Itoa(v))
		}
	}
	dur := func(name string, d time.Duration) {
		if d > 0 {
			add(name, strconv.FormatInt(d.Milliseconds(), 10)+"ms")
		}
	}
	if s.Role != "" {
		add("role", string(s.Role))
	}
	if s.Broadcast != "" {
		add("broadcast", s.Broadcast)
	}
	if s.Track != "" {
		add("track", s.Track)
	}
	if s.Prefix != "" {
		add("prefix", s.Prefix)
	}
	if s.NoAnnounce {
		add("no-announce", "")
	}
	num("groups", s.Groups)
	num("frames", s.Frames)
	num("size", s.Size)
	num("priority", s.Priority)
	if s.FrameEvents {
		add("frame-events", "")
	}
	num("subscriptions", s.Subscriptions)
	dur("linger", s.Linger)
	if s.StopTrack != "" {
		add("stop-track", s.StopTrack)
	}
	dur("group-interval", s.GroupInterval)
	num("repeat", s.Repeat)
	if s.Timestamps {
		add("timestamps", "")
	}
	if s.Fetch {
		add("fetch", "")
	}
	if s.Datagrams {
		add("datagrams", "")
	}
	add("timeout", strconv.FormatInt(s.timeout().Milliseconds(), 10)+"ms")
	return p
}

// Options configure a Node peer run.
type Options struct {
	Scenario

	// Lib is the library the peer runs: LibLite (@moq/lite 0.2.2, the
	// default) or LibNet (@moq/net 0.3.4).
	Lib Lib
	// URL is the server's address, http://127.0.0.1:PORT/path (ws:// works
	// too); @moq/lite turns http into ws.
	URL string
	// Protocol is the WebSocket application protocol to offer: "" connects
	// the library's default way (no app protocol: SETUP, which reaches
	// lite-02), "moq-lite-03" or "moq-lite-04" use @moq/qmux directly and
	// offer qmux-00.P and webtransport.P. A comma list offers several.
	//
	// With LibNet, "" lets @moq/net offer its own list (qmux-02, -01, -00
	// with moq-lite-05, -04, -03, moql, then bare framings); otherwise
	// Protocol lists the exact subprotocols to offer ("qmux-01.moq-lite-05").
	Protocol string

	// Tap writes a hex transcript of every WebSocket message to the peer's
	// stderr (Result.Stderr); messages are cut at 64 bytes unless TapFull.
	Tap, TapFull bool
	// Debug passes the library's console.log/debug output to stderr.
	Debug bool

	// Node is the node binary (default $MOQP2P_NODE, else node on PATH).
	Node string
	// Args are extra raw arguments for peer.mjs; Env extra environment.
	Args, Env []string
	// Stderr, if set, also receives the peer's stderr as it is written.
	Stderr io.Writer
}

// args renders the command line of peer.mjs.
func (o Options) args() []string {
	args := []string{filepath.Join(Dir(), "peer.mjs")}
	if o.Lib != LibLite {
		args = append(args, "--lib", string(o.Lib))
	}
	if o.URL != "" {
		args = append(args, "--url", o.URL)
	}
	if o.Protocol != "" {
		args = append(args, "--protocol", o.Protocol)
	}
	for _, p := range o.params() {
		if p[1] == "" {
			args = append(args, "--"+p[0])
		} else {
			args = append(args, "--"+p[0], p[1])
		}
	}
	switch {
	case o.TapFull:
		args = append(args, "--tap=full")
	case o.Tap:
		args = append(args, "--tap")
	}
	if o.Debug {
		args = append(args, "--debug")
	}
	return append(args, o.Args...)
}

// Event is one line the JS peer printed (or one entry the page posted). Only
// the fields of its kind are set; Raw keeps the line as printed.
//
// Kinds: "connected" (Version, Protocol, Transport), "announced" (Path,
// Active), "subscribed" (Broadcast, Track), "recv" (Group, Frame, Len, Match,
// and SHA256 of that frame), "published" (Broadcast), "served" and "done"
// (the Summary; done also Role, OK, Expected, Mismatched, Subscriptions,
// EndedBy, ElapsedMS, and Error when not OK), "rep" (Rep, Track, the Summary
// and OK of one Scenario.Repeat subscription), "error" (Error), "selftest".
type Event struct {
	Event string `json:"event"`

	Version   string `json:"version,omitempty"`
	Protocol  string `json:"protocol,omitempty"`
	Transport string `json:"transport,omitempty"`

	Path      string `json:"path,omitempty"`
	Active    bool   `json:"active,omitempty"`
	Broadcast string `json:"broadcast,omitempty"`
	Track     string `json:"track,omitempty"`

	Group uint64 `json:"group,omitempty"`
	Frame uint64 `json:"frame,omitempty"`
	Len   int    `json:"len,omitempty"`
	Match bool   `json:"match,omitempty"`
	Rep   int    `json:"rep,omitempty"`

	pattern.Summary
	Role          string           `json:"role,omitempty"`
	OK            bool             `json:"ok,omitempty"`
	Expected      *pattern.Summary `json:"expected,omitempty"`
	Mismatched    uint64           `json:"mismatched,omitempty"`
	Subscriptions int              `json:"subscriptions,omitempty"`
	EndedBy       string           `json:"ended_by,omitempty"`
	ElapsedMS     int64            `json:"elapsed_ms,omitempty"`

	Error string `json:"error,omitempty"`
	// TMS is when the event happened, in milliseconds since the peer started.
	TMS int64 `json:"t_ms,omitempty"`

	Raw json.RawMessage `json:"-"`
}

// Result is the outcome of a JS peer run.
type Result struct {
	Events  []Event
	Version string // the negotiated moq-lite version ("moq-lite-02", …), from "connected"
	Done    *Event // the final "done" event, nil if the run did not get that far
	Err     string // the message of the "error" event, if any

	// ExitCode is node's exit status (-1 if it was killed); 0 for a page
	// that reported success.
	ExitCode int
	// Stderr is node's stderr (cut to its last part when very long), or the
	// page's console log for Chromium.
	Stderr string
	// Stdout holds lines node printed that were not JSON events.
	Stdout    string
	UserAgent string // Chromium only
	Elapsed   time.Duration
}

// Summary returns the "done" event's frames, groups, bytes and digest (zero
// without one).
func (r Result) Summary() pattern.Summary {
	if r.Done == nil {
		return pattern.Summary{}
	}
	return r.Done.Summary
}

// Event returns the first event of the given kind.
func (r Result) Event(kind string) (Event, bool) {
	for _, e := range r.Events {
		if e.Event == kind {
			return e, true
		}
	}
	return Event{}, false
}

// All returns every event of the given kind.
func (r Result) All(kind string) []Event {
	var out []Event
	for _, e := range r.Events {
		if e.Event == kind {
			out = append(out, e)
		}
	}
	return out
}

// add records e and fills the summary fields.
func (r *Result) add(e Event) {
	r.Events = append(r.Events, e)
	switch e.Event {
	case "connected":
		r.Version = e.Version
	case "done":
		d := e
		r.Done = &d
		if !e.OK && r.Err == "" {
			r.Err = e.Error
		}
	case "error":
		r.Err = e.Error
	}
}

func parseEvent(line []byte) (Event, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return Event{}, false
	}
	var e Event
	if err := json.Unmarshal(line, &e); err != nil || e.Event == "" {
		return Event{}, false
	}
	e.Raw = append(json.RawMessage(nil), line...)
	return e, true
}

// Node is a running Node peer (see Start).
type Node struct {
	cmd     *exec.Cmd
	started time.Time
	stderr  *tailBuffer
	cancel  context.CancelFunc
	done    chan struct{} // closed when the process has exited and its output is in

	mu      sync.Mutex
	res     Result
	partial []byte        // stdout after the last newline
	stray   bytes.Buffer  // stdout lines that are not events
	changed chan struct{} // closed and replaced whenever an event arrives
	waitErr error
}

// Start launches the Node peer in the background. ctx bounds the process's
// whole life: when it ends, the peer (and anything it started) is killed; the
// peer is also killed 15 s after its own Timeout. Call Wait to collect it.
func Start(ctx context.Context, o Options) (*Node, error) {
	if err := EnsureLib(ctx, o.Lib); err != nil {
		return nil, err
	}
	node, err := nodePath(o.Node)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, o.timeout()+15*time.Second)
	cmd := exec.CommandContext(pctx, node, o.args()...)
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(), o.Env...)
	ownProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcess(cmd) }
	cmd.WaitDelay = 3 * time.Second
	n := &Node{
		cmd:     cmd,
		stderr:  newTailBuffer(32 << 20),
		cancel:  cancel,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	cmd.Stdout = (*stdoutWriter)(n)
	cmd.Stderr = n.stderr
	if o.Stderr != nil {
		cmd.Stderr = io.MultiWriter(n.stderr, o.Stderr)
	}
	n.started = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("jspeer: starting node: %w", err)
	}
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.flushPartial()
		n.res.Elapsed = time.Since(n.started)
		n.res.ExitCode = cmd.ProcessState.ExitCode()
		n.mu.Unlock()
		cancel()
		close(n.done)
	}()
	return n, nil
}

// stdoutWriter splits node's stdout into events.
type stdoutWriter Node

func (w *stdoutWriter) Write(p []byte) (int, error) {
	n := (*Node)(w)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.partial = append(n.partial, p...)
	for {
		i := bytes.IndexByte(n.partial, '\n')
		if i < 0 {
			break
		}
		n.line(n.partial[:i])
		n.partial = n.partial[i+1:]
	}
	return len(p), nil
}

// line handles one stdout line; n.mu is held.
func (n *Node) line(l []byte) {
	if e, ok := parseEvent(l); ok {
		n.res.add(e)
		close(n.changed)
		n.changed = make(chan struct{})
		return
	}
	if len(bytes.TrimSpace(l)) > 0 && n.stray.Len() < 1<<20 {
		n.stray.Write(l)
		n.stray.WriteByte('\n')
	}
}

func (n *Node) flushPartial() {
	if len(n.partial) > 0 {
		n.line(n.partial)
		n.partial = nil
	}
}

// Events returns the events so far.
func (n *Node) Events() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Event(nil), n.res.Events...)
}

// WaitFor waits until the peer has printed an event of the given kind and
// returns the first one. It fails if the peer exits without printing it, or
// when ctx ends.
func (n *Node) WaitFor(ctx context.Context, kind string) (Event, error) {
	for {
		n.mu.Lock()
		for _, e := range n.res.Events {
			if e.Event == kind {
				n.mu.Unlock()
				return e, nil
			}
		}
		changed := n.changed
		n.mu.Unlock()
		select {
		case <-changed:
		case <-n.done:
			n.mu.Lock()
			for _, e := range n.res.Events {
				if e.Event == kind {
					n.mu.Unlock()
					return e, nil
				}
			}
			res := n.result()
			n.mu.Unlock()
			return Event{}, fmt.Errorf("jspeer: node peer exited (code %d) without a %q event%s", res.ExitCode, kind, describe(res))
		case <-ctx.Done():
			return Event{}, fmt.Errorf("jspeer: waiting for a %q event: %w", kind, ctx.Err())
		}
	}
}

// Kill stops the peer (and anything it started) at once.
func (n *Node) Kill() { n.cancel() }

// Done is closed once the peer has exited.
func (n *Node) Done() <-chan struct{} { return n.done }

// Wait waits for the peer to exit (killing it if ctx ends first) and returns
// what it reported. The error is nil only if node exited 0 and, when it
// printed a "done" event, that event is OK; otherwise it includes the error
// event and the tail of stderr.
func (n *Node) Wait(ctx context.Context) (Result, error) {
	select {
	case <-n.done:
	case <-ctx.Done():
		n.Kill()
		<-n.done
	}
	n.mu.Lock()
	res := n.result()
	waitErr := n.waitErr
	n.mu.Unlock()
	switch {
	case ctx.Err() != nil && waitErr != nil:
		return res, fmt.Errorf("jspeer: node peer killed: %w%s", ctx.Err(), describe(res))
	case waitErr != nil:
		return res, fmt.Errorf("jspeer: node peer failed: %w%s", waitErr, describe(res))
	case res.Done != nil && !res.Done.OK:
		return res, fmt.Errorf("jspeer: node peer reported failure%s", describe(res))
	}
	return res, nil
}

// result assembles the Result; n.mu is held.
func (n *Node) result() Result {
	r := n.res
	r.Events = append([]Event(nil), n.res.Events...)
	r.Stderr = n.stderr.String()
	r.Stdout = n.stray.String()
	return r
}

// RunNode runs the Node peer to completion: Start, then Wait.
//
// Example, a JS subscriber against a Go WebSocket server offering lite-04:
//
//	res, err := jspeer.RunNode(ctx, jspeer.Options{
//		URL:      "http://" + ln.Addr().String() + "/moq",
//		Protocol: "moq-lite-04",
//		Scenario: jspeer.Scenario{Role: jspeer.RoleSub, Broadcast: "bench", Track: "data", Groups: 10, Frames: 100, Size: 1024},
//	})
//	// err == nil ⇒ res.Version == "moq-lite-04" and res.Summary() == pattern.Expect(10, 100, 1024)
func RunNode(ctx context.Context, o Options) (Result, error) {
	n, err := Start(ctx, o)
	if err != nil {
		return Result{}, err
	}
	return n.Wait(ctx)
}

// describe renders a failed run for an error message.
func describe(r Result) string {
	var b bytes.Buffer
	if r.Err != "" {
		fmt.Fprintf(&b, "\njs error: %s", r.Err)
	}
	if r.Done != nil {
		fmt.Fprintf(&b, "\njs done: %s", r.Done.Raw)
	} else if len(r.Events) > 0 {
		fmt.Fprintf(&b, "\nlast js event: %s", r.Events[len(r.Events)-1].Raw)
	}
	if r.Stdout != "" {
		fmt.Fprintf(&b, "\n--- other stdout ---\n%s", tail(r.Stdout, 4<<10))
	}
	if r.Stderr != "" {
		fmt.Fprintf(&b, "\n--- stderr (tail) ---\n%s", tail(r.Stderr, 8<<10))
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	dropped bool
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max/2:]...)
		t.dropped = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropped {
		return "…(earlier output dropped)\n" + string(t.buf)
	}
	return string(t.buf)
}
