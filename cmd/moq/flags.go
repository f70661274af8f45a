package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/gologshim"

	"github.com/moqp2p/moqp2p/transport/cert"
)

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// netFlags are the flags every networked subcommand shares: where to listen
// and connect, how to trust a moql:// server, discovery, and logging.
type netFlags struct {
	listen      stringList
	connect     stringList
	bootstrap   stringList
	mdns        bool
	fingerprint string
	insecure    bool
	timeout     time.Duration
	deadPeer    time.Duration // --dead-peer-timeout
	identity    string
	verbose     bool
	allowOrigin stringList
	quiet       bool   // no live status line (observe.go)
	metrics     string // --metrics ADDR: serve /metrics and /stats (observe.go)
	serveStats  bool   // --serve-stats: answer moq stats over libp2p (statsp2p.go)

	// boot are the parsed --bootstrap peers (set by endpoints).
	boot []endpoint
}

func (f *netFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.listen, "listen", "`URL` to accept sessions on: moql://host:port, ws://host:port/path, https://host:port/path or a multiaddr (repeatable)")
	fs.Var(&f.connect, "connect", "`URL` of the peer to open a session to: moql://host:port[/path] (a path and ?jwt= ride moq-lite-05's SETUP), ws[s]://host:port/path, https://host:port/path or a multiaddr with /p2p/<peer-id>")
	fs.Var(&f.bootstrap, "bootstrap", "join moqp2p's DHT through the peer at `ADDR`, a multiaddr with /p2p/<peer-id> (repeatable):\npublished broadcasts are provided there, and broadcasts are found there by name")
	fs.BoolVar(&f.mdns, "mdns", false, "find peers on the local network with mDNS (and open a session to each)")
	fs.StringVar(&f.fingerprint, "fingerprint", "", "moql:// and https:// --connect: accept the server certificate with this SHA-256 `HEX`")
	fs.BoolVar(&f.insecure, "insecure", false, "moql://, https:// and wss:// --connect: accept any server certificate")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "wait up to `D` for a --connect or --bootstrap peer to answer (and, over libp2p, to announce\nthe broadcast, or for the broadcast to be found by name)")
	fs.DurationVar(&f.deadPeer, "dead-peer-timeout", 3*time.Second, "give a session up when its peer has been silent for `D` (keep-alives every quarter to third of it\nkeep idle sessions up; 0: 3 s, negative: the transports' own detection, tens of seconds)")
	fs.StringVar(&f.identity, "identity", "", "libp2p private key `FILE` (created if missing) for a stable peer ID; default: a new one each run")
	fs.Var(&f.allowOrigin, "allow-origin", "ws:// and https:// --listen: let web pages from `ORIGIN` (e.g. http://localhost:8080) connect,\nbesides same-origin ones; * lets any page you visit connect (repeatable)")
	fs.BoolVar(&f.verbose, "v", false, "log debug messages to stderr")
	f.registerObserve(fs)
}

// endpoints parses and checks the flags; maxConnect bounds --connect.
func (f *netFlags) endpoints(maxConnect int) (listens, connects []endpoint, err error) {
	for _, s := range f.listen {
		e, err := parseEndpoint(s, true)
		if err != nil {
			return nil, nil, &usageError{msg: err.Error()}
		}
		listens = append(listens, e)
	}
	for _, s := range f.connect {
		e, err := parseEndpoint(s, false)
		if err != nil {
			return nil, nil, &usageError{msg: err.Error()}
		}
		connects = append(connects, e)
	}
	for _, s := range f.bootstrap {
		e, err := parseEndpointRaw(s, false)
		if err == nil && e.kind != kindP2P {
			err = errors.New("want a libp2p multiaddr with /p2p/<peer-id>")
		}
		if err != nil {
			return nil, nil, usagef("--bootstrap %s: %v", s, err)
		}
		f.boot = append(f.boot, e)
	}
	if maxConnect >= 0 && len(connects) > maxConnect {
		return nil, nil, usagef("--connect may be given at most %d time(s)", maxConnect)
	}
	if f.fingerprint != "" {
		if _, err := cert.ParseFingerprint(f.fingerprint); err != nil {
			return nil, nil, usagef("--fingerprint: must be 64 hex digits (a SHA-256)")
		}
		if f.insecure {
			return nil, nil, usagef("--fingerprint and --insecure exclude each other")
		}
	}
	if f.timeout <= 0 {
		return nil, nil, usagef("--timeout must be positive")
	}
	return listens, connects, nil
}

// discovers reports whether the node finds peers by itself: through a DHT
// (--bootstrap) or mDNS.
func (f *netFlags) discovers() bool { return len(f.boot) > 0 || f.mdns }

// defaultP2PListen is where a node listens when it must be reachable over
// libp2p and no --listen multiaddr says where.
const defaultP2PListen = "/ip4/0.0.0.0/udp/0/quic-v1"

// reachable adds defaultP2PListen to listens if the node discovers peers
// (they must be able to dial it) and no listen address is a multiaddr.
func (f *netFlags) reachable(listens []endpoint) []endpoint {
	if !f.discovers() {
		return listens
	}
	for _, e := range listens {
		if e.kind == kindP2P {
			return listens
		}
	}
	e, _ := parseEndpoint(defaultP2PListen, true)
	return append(listens, e)
}

// logger is the process's logger: warnings and errors on stderr, everything
// with -v. libp2p's own logs go to the same place one level quieter.
func (f *netFlags) logger(stderr io.Writer) *slog.Logger {
	level, p2pLevel := slog.LevelWarn, slog.LevelError
	if f.verbose {
		level, p2pLevel = slog.LevelDebug, slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// The standard log package (quic-go's buffer-size notice) goes through
	// slog at Info: hidden unless -v.
	slog.SetDefault(log)
	var p2p slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: p2pLevel})
	if !f.verbose {
		p2p = dropFx{Handler: p2p}
	}
	gologshim.SetDefaultHandler(p2p)
	return log
}

// dropFx drops libp2p's dependency-injection (fx) log records: a host that
// fails to start logs its error there three times over, with stack frames,
// and then returns it, and the CLI prints what it returns as one line. It
// also drops the swarm's "listener closed" accept error, which a node
// shutting down logs at Error level.
type dropFx struct {
	slog.Handler
	fx bool // the logger's attributes say system=fx
}

func isFx(a slog.Attr) bool { return a.Key == "system" && a.Value.String() == "fx" }

func (h dropFx) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.fx && h.Handler.Enabled(ctx, l)
}

func (h dropFx) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "swarm listener accept error" && recordErr(r, "listener closed") {
		return nil // a listener the node is closing: shutdown, not an error
	}
	fx := h.fx
	r.Attrs(func(a slog.Attr) bool { fx = fx || isFx(a); return !fx })
	if fx {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// recordErr reports whether r's err attribute contains text.
func recordErr(r slog.Record, text string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == "err" && strings.Contains(a.Value.String(), text)
		return !found
	})
	return found
}

func (h dropFx) WithAttrs(as []slog.Attr) slog.Handler {
	return dropFx{Handler: h.Handler.WithAttrs(as), fx: h.fx || slices.ContainsFunc(as, isFx)}
}

func (h dropFx) WithGroup(name string) slog.Handler {
	return dropFx{Handler: h.Handler.WithGroup(name), fx: h.fx}
}

// parseFlags parses args; -h prints usage to stdout and returns errHelp,
// other flag errors become one-line usage errors.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return errHelp
	case err != nil:
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			return usagef("%s: unknown flag --%s%s (see moq %s -h)", fs.Name(), name, suggestFlag(fs, name), fs.Name())
		}
		return usagef("%s: %v (see moq %s -h)", fs.Name(), err, fs.Name())
	case fs.NArg() > 0:
		return usagef("%s: unexpected argument %q (see moq %s -h)", fs.Name(), fs.Arg(0), fs.Name())
	}
	return nil
}

var errHelp = errors.New("help shown")

// suggestFlag is "; did you mean --F?" for the flag of fs that name most
// likely misspells (within an edit per three letters, at least one; or a
// prefix of it), or "".
func suggestFlag(fs *flag.FlagSet, name string) string {
	best, bestDist := "", max(1, len(name)/3)+1
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		if len(name) >= 3 && strings.HasPrefix(f.Name, name) {
			d = min(d, 1)
		}
		if d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	if best == "" {
		return ""
	}
	return "; did you mean --" + best + "?"
}

// setUsage makes fs print synopsis, its flags, GNU style, and the
// command's examples.
func setUsage(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nFlags:\n", strings.TrimSpace(synopsis))
		printFlags(w, fs)
		if ex := examples[fs.Name()]; ex != "" {
			fmt.Fprintf(w, "\nExamples:\n%s\n", strings.Trim(ex, "\n"))
		}
	}
}

func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if len(f.Name) == 1 {
			line = "  -" + f.Name
		}
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
