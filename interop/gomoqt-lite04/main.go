// Command gomoqt-lite04 is a moq-lite-04 interop peer built on the public API of gomoqt v0.16.1
// (github.com/qumo-dev/gomoqt). moqp2p's tests run it as a subprocess. Its command line and output
// are a contract shared with gomoqt-lite03:
//
//	peer -role server|client -mode pub|sub [-addr HOST:PORT] [-broadcast /PATH] [-track NAME]
//	     [-groups G] [-frames K] [-size S] [-count N] [-announce] [-wait] [-timeout D] [-maxuni N]
//	     [-linger D] [-bench] [-v]
//
// A server prints "LISTEN HOST:PORT" once it listens. On exit both modes print one JSON line
// {"frames":N,"groups":G,"bytes":B,"sha256":"..."} on stdout; errors go to stderr with exit code 1.
//
// -bench is for moqp2p's benchmark command (go run ./bench): the publisher sends one payload for
// every frame and hashes nothing, the subscriber counts frames without keeping or hashing them
// (sha256 is then empty), and the subscriber's JSON line adds "elapsed_ns": the time from
// SUBSCRIBE to the -count-th frame (or to the end of the track).
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/qumo-dev/gomoqt/moqt"
)

const name = "gomoqt-lite04"

type options struct {
	role, mode, addr, broadcast, track string
	groups, frames, size               int
	count                              uint64
	announce, wait, verbose, bench     bool
	timeout, linger                    time.Duration
	maxUni                             int64
}

// result is the JSON line printed on exit.
type result struct {
	Frames uint64 `json:"frames"`
	Groups uint64 `json:"groups"`
	Bytes  uint64 `json:"bytes"`
	SHA256 string `json:"sha256"`
	// ElapsedNS is set by a -bench subscriber: SUBSCRIBE to the last counted frame.
	ElapsedNS int64 `json:"elapsed_ns,omitempty"`
}

var verbose bool

func logf(format string, args ...any) {
	if verbose {
		fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
	}
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "server or client")
	flag.StringVar(&o.mode, "mode", "", "pub or sub")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:0", "server: listen address; client: address to dial")
	flag.StringVar(&o.broadcast, "broadcast", "/bench", "broadcast path (must start with '/')")
	flag.StringVar(&o.track, "track", "data", "track name")
	flag.IntVar(&o.groups, "groups", 100, "publisher: number of groups")
	flag.IntVar(&o.frames, "frames", 100, "publisher: frames per group")
	flag.IntVar(&o.size, "size", 1024, "publisher: frame payload size in bytes")
	flag.Uint64Var(&o.count, "count", 0, "subscriber: stop after N frames (0 = until the track ends)")
	flag.BoolVar(&o.announce, "announce", false, "subscriber: wait for an ANNOUNCE under prefix \"/\" before subscribing")
	flag.BoolVar(&o.wait, "wait", false, "publisher: write only once subscribed (always true: gomoqt calls the publisher per SUBSCRIBE)")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "overall deadline")
	flag.Int64Var(&o.maxUni, "maxuni", 20000, "QUIC MaxIncomingUniStreams")
	flag.DurationVar(&o.linger, "linger", 2*time.Second, "publisher (client): how long to wait for the subscriber to close the session after the track ended")
	flag.BoolVar(&o.bench, "bench", false, "benchmark mode: one payload for every frame, nothing kept or hashed, elapsed_ns in the subscriber's JSON")
	flag.BoolVar(&o.verbose, "v", false, "log to stderr")
	flag.Parse()
	verbose = o.verbose

	res, err := run(o)
	if res != nil {
		line, _ := json.Marshal(res)
		fmt.Println(string(line))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(o options) (*result, error) {
	switch {
	case o.role != "server" && o.role != "client":
		return nil, fmt.Errorf("-role must be server or client, not %q", o.role)
	case o.mode != "pub" && o.mode != "sub":
		return nil, fmt.Errorf("-mode must be pub or sub, not %q", o.mode)
	case !strings.HasPrefix(o.broadcast, "/"):
		return nil, fmt.Errorf("-broadcast must start with '/': %q", o.broadcast)
	case o.groups < 0 || o.frames < 0 || o.size < 0:
		return nil, errors.New("-groups, -frames and -size must not be negative")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	mux := moqt.NewTrackMux(moqt.NewHopID())
	var pub *publisher
	if o.mode == "pub" {
		pub = newPublisher(o)
		// Registers the handler and announces the broadcast to every announce stream.
		mux.PublishFunc(ctx, moqt.BroadcastPath(o.broadcast), pub.serve)
	}
	if o.role == "server" {
		return runServer(ctx, o, mux, pub)
	}
	return runClient(ctx, o, mux, pub)
}

func quicConfig(o options) *quic.Config {
	return &quic.Config{MaxIncomingUniStreams: o.maxUni, MaxIdleTimeout: 30 * time.Second}
}

func logger() *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func timeoutError(o options) error { return fmt.Errorf("timeout after %v", o.timeout) }

type outcome struct {
	res *result
	err error
}

func runServer(ctx context.Context, o options, mux *moqt.TrackMux, pub *publisher) (*result, error) {
	cert, err := selfSignedCert()
	if err != nil {
		return nil, err
	}
	listening := make(chan net.Addr, 1)
	served := make(chan struct{}, 1) // pub: a session that subscribed has ended
	subDone := make(chan outcome, 1) // sub: the subscription is over
	var first sync.Once
	srv := &moqt.Server{
		Addr:       o.addr,
		TLSConfig:  &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{moqt.NextProtoMOQ}},
		QUICConfig: quicConfig(o),
		TrackMux:   mux,
		Logger:     logger(),
		ListenFunc: func(addr string, tc *tls.Config, qc *quic.Config) (moqt.QUICListener, error) {
			ln, err := listenQUIC(addr, tc, qc)
			if err == nil {
				listening <- ln.Addr()
			}
			return ln, err
		},
		Handler: moqt.HandleFunc(func(sess *moqt.Session) {
			logf("session from %v (%s)", sess.RemoteAddr(), sess.ConnectionState().TLS.NegotiatedProtocol)
			defer sess.CloseWithError(moqt.NoError, "done")
			if pub != nil {
				<-sess.Context().Done()
				logf("session from %v ended: %v", sess.RemoteAddr(), context.Cause(sess.Context()))
				if pub.subscribed() {
					select {
					case served <- struct{}{}:
					default:
					}
				}
				return
			}
			isFirst := false
			first.Do(func() { isFirst = true })
			if isFirst {
				res, err := subscribe(ctx, sess, o)
				_ = sess.CloseWithError(moqt.NoError, "done")
				subDone <- outcome{res, err}
			}
		}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case addr := <-listening:
		fmt.Printf("LISTEN %s\n", addr)
	case err := <-errc:
		return nil, fmt.Errorf("listen on %s: %w", o.addr, err)
	case <-ctx.Done():
		return nil, timeoutError(o)
	}
	// No srv.Close() at the end: sessions are closed by then, and gomoqt's Server.Close races with
	// sessions closing (unsynchronised map access in v0.12.2). The process exits right after.

	if pub == nil {
		select {
		case out := <-subDone:
			return out.res, out.err
		case err := <-errc:
			return nil, fmt.Errorf("server: %w", err)
		case <-ctx.Done():
			return nil, timeoutError(o)
		}
	}
	select {
	case <-served:
		return pub.wait(ctx, o)
	case err := <-errc:
		return pub.snapshot(), fmt.Errorf("server: %w", err)
	case <-ctx.Done():
		return pub.snapshot(), timeoutError(o)
	}
}

func runClient(ctx context.Context, o options, mux *moqt.TrackMux, pub *publisher) (*result, error) {
	d := &moqt.Dialer{
		TLSConfig:    &tls.Config{InsecureSkipVerify: true, NextProtos: []string{moqt.NextProtoMOQ}},
		QUICConfig:   quicConfig(o),
		Logger:       logger(),
		DialQUICFunc: dialQUIC,
	}
	url := "moqt://" + o.addr + o.broadcast
	sess, err := d.Dial(ctx, url, mux)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	defer sess.CloseWithError(moqt.NoError, "done")
	logf("connected to %v (%s)", sess.RemoteAddr(), sess.ConnectionState().TLS.NegotiatedProtocol)
	if pub == nil {
		return subscribe(ctx, sess, o)
	}
	select {
	case <-pub.done:
	case <-sess.Context().Done():
		if !pub.subscribed() {
			return nil, fmt.Errorf("session closed before any SUBSCRIBE: %w", context.Cause(sess.Context()))
		}
	case <-ctx.Done():
		return pub.snapshot(), timeoutError(o)
	}
	// The track is closed (FIN) once written; give the subscriber up to -linger to finish.
	select {
	case <-sess.Context().Done():
	case <-time.After(o.linger):
	case <-ctx.Done():
	}
	return pub.wait(ctx, o)
}
