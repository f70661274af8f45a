package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/internal/loadtest"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// churnWindow is how many groups (streams) P6 keeps in flight, the
// session's default MaxGroupsInFlight.
const churnWindow = 64

// churnSize is the one frame of a P6 group: small, so that stream setup and
// teardown dominate.
const churnSize = 64

// packets counts the QUIC packets both ends of the connections sent.
func packets(conns ...*quic.Conn) uint64 {
	var n uint64
	for _, c := range conns {
		n += c.ConnectionStats().PacketsSent
	}
	return n
}

// quicConns returns the QUIC connections under the sessions, both ends.
func (f *moqFan) quicConns() []*quic.Conn {
	var cs []*quic.Conn
	for _, s := range append(f.pubs[:len(f.pubs):len(f.pubs)], f.subs...) {
		if c, ok := rawquic.QUIC(s.Conn()); ok {
			cs = append(cs, c)
		}
	}
	return cs
}

// quicConns returns the connections, both ends.
func (f *rawFan) quicConns() []*quic.Conn {
	return append(f.servers[:len(f.servers):len(f.servers)], f.clients...)
}

// moqChurnRun moves groups one-frame groups through one session pair.
func moqChurnRun(ctx context.Context, f *moqFan, name string, groups int) (measured, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	b, tp, tcs, err := f.publish(ctx, name)
	if err != nil {
		return measured{}, err
	}
	defer b.Finish()
	defer tcs[0].Close()
	p0 := packets(f.quicConns()...)
	allocProfile("p6-before.allocs")
	defer allocProfile("p6-after.allocs")
	m := startMeter()
	err = loadtest.Pump(ctx, tp, tcs[0], make([]byte, churnSize), groups, 1, churnWindow)
	r := m.stop()
	r.packets = packets(f.quicConns()...) - p0
	return r, err
}

// rawChurnRun is the same on raw quic-go: a uni stream per group carrying
// one size-prefixed frame, at most churnWindow unread.
func rawChurnRun(ctx context.Context, f *rawFan, groups int) (measured, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	server, client := f.servers[0], f.clients[0]
	cs := credits(1, churnWindow)[0]
	p0 := packets(server, client)
	m := startMeter()
	done := make(chan struct{})
	go func() {
		defer close(done)
		payload := make([]byte, churnSize)
		buf := make([]byte, 0, 16+churnSize)
		for range groups {
			select {
			case <-cs:
			case <-ctx.Done():
				return
			}
			st, err := server.OpenUniStreamSync(ctx)
			if err != nil {
				return
			}
			buf = wire.AppendFrameHeader(buf[:0], churnSize)
			_, _ = st.Write(append(buf, payload...))
			_ = st.Close()
		}
	}()
	defer func() { cancel(); <-done }()
	r := bufio.NewReaderSize(nil, 16<<10)
	for i := range groups {
		st, err := client.AcceptUniStream(ctx)
		if err != nil {
			return measured{}, fmt.Errorf("group %d: %w", i, err)
		}
		r.Reset(st)
		for {
			n, err := wire.ReadVarint(r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return measured{}, err
			}
			if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
				return measured{}, err
			}
		}
		cs <- struct{}{}
	}
	res := m.stop()
	res.packets = packets(server, client) - p0
	return res, nil
}

// runChurn is P6.
func runChurn(ctx context.Context, cfg config) []*line {
	n := cfg.p6Groups
	logf("P6: %d groups of one %d-byte frame, %d in flight", n, churnSize, churnWindow)
	mf, err := newMoqFan(ctx, 1)
	if err != nil {
		logf("P6: %v", err)
		return nil
	}
	defer mf.close()
	rf, err := newRawFan(ctx, 1)
	if err != nil {
		logf("P6: %v", err)
		return nil
	}
	defer rf.close()
	// A warm-up round, not recorded (see runFanout).
	_, _ = moqChurnRun(ctx, mf, "churn-warm", max(1, n/10))
	_, _ = rawChurnRun(ctx, rf, max(1, n/10))
	var gps, cpu, allocs, pkts [2]sample
	for run := range cfg.runs {
		for i, do := range []func() (measured, error){
			func() (measured, error) { return moqChurnRun(ctx, mf, fmt.Sprintf("churn-%d", run), n) },
			func() (measured, error) { return rawChurnRun(ctx, rf, n) },
		} {
			if skip(i) {
				continue
			}
			m, err := do()
			if err != nil {
				logf("P6 %s run %d: %v", []string{"ours", "raw"}[i], run+1, err)
				continue
			}
			gps[i] = append(gps[i], float64(n)/m.wall.Seconds())
			cpu[i] = append(cpu[i], float64(m.cpu)/float64(time.Microsecond)/float64(n))
			allocs[i] = append(allocs[i], float64(m.allocs)/float64(n))
			pkts[i] = append(pkts[i], float64(m.packets)/float64(n))
			logf("P6 %-4s run %d: %.0f groups/s, %.1f CPU µs/group, %.1f allocs/group, %.2f packets/group", []string{"ours", "raw"}[i], run+1,
				gps[i][len(gps[i])-1], cpu[i][len(cpu[i])-1], allocs[i][len(allocs[i])-1], pkts[i][len(pkts[i])-1])
		}
	}
	return []*line{
		{Row: "P6", Metric: "groups/s", Note: fmt.Sprintf("one uni stream per group, %d-byte frame", churnSize), Ours: gps[0], Raw: gps[1], Target: "≥ 0.9× raw", Check: atLeast((*line).vsRaw, 0.9)},
		{Row: "P6", Metric: "CPU µs/group", Note: "both ends", Ours: cpu[0], Raw: cpu[1]},
		{Row: "P6", Metric: "allocs/group", Note: "both ends", Ours: allocs[0], Raw: allocs[1]},
		{Row: "P6", Metric: "QUIC packets/group", Note: "both ends", Ours: pkts[0], Raw: pkts[1]},
	}
}
