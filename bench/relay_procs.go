package main

// P8 with each node in a process of its own, so that the relay's CPU is
// measured apart from the publisher's and the subscriber's: a publisher
// process, a relay process and the subscriber in the bench process, next
// to the same publisher and subscriber linked directly, and next to plain
// quic-go doing the same (a publisher writing one stream per group, a relay
// process that copies each received stream into a stream to its
// subscriber, and a subscriber). The helpers take commands on stdin:
// "cpu" answers "CPU <ns>" (the process's CPU time so far), "ack N" tells
// our publisher that N groups arrived (it keeps at most p8Window groups
// ahead, as the in-process row does), and the end of stdin ends them.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// p8Window is how many groups the publisher keeps between its write and
// the subscriber's read.
const p8Window = 64

// control serves a helper's stdin commands until stdin ends, then cancels.
type control struct {
	acked atomic.Int64
	wake  chan struct{} // capacity 1: acked moved
}

func serveControl(cancel context.CancelFunc) *control {
	c := &control{wake: make(chan struct{}, 1)}
	go func() {
		defer cancel()
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmd, arg, _ := strings.Cut(sc.Text(), " ")
			switch cmd {
			case "cpu":
				fmt.Printf("CPU %d\n", cpuTime())
			case "ack":
				n, _ := strconv.ParseInt(arg, 10, 64)
				c.acked.Store(n)
				select {
				case c.wake <- struct{}{}:
				default:
				}
			}
		}
	}()
	return c
}

// p8Helper runs one process of the split P8 row: -mode p8pub, p8relay
// (ours, libp2p QUIC), rawpub or rawrelay (plain quic-go).
func p8Helper(o helperOpts) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl := serveControl(cancel)
	switch o.mode {
	case "p8pub":
		return p8Pub(ctx, o, ctl)
	case "p8relay":
		r, err := newCachedRelayNode(o.cacheMiB)
		if err != nil {
			return err
		}
		defer r.close()
		info, err := peer.AddrInfoFromString(o.addr)
		if err != nil {
			return err
		}
		if _, err := r.Connect(ctx, *info); err != nil {
			return err
		}
		fmt.Printf("ADDR %s/p2p/%s\n", r.h.Addrs()[0], r.h.ID())
		<-ctx.Done()
		return nil
	case "rawpub":
		err := rawPub(ctx, o)
		<-ctx.Done() // still answering "cpu" after its subscriber left
		return err
	case "rawrelay":
		return rawRelay(ctx, o)
	}
	return fmt.Errorf("unknown P8 helper mode %q", o.mode)
}

// p8Pub publishes p8/data from a node of its own and writes o.groups groups
// once the track has a subscriber, at most p8Window ahead of the acks.
func p8Pub(ctx context.Context, o helperOpts, ctl *control) error {
	pub, err := newNode()
	if err != nil {
		return err
	}
	defer pub.close()
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "data"})
	if _, err := pub.Publish(ctx, "p8", b.Consume()); err != nil {
		return err
	}
	fmt.Printf("ADDR %s/p2p/%s\n", pub.h.Addrs()[0], pub.h.ID())
	select {
	case <-tp.Used():
	case <-ctx.Done():
		return nil
	}
	payload := make([]byte, o.size)
	frames := make([][]byte, o.frames)
	for i := range frames {
		frames[i] = payload
	}
	for seq := range o.groups {
		for int64(seq)-ctl.acked.Load() >= p8Window {
			select {
			case <-ctl.wake:
			case <-ctx.Done():
				return nil
			}
		}
		if err := tp.WriteGroup(uint64(seq), frames...); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

// rawRelay accepts one subscriber, dials the raw publisher at o.addr, and
// copies every uni stream the publisher opens into one it opens to the
// subscriber, through a 32 KiB buffer, one stream after the other as the
// publisher writes them (the raw subscriber reads them that way: streams
// copied side by side would fill its connection's flow-control window with
// data it reads later).
func rawRelay(ctx context.Context, o helperOpts) error {
	tc, err := serverTLS(rawALPN)
	if err != nil {
		return err
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", tc, rawquic.Config())
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("ADDR %s\n", ln.Addr())
	down, err := ln.Accept(ctx)
	if err != nil {
		return err
	}
	defer down.CloseWithError(0, "")
	up, err := quic.DialAddr(ctx, o.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{rawALPN}}, rawquic.Config())
	if err != nil {
		return err
	}
	defer up.CloseWithError(0, "")
	buf := make([]byte, 32<<10)
	for {
		in, err := up.AcceptUniStream(ctx)
		if err != nil {
			return nil // the publisher or ctx ended
		}
		out, err := down.OpenUniStreamSync(ctx)
		if err != nil {
			return nil
		}
		if _, err := io.CopyBuffer(out, in, buf); err != nil {
			return err
		}
		_ = out.Close()
	}
}

// p8Proc is a running P8 helper.
type p8Proc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	addr  string
	done  chan error
	err   strings.Builder
}

// startP8Proc runs a helper and waits for its address (ADDR or LISTEN).
func startP8Proc(ctx context.Context, args ...string) (*p8Proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &p8Proc{lines: make(chan string, 16), done: make(chan error, 1)}
	p.cmd = exec.CommandContext(ctx, self, append([]string{"-helper", "p8"}, args...)...)
	p.cmd.Stderr = &p.err
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		p.done <- p.cmd.Wait()
		close(p.lines)
	}()
	for line := range p.lines {
		if a, ok := strings.CutPrefix(line, "ADDR "); ok {
			p.addr = a
			return p, nil
		}
		if a, ok := strings.CutPrefix(line, "LISTEN "); ok {
			p.addr = a
			return p, nil
		}
	}
	return nil, fmt.Errorf("helper %v ended: %v: %s", args, <-p.done, p.err.String())
}

// cpu asks the helper for its CPU time so far.
func (p *p8Proc) cpu() (time.Duration, error) {
	if _, err := io.WriteString(p.in, "cpu\n"); err != nil {
		return 0, err
	}
	for line := range p.lines {
		if v, ok := strings.CutPrefix(line, "CPU "); ok {
			ns, err := strconv.ParseInt(v, 10, 64)
			return time.Duration(ns), err
		}
	}
	return 0, errors.New("helper ended")
}

func (p *p8Proc) ack(n int) { _, _ = fmt.Fprintf(p.in, "ack %d\n", n) }

// stop ends the helper (the end of its stdin), killing it after 10 s.
func (p *p8Proc) stop() {
	_ = p.in.Close()
	go func() {
		for range p.lines {
		}
	}()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// hopResult is one split P8 transfer: MB/s at the subscriber, and CPU
// seconds per GiB delivered of the publisher's and the relay's processes
// (relay 0 when direct).
type hopResult struct {
	mbs, pubCPU, relayCPU float64
}

// hopProcs moves groups×100 frames of 1 KiB from a publisher process to the
// subscriber here, through a relay process or directly, with our stack or
// with plain quic-go (raw).
func hopProcs(ctx context.Context, groups int, relayed, raw bool) (hopResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	g := strconv.Itoa(groups)
	mode := map[bool]string{false: "p8pub", true: "rawpub"}[raw]
	pub, err := startP8Proc(ctx, "-mode", mode, "-groups", g, "-frames", "100", "-size", "1024")
	if err != nil {
		return hopResult{}, err
	}
	defer pub.stop()
	procs, at := []*p8Proc{pub}, pub.addr
	if relayed {
		mode := map[bool]string{false: "p8relay", true: "rawrelay"}[raw]
		args := []string{"-mode", mode, "-addr", pub.addr}
		if p8CacheMiB > 0 && !raw {
			args = append(args, "-cache-mib", strconv.Itoa(p8CacheMiB))
		}
		if profDir != "" { // the last run's relay profile
			args = append(args, "-cpuprofile", filepath.Join(profDir, "p8-"+mode+".cpu"))
		}
		r, err := startP8Proc(ctx, args...)
		if err != nil {
			return hopResult{}, err
		}
		defer r.stop()
		procs, at = append(procs, r), r.addr
	}
	cpu0 := make([]time.Duration, len(procs))
	for i, p := range procs {
		if cpu0[i], err = p.cpu(); err != nil {
			return hopResult{}, err
		}
	}
	var elapsed time.Duration
	var n uint64
	if raw {
		res, err := rawSub(ctx, helperOpts{addr: at, count: uint64(groups * 100)})
		if err != nil {
			return hopResult{}, fmt.Errorf("raw subscriber: %w (publisher: %s)", err, pub.err.String())
		}
		elapsed, n = time.Duration(res.ElapsedNS), res.Bytes
	} else {
		if elapsed, n, err = p8Sub(ctx, at, groups, pub); err != nil {
			return hopResult{}, err
		}
	}
	var res hopResult
	gib := float64(n) / (1 << 30)
	res.mbs = float64(n) / elapsed.Seconds() / 1e6
	for i, p := range procs {
		c, err := p.cpu()
		if err != nil {
			return hopResult{}, err
		}
		v := (c - cpu0[i]).Seconds() / gib
		if i == 0 {
			res.pubCPU = v
		} else {
			res.relayCPU = v
		}
	}
	return res, nil
}

// p8Sub subscribes to p8/data at the node at addr and reads groups,
// acknowledging each to the publisher process.
func p8Sub(ctx context.Context, addr string, groups int, pub *p8Proc) (time.Duration, uint64, error) {
	sub, err := newNode()
	if err != nil {
		return 0, 0, err
	}
	defer sub.close()
	info, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return 0, 0, err
	}
	if _, err := sub.Connect(ctx, *info); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	tc, err := sub.Subscribe(ctx, "p8", "data")
	if err != nil {
		return 0, 0, err
	}
	defer tc.Close()
	var bytes uint64
	for got := 0; got < groups; {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("after %d groups: %w (publisher: %s)", got, err, pub.err.String())
		}
		for {
			f, err := g.ReadFrame(ctx)
			if err != nil {
				break
			}
			bytes += uint64(len(f))
		}
		got++
		pub.ack(got)
	}
	return time.Since(start), bytes, nil
}
