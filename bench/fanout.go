package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// benchCache keeps the in-process rows' groups cached for as long as a run
// may take: every reader counts the groups it expects, and on a loaded
// machine a reader starved for CacheMaxAge (5 s) would have the groups it
// had not read yet evicted (live media skips them) and wait for them until
// the run's deadline. The count and byte bounds stay.
var benchCache = broadcast.Limits{CacheMaxAge: time.Minute}

// moqFan is one publishing endpoint with n subscriber sessions, each on a
// connection of its own (all dialed from one client socket).
type moqFan struct {
	srv, cli *rawquic.Endpoint
	origin   *broadcast.Origin
	pubs     []*session.Session
	subs     []*session.Session
}

func newMoqFan(ctx context.Context, n int) (*moqFan, error) {
	tc, err := serverTLS()
	if err != nil {
		return nil, err
	}
	f := &moqFan{origin: broadcast.NewOrigin(0)}
	if f.srv, err = rawquic.Listen("127.0.0.1:0", tc, nil); err != nil {
		return nil, err
	}
	if f.cli, err = rawquic.NewEndpoint("127.0.0.1:0", nil); err != nil {
		_ = f.srv.Close()
		return nil, err
	}
	for range n {
		c, err := f.cli.Dial(ctx, f.srv.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			f.close()
			return nil, err
		}
		s, err := f.srv.Accept(ctx)
		if err != nil {
			f.close()
			return nil, err
		}
		pub, err := session.New(s, session.Config{Publish: f.origin, Interest: []string{}, Logger: quietLogger(), Metrics: benchTracer()})
		if err != nil {
			f.close()
			return nil, err
		}
		sub, err := session.New(c, session.Config{Client: true, Interest: []string{}, Logger: quietLogger(), Metrics: benchTracer(), Limits: session.Limits{Model: benchCache}})
		if err != nil {
			_ = pub.Close(0, "")
			f.close()
			return nil, err
		}
		f.pubs, f.subs = append(f.pubs, pub), append(f.subs, sub)
	}
	return f, nil
}

func (f *moqFan) close() {
	for _, s := range f.subs {
		_ = s.Close(broadcast.CodeCancel, "done")
	}
	for _, s := range f.pubs {
		_ = s.Close(broadcast.CodeCancel, "done")
	}
	_ = f.cli.Close()
	_ = f.srv.Close()
}

// publish makes a fresh broadcast at name with one track "data" and
// subscribes every subscriber session to it.
func (f *moqFan) publish(ctx context.Context, name string) (*broadcast.Producer, *broadcast.TrackProducer, []*broadcast.TrackConsumer, error) {
	b := broadcast.New(broadcast.Config{Limits: benchCache})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "data"})
	if _, err := f.origin.Publish(name, b.Consume()); err != nil {
		return nil, nil, nil, err
	}
	var tcs []*broadcast.TrackConsumer
	for _, s := range f.subs {
		tc, err := s.Subscribe(ctx, name, "data", session.SubscribeOptions{})
		if err != nil {
			for _, tc := range tcs {
				tc.Close()
			}
			b.Finish()
			return nil, nil, nil, err
		}
		tcs = append(tcs, tc)
	}
	return b, tp, tcs, nil
}

// rawFan is n raw quic-go connections from one client socket to one server.
type rawFan struct {
	ln      *quic.Listener
	cliTr   *quic.Transport
	cliSock net.PacketConn
	servers []*quic.Conn
	clients []*quic.Conn
}

func newRawFan(ctx context.Context, n int) (*rawFan, error) {
	tc, err := serverTLS(rawALPN)
	if err != nil {
		return nil, err
	}
	f := &rawFan{}
	if f.ln, err = quic.ListenAddr("127.0.0.1:0", tc, rawquic.Config()); err != nil {
		return nil, err
	}
	if f.cliSock, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		_ = f.ln.Close()
		return nil, err
	}
	f.cliTr = &quic.Transport{Conn: f.cliSock}
	addr := f.ln.Addr()
	for range n {
		c, err := f.cliTr.Dial(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{rawALPN}}, rawquic.Config())
		if err != nil {
			f.close()
			return nil, err
		}
		s, err := f.ln.Accept(ctx)
		if err != nil {
			f.close()
			return nil, err
		}
		f.clients, f.servers = append(f.clients, c), append(f.servers, s)
	}
	return f, nil
}

func (f *rawFan) close() {
	for _, c := range append(f.clients, f.servers...) {
		_ = c.CloseWithError(0, "")
	}
	_ = f.ln.Close()
	_ = f.cliTr.Close()
	_ = f.cliSock.Close()
}

// fanResult is one P3 run.
type fanResult struct {
	bytes, frames uint64
	m             measured
}

const fanWindow = 16 // groups the producer may run ahead of the slowest subscriber

// credits returns n channels holding window tokens each.
func credits(n, window int) []chan struct{} {
	cs := make([]chan struct{}, n)
	for i := range cs {
		cs[i] = make(chan struct{}, window)
		for range window {
			cs[i] <- struct{}{}
		}
	}
	return cs
}

// takeAll takes one token from every channel.
func takeAll(ctx context.Context, cs []chan struct{}) bool {
	for _, c := range cs {
		select {
		case <-c:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// moqFanRun writes groups×perGroup frames of size into one track that every
// subscriber reads; the producer stays within fanWindow groups of the
// slowest one.
func moqFanRun(ctx context.Context, f *moqFan, name string, groups, perGroup, size int) (fanResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	b, tp, tcs, err := f.publish(ctx, name)
	if err != nil {
		return fanResult{}, err
	}
	defer b.Finish()
	defer func() {
		for _, tc := range tcs {
			tc.Close()
		}
	}()
	cs := credits(len(tcs), fanWindow)
	payload := make([]byte, size)
	p0 := packets(f.quicConns()...)
	allocProfile(fmt.Sprintf("p3-%d-before.allocs", len(tcs)))
	defer allocProfile(fmt.Sprintf("p3-%d-after.allocs", len(tcs)))
	m := startMeter()
	go func() {
		for range groups {
			if !takeAll(ctx, cs) {
				return
			}
			g, err := tp.AppendGroup()
			if err != nil {
				return
			}
			for range perGroup {
				_ = g.WriteFrame(payload)
			}
			_ = g.Finish()
		}
	}()
	var frames atomic.Uint64
	errs := make(chan error, len(tcs))
	for i, tc := range tcs {
		go func() {
			var n uint64
			defer func() { frames.Add(n) }()
			for range groups {
				g, err := tc.RecvGroup(ctx)
				if err != nil {
					errs <- fmt.Errorf("subscriber %d after %d frames: %w", i, n, err)
					return
				}
				for {
					_, err := g.ReadFrame(ctx)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						errs <- fmt.Errorf("subscriber %d after %d frames: %w", i, n, err)
						return
					}
					n++
				}
				cs[i] <- struct{}{}
			}
			errs <- nil
		}()
	}
	var first error
	for range tcs {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	r := fanResult{m: m.stop(), frames: frames.Load()}
	r.bytes = r.frames * uint64(size)
	r.m.packets = packets(f.quicConns()...) - p0
	return r, first
}

// rawFanRun is moqFanRun on raw quic-go: a producer hands each group to one
// writer goroutine per connection, which sends it on a uni stream of its
// own (size-prefixed frames through a 32 KiB buffer); one reader per
// connection reads each frame into a buffer of its own.
func rawFanRun(ctx context.Context, f *rawFan, groups, perGroup, size int) (fanResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	n := len(f.servers)
	cs := credits(n, fanWindow)
	ready := make([]chan struct{}, n)
	for i := range ready {
		ready[i] = make(chan struct{}, fanWindow+1)
	}
	payload := make([]byte, size)
	p0 := packets(f.quicConns()...)
	m := startMeter()
	go func() {
		for range groups {
			if !takeAll(ctx, cs) {
				return
			}
			for _, r := range ready {
				r <- struct{}{}
			}
		}
	}()
	var wg sync.WaitGroup
	for i, conn := range f.servers {
		wg.Go(func() {
			w := bufio.NewWriterSize(nil, 32<<10)
			var hdr [8]byte
			for range groups {
				select {
				case <-ready[i]:
				case <-ctx.Done():
					return
				}
				st, err := conn.OpenUniStreamSync(ctx)
				if err != nil {
					return
				}
				w.Reset(st)
				for range perGroup {
					_, _ = w.Write(wire.AppendFrameHeader(hdr[:0], uint64(size)))
					_, _ = w.Write(payload)
				}
				_ = w.Flush()
				_ = st.Close()
			}
		})
	}
	var frames atomic.Uint64
	errs := make(chan error, n)
	for i, conn := range f.clients {
		go func() {
			var got uint64
			defer func() { frames.Add(got) }()
			r := bufio.NewReaderSize(nil, 16<<10)
			for range groups {
				st, err := conn.AcceptUniStream(ctx)
				if err != nil {
					errs <- err
					return
				}
				r.Reset(st)
				for {
					sz, err := wire.ReadVarint(r)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						errs <- err
						return
					}
					p := make([]byte, sz)
					if _, err := io.ReadFull(r, p); err != nil {
						errs <- err
						return
					}
					got++
				}
				cs[i] <- struct{}{}
			}
			errs <- nil
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	res := fanResult{m: m.stop(), frames: frames.Load()}
	res.bytes = res.frames * uint64(size)
	res.m.packets = packets(f.quicConns()...) - p0
	cancel()
	wg.Wait()
	return res, first
}

// runFanout is P3: for each subscriber count, runs ours and raw in turn.
func runFanout(ctx context.Context, cfg config) []*line {
	const size, perGroup = 1 << 10, 100
	var lines []*line
	var allocs10 sample
	for k, n := range cfg.p3Subs {
		groups := max(1, cfg.p3Bytes*mib/(n*perGroup*size))
		logf("P3: %d subscribers, %d groups of %d×1 KiB each", n, groups, perGroup)
		mf, err := newMoqFan(ctx, n)
		if err != nil {
			logf("P3: %v", err)
			continue
		}
		rf, err := newRawFan(ctx, n)
		if err != nil {
			mf.close()
			logf("P3: %v", err)
			continue
		}
		// A warm-up round, not recorded: fresh connections are in slow
		// start and pools are empty, whichever stack runs first.
		warm := max(1, groups/5)
		_, _ = moqFanRun(ctx, mf, fmt.Sprintf("fan%d-warm", n), warm, perGroup, size)
		_, _ = rawFanRun(ctx, rf, warm, perGroup, size)
		var thr, cpu, allocs [2]sample
		for run := range cfg.runs {
			for i, do := range []func() (fanResult, error){
				func() (fanResult, error) {
					return moqFanRun(ctx, mf, fmt.Sprintf("fan%d-%d", n, run), groups, perGroup, size)
				},
				func() (fanResult, error) { return rawFanRun(ctx, rf, groups, perGroup, size) },
			} {
				if skip(i) {
					continue
				}
				r, err := do()
				if err != nil {
					logf("P3 %d subs %s run %d: %v", n, []string{"ours", "raw"}[i], run+1, err)
					continue
				}
				thr[i] = append(thr[i], float64(r.bytes)/mib/r.m.wall.Seconds())
				cpu[i] = append(cpu[i], r.m.cpu.Seconds()/(float64(r.bytes)/gib))
				allocs[i] = append(allocs[i], float64(r.m.allocs)/float64(r.frames))
				logf("P3 %d subs %-4s run %d: %.1f MiB/s, %.2f CPU s/GiB, %.2f allocs/frame, %.3f packets/frame", n, []string{"ours", "raw"}[i], run+1,
					thr[i][len(thr[i])-1], cpu[i][len(cpu[i])-1], allocs[i][len(allocs[i])-1], float64(r.m.packets)/float64(r.frames))
			}
		}
		mf.close()
		rf.close()
		last := k == len(cfg.p3Subs)-1
		l1 := &line{Row: "P3", Metric: "delivered MiB/s", Note: fmt.Sprintf("%d subscribers", n), Ours: thr[0], Raw: thr[1]}
		l2 := &line{Row: "P3", Metric: "CPU s/GiB", Note: fmt.Sprintf("%d subscribers, both ends", n), Ours: cpu[0], Raw: cpu[1]}
		l3 := &line{Row: "P3", Metric: "allocs/delivered frame", Note: fmt.Sprintf("%d subscribers, both ends", n), Ours: allocs[0], Raw: allocs[1]}
		if last {
			l1.Target, l1.Check = "≥ 0.7× raw", atLeast((*line).vsRaw, 0.7)
			l2.Target, l2.Check = "≤ 1.1× raw", atMost((*line).vsRaw, 1.1)
			if len(allocs10) > 0 {
				base := allocs10.median()
				l3.Target = fmt.Sprintf("not growing with subscribers (%s at %d)", fmtNum(base), cfg.p3Subs[0])
				l3.Check = func(l *line) any {
					if len(l.Ours) == 0 {
						return nil
					}
					return l.Ours.median() <= base*1.1
				}
			}
		} else if k == 0 {
			allocs10 = allocs[0]
		}
		lines = append(lines, l1, l2, l3)
	}
	return lines
}

// latencies is one run of P4: publish→deliver times of every subscriber.
type latencies []time.Duration

func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

const p4Rate = 30 // groups per second

// moqLatencyRun publishes one group of one frame every 1/30 s for d and
// records, for every subscriber, how long after the publisher's
// WriteFrame the frame was readable.
func moqLatencyRun(ctx context.Context, f *moqFan, name string, d time.Duration, size int) (latencies, error) {
	total := int(d.Seconds() * p4Rate)
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	b, tp, tcs, err := f.publish(ctx, name)
	if err != nil {
		return nil, err
	}
	defer b.Finish()
	defer func() {
		for _, tc := range tcs {
			tc.Close()
		}
	}()
	sent := make([]atomic.Int64, total)
	go func() {
		tick := time.NewTicker(time.Second / p4Rate)
		defer tick.Stop()
		for range total {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			g, err := tp.AppendGroup()
			if err != nil {
				return
			}
			sent[g.Sequence()].Store(time.Now().UnixNano())
			_ = g.WriteFrame(make([]byte, size))
			_ = g.Finish()
		}
	}()
	return collectLatencies(len(tcs), total, func(i int) (uint64, error) {
		g, err := tcs[i].RecvGroup(ctx)
		if err != nil {
			return 0, err
		}
		if _, err := g.ReadFrame(ctx); err != nil {
			return 0, err
		}
		return g.Sequence(), nil
	}, sent)
}

// collectLatencies runs one reader per subscriber, each receiving total
// groups with recv, and gathers their latencies.
func collectLatencies(n, total int, recv func(i int) (uint64, error), sent []atomic.Int64) (latencies, error) {
	var mu sync.Mutex
	var all latencies
	var first error
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			mine := make(latencies, 0, total)
			defer func() { mu.Lock(); all = append(all, mine...); mu.Unlock() }()
			for range total {
				seq, err := recv(i)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("subscriber %d after %d groups: %w", i, len(mine), err)
					}
					mu.Unlock()
					return
				}
				if seq < uint64(len(sent)) {
					mine = append(mine, time.Duration(time.Now().UnixNano()-sent[seq].Load()))
				}
			}
		})
	}
	wg.Wait()
	return all, first
}

// rawLatencyRun is moqLatencyRun on raw quic-go: each group is a uni stream
// per connection carrying the group number and one size-prefixed frame,
// written by one writer goroutine per connection.
func rawLatencyRun(ctx context.Context, f *rawFan, d time.Duration, size int) (latencies, error) {
	total := int(d.Seconds() * p4Rate)
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	sent := make([]atomic.Int64, total)
	ready := make([]chan uint64, len(f.servers))
	for i := range ready {
		ready[i] = make(chan uint64, total)
	}
	go func() {
		tick := time.NewTicker(time.Second / p4Rate)
		defer tick.Stop()
		for g := range total {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			sent[g].Store(time.Now().UnixNano())
			for _, r := range ready {
				r <- uint64(g)
			}
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, conn := range f.servers {
		wg.Go(func() {
			payload := make([]byte, size)
			buf := make([]byte, 0, 16+size)
			for range total {
				var g uint64
				select {
				case g = <-ready[i]:
				case <-ctx.Done():
					return
				}
				st, err := conn.OpenUniStreamSync(ctx)
				if err != nil {
					return
				}
				buf = wire.AppendVarint(buf[:0], g)
				buf = wire.AppendFrameHeader(buf, uint64(size))
				_, _ = st.Write(append(buf, payload...))
				_ = st.Close()
			}
		})
	}
	readers := make([]*bufio.Reader, len(f.clients)) // each used by one reader goroutine
	for i := range readers {
		readers[i] = bufio.NewReaderSize(nil, 16<<10)
	}
	return collectLatencies(len(f.clients), total, func(i int) (uint64, error) {
		st, err := f.clients[i].AcceptUniStream(ctx)
		if err != nil {
			return 0, err
		}
		r := readers[i]
		r.Reset(st)
		g, err := wire.ReadVarint(r)
		if err != nil {
			return 0, err
		}
		n, err := wire.ReadVarint(r)
		if err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
			return 0, err
		}
		return g, nil
	}, sent)
}

// runLatency is P4.
func runLatency(ctx context.Context, cfg config) []*line {
	const size = 16 << 10
	n := cfg.p4Subs
	logf("P4: %d subscribers, %d groups/s of one %s frame, %s per run", n, p4Rate, sizeName(size), cfg.p4Duration)
	mf, err := newMoqFan(ctx, n)
	if err != nil {
		logf("P4: %v", err)
		return nil
	}
	defer mf.close()
	rf, err := newRawFan(ctx, n)
	if err != nil {
		logf("P4: %v", err)
		return nil
	}
	defer rf.close()
	// A warm-up round, not recorded (see runFanout).
	_, _ = moqLatencyRun(ctx, mf, "lat-warm", time.Second, size)
	_, _ = rawLatencyRun(ctx, rf, time.Second, size)
	var q [3][2]sample // p50, p99, p999 × ours, raw
	for run := range cfg.runs {
		for i, do := range []func() (latencies, error){
			func() (latencies, error) {
				return moqLatencyRun(ctx, mf, fmt.Sprintf("lat-%d", run), cfg.p4Duration, size)
			},
			func() (latencies, error) { return rawLatencyRun(ctx, rf, cfg.p4Duration, size) },
		} {
			if skip(i) {
				continue
			}
			l, err := do()
			if err != nil {
				logf("P4 %s run %d: %v", []string{"ours", "raw"}[i], run+1, err)
				continue
			}
			for k, p := range []float64{0.5, 0.99, 0.999} {
				q[k][i] = append(q[k][i], float64(l.quantile(p))/float64(time.Millisecond))
			}
			logf("P4 %-4s run %d: %d samples, p50 %.2f ms, p99 %.2f ms, p999 %.2f ms", []string{"ours", "raw"}[i], run+1, len(l),
				q[0][i][len(q[0][i])-1], q[1][i][len(q[1][i])-1], q[2][i][len(q[2][i])-1])
		}
	}
	note := fmt.Sprintf("%d subscribers, %d groups/s, %s", n, p4Rate, sizeName(size))
	return []*line{
		{Row: "P4", Metric: "latency p50 ms", Note: note, Ours: q[0][0], Raw: q[0][1]},
		{Row: "P4", Metric: "latency p99 ms", Ours: q[1][0], Raw: q[1][1], Target: "≤ 1.5× raw", Check: atMost((*line).vsRaw, 1.5)},
		{Row: "P4", Metric: "latency p999 ms", Ours: q[2][0], Raw: q[2][1]},
	}
}
