package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// The helper modes run one end of a P1/P2 transfer in a process of its own,
// with the command line and output of the gomoqt interop peer
// (interop/gomoqt-lite04 -bench), so that the three stacks are measured the
// same way:
//
//	bench -helper ours|raw -role server -mode pub -groups G -frames K -size S
//	bench -helper ours|raw -role client -mode sub -addr HOST:PORT -count N
//
// The server prints "LISTEN HOST:PORT"; the subscriber prints
// {"frames":N,"bytes":B,"elapsed_ns":T}, T from its request (SUBSCRIBE, or
// the end of the handshake for raw QUIC) to the N-th frame.

// helperResult is the JSON line a helper (or the gomoqt peer) prints.
type helperResult struct {
	Frames    uint64 `json:"frames"`
	Bytes     uint64 `json:"bytes"`
	ElapsedNS int64  `json:"elapsed_ns"`
}

type helperOpts struct {
	stack, role, mode, addr string
	groups, frames, size    int
	count                   uint64
	window                  int
	timeout                 time.Duration
	cpuprofile              string
	cacheMiB                int // P8 relay: its track caches' bound, MiB (0: defaults)
}

// pubWindow is how many groups our helper publisher writes ahead of what
// its session has sent: the track is a live cache, not a queue, so a writer
// that outran the link by more than the cache would lose groups.
const pubWindow = 32

// helperMain runs a helper and exits.
func helperMain(args []string) {
	fs := flag.NewFlagSet("bench -helper", flag.ExitOnError)
	var o helperOpts
	fs.StringVar(&o.stack, "helper", "", "ours or raw")
	fs.StringVar(&o.role, "role", "", "server or client")
	fs.StringVar(&o.mode, "mode", "", "pub or sub")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "listen or dial address")
	fs.IntVar(&o.groups, "groups", 100, "publisher: groups")
	fs.IntVar(&o.frames, "frames", 100, "publisher: frames per group")
	fs.IntVar(&o.size, "size", 1024, "publisher: frame size")
	fs.Uint64Var(&o.count, "count", 0, "subscriber: frames to read")
	fs.IntVar(&o.window, "window", pubWindow, "ours publisher: groups written ahead of the session")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "deadline")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile here")
	fs.IntVar(&o.cacheMiB, "cache-mib", 0, "P8 relay: bound its track caches to this many MiB")
	_ = fs.Parse(args)
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	var res *helperResult
	var err error
	switch {
	case o.stack == "p8":
		err = p8Helper(o)
	case o.stack == "ours" && o.role == "server" && o.mode == "pub":
		err = oursPub(ctx, o)
	case o.stack == "ours" && o.role == "client" && o.mode == "sub":
		res, err = oursSub(ctx, o)
	case o.stack == "raw" && o.role == "server" && o.mode == "pub":
		err = rawPub(ctx, o)
	case o.stack == "raw" && o.role == "client" && o.mode == "sub":
		res, err = rawSub(ctx, o)
	default:
		err = fmt.Errorf("unknown helper %s -role %s -mode %s", o.stack, o.role, o.mode)
	}
	if res != nil {
		line, _ := json.Marshal(res)
		fmt.Println(string(line))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench helper %s %s: %v\n", o.stack, o.mode, err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// liteEnv, when set (e.g. "moq-lite-04"; -alpn, -versions), is the only
// protocol our moq-lite servers offer, so rows can be compared across
// versions (by default our dialer and server agree on moq-lite-05).
// Helpers inherit it.
const liteEnv = "MOQP2P_BENCH_ALPN"

// serverTLS is a self-signed certificate for 127.0.0.1 offering alpns
// (none: $MOQP2P_BENCH_ALPN, else rawquic's defaults).
func serverTLS(alpns ...string) (*tls.Config, error) {
	crt, err := cert.SelfSigned()
	if err != nil {
		return nil, err
	}
	if v := os.Getenv(liteEnv); len(alpns) == 0 && v != "" {
		alpns = []string{v}
	}
	return &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: alpns}, nil
}

// oursPub serves one subscriber: groups×frames frames of size bytes, written
// once the subscription arrives, then waits for the subscriber to leave.
func oursPub(ctx context.Context, o helperOpts) error {
	tc, err := serverTLS()
	if err != nil {
		return err
	}
	ep, err := rawquic.Listen(o.addr, tc, nil)
	if err != nil {
		return err
	}
	defer ep.Close()
	fmt.Printf("LISTEN %s\n", ep.Addr())
	origin := broadcast.NewOrigin(0)
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "data"})
	if _, err := origin.Publish("bench", b.Consume()); err != nil {
		return err
	}
	conn, err := ep.Accept(ctx)
	if err != nil {
		return err
	}
	s, err := session.New(conn, session.Config{Publish: origin, Interest: []string{}, Logger: quietLogger(), Metrics: benchTracer()})
	if err != nil {
		return err
	}
	defer s.Close(broadcast.CodeCancel, "done")
	select {
	case <-tp.Used():
	case <-ctx.Done():
		return ctx.Err()
	}
	payload := make([]byte, o.size)
	for g := range o.groups {
		for uint64(g) >= s.Stats().GroupsSent+uint64(o.window) {
			select {
			case <-time.After(time.Millisecond):
			case <-s.Done():
				return fmt.Errorf("session ended after %d groups: %w", s.Stats().GroupsSent, s.Err())
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		gp, err := tp.AppendGroup()
		if err != nil {
			return err
		}
		for range o.frames {
			_ = gp.WriteFrame(payload)
		}
		_ = gp.Finish()
	}
	_ = tp.Finish()
	select {
	case <-s.Done():
	case <-ctx.Done():
	}
	return nil
}

// oursSub subscribes to bench/data and reads count frames.
func oursSub(ctx context.Context, o helperOpts) (*helperResult, error) {
	conn, err := rawquic.Dial(ctx, o.addr, &tls.Config{InsecureSkipVerify: true}, nil)
	if err != nil {
		return nil, err
	}
	s, err := session.New(conn, session.Config{Client: true, Interest: []string{}, Logger: quietLogger(), Metrics: benchTracer()})
	if err != nil {
		return nil, err
	}
	defer s.Close(broadcast.CodeCancel, "done")
	start := time.Now()
	tc, err := s.Subscribe(ctx, "bench", "data", session.SubscribeOptions{})
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	var res helperResult
	for res.Frames < o.count {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			return &res, fmt.Errorf("after %d frames: %w", res.Frames, err)
		}
		for res.Frames < o.count {
			f, err := g.ReadFrame(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return &res, fmt.Errorf("after %d frames: %w", res.Frames, err)
			}
			res.Frames++
			res.Bytes += uint64(len(f))
		}
	}
	res.ElapsedNS = int64(time.Since(start))
	return &res, nil
}

const rawALPN = "moqp2p-bench"

// rawPub writes the same bytes as a moq-lite publisher on plain quic-go:
// one uni stream per group, each frame size-prefixed, one stream after the
// other, through a 32 KiB buffer.
func rawPub(ctx context.Context, o helperOpts) error {
	tc, err := serverTLS(rawALPN)
	if err != nil {
		return err
	}
	ln, err := quic.ListenAddr(o.addr, tc, rawquic.Config())
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("LISTEN %s\n", ln.Addr())
	conn, err := ln.Accept(ctx)
	if err != nil {
		return err
	}
	defer conn.CloseWithError(0, "")
	payload := make([]byte, o.size)
	w := bufio.NewWriterSize(nil, 32<<10)
	var hdr [8]byte
	for range o.groups {
		st, err := conn.OpenUniStreamSync(ctx)
		if err != nil {
			return err
		}
		w.Reset(st)
		for range o.frames {
			_, _ = w.Write(wire.AppendFrameHeader(hdr[:0], uint64(o.size)))
			_, _ = w.Write(payload)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		_ = st.Close()
	}
	select { // until the subscriber has read everything and closes
	case <-conn.Context().Done():
	case <-ctx.Done():
	}
	return nil
}

// rawSub reads count frames from the raw publisher, each into a buffer of
// its own (as a moq-lite subscriber hands every frame over in its own
// memory), group streams in the order they arrive.
func rawSub(ctx context.Context, o helperOpts) (*helperResult, error) {
	conn, err := quic.DialAddr(ctx, o.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{rawALPN}}, rawquic.Config())
	if err != nil {
		return nil, err
	}
	defer conn.CloseWithError(0, "done")
	start := time.Now()
	var res helperResult
	r := bufio.NewReaderSize(nil, 16<<10)
	for res.Frames < o.count {
		st, err := conn.AcceptUniStream(ctx)
		if err != nil {
			return &res, err
		}
		r.Reset(st)
		for res.Frames < o.count {
			n, err := wire.ReadVarint(r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return &res, err
			}
			f := make([]byte, n)
			if _, err := io.ReadFull(r, f); err != nil {
				return &res, err
			}
			res.Frames++
			res.Bytes += n
		}
	}
	res.ElapsedNS = int64(time.Since(start))
	return &res, nil
}
