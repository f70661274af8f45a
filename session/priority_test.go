package session

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

func TestUrgencyMapping(t *testing.T) {
	for p, want := range map[uint8]int8{255: 0, 200: 1, 128: 3, 1: 6, 0: 6} {
		if got := urgency(p); got != want {
			t.Errorf("urgency(%d) = %d, want %d", p, got, want)
		}
	}
}

// On a congested link the higher-priority subscription's group finishes
// first even though the other one was queued earlier. The publisher's socket
// is shaped to a fixed rate so that the link, not the CPU, is the bottleneck:
// only then does the sender choose what goes next (on raw loopback most data
// is on its way before the second group exists).
func TestPriorityOrdersGroupsOnTheWire(t *testing.T) {
	p := newShapedPair(t, 8<<20) // 8 MB/s
	b := broadcast.New(broadcast.Config{})
	lo, _ := b.CreateTrack(broadcast.Track{Name: "lo"})
	hi, _ := b.CreateTrack(broadcast.Track{Name: "hi"})
	_, _ = p.origin.Publish("cam", b.Consume())
	loC, err := p.sub.Subscribe(testCtx(t), "cam", "lo", SubscribeOptions{Priority: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer loC.Close()
	hiC, err := p.sub.Subscribe(testCtx(t), "cam", "hi", SubscribeOptions{Priority: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer hiC.Close()

	// lo's drainer says when half of lo has arrived; only then does hi exist.
	// From there, round-robin would finish lo's remaining half first, and
	// strict urgency finishes hi's whole group first.
	const frames = 16 // of 64 KiB: 1 MiB per group, 128 ms at 8 MB/s
	halfway := make(chan struct{})
	finished := make(chan string, 2)
	drain := func(name string, c *broadcast.TrackConsumer) {
		g, err := c.RecvGroup(testCtx(t))
		if err != nil {
			t.Error(err)
			finished <- name + " failed"
			return
		}
		for n := 1; ; n++ {
			if _, err := g.ReadFrame(testCtx(t)); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Error(err)
				}
				finished <- name
				return
			}
			if name == "lo" && n == frames/2 {
				close(halfway)
			}
		}
	}
	go drain("lo", loC)
	go drain("hi", hiC)

	payload := make([]byte, 64<<10)
	write := func(tp *broadcast.TrackProducer) {
		g, _ := tp.AppendGroup()
		for range frames {
			_ = g.WriteFrame(payload)
		}
		_ = g.Finish()
	}
	write(lo)
	select {
	case <-halfway:
	case <-time.After(5 * time.Second):
		t.Fatal("lo never got halfway")
	}
	write(hi)
	first, second := <-finished, <-finished
	if first != "hi" || second != "lo" {
		t.Fatalf("completion order %s, %s; want hi before lo", first, second)
	}
}

// A group older than the subscriber's max latency is reset with code Old once
// a newer group starts, rather than being queued behind it forever; frames
// already delivered stay readable.
func TestMaxLatencyResetsStaleGroup(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "v"})
		_, _ = p.origin.Publish("cam", b.Consume())
		tc, err := p.sub.Subscribe(testCtx(t), "cam", "v", SubscribeOptions{MaxLatency: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		old, _ := tp.AppendGroup()
		_ = old.WriteFrame([]byte("partial")) // never finished: stuck in flight
		g0, err := tc.RecvGroup(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if f, err := g0.ReadFrame(testCtx(t)); err != nil || string(f) != "partial" {
			t.Fatalf("first frame %q, %v", f, err)
		}
		time.Sleep(100 * time.Millisecond) // older than the 50 ms budget
		_ = tp.WriteFrame([]byte("fresh"))
		if _, err := g0.ReadFrame(testCtx(t)); broadcast.CodeOf(err) != broadcast.CodeOld {
			t.Fatalf("stale group: %v, want code Old (2)", err)
		}
		g1, err := tc.RecvGroup(testCtx(t))
		if err != nil || g1.Sequence() != 1 {
			t.Fatalf("fresh group %v, %v", g1, err)
		}
	})
}

// newShapedPair is newPair with the publisher's socket limited to rate bytes
// per second and flow-control windows too large to matter.
func newShapedPair(t *testing.T, rate int) *pair {
	qc := rawquic.Config()
	qc.InitialStreamReceiveWindow, qc.MaxStreamReceiveWindow = 16<<20, 16<<20
	qc.InitialConnectionReceiveWindow, qc.MaxConnectionReceiveWindow = 64<<20, 64<<20
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := rawquic.NewEndpointConn(&shapedConn{PacketConn: uc, rate: rate}, qc)
	if err := srv.Listen(&tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{"moq-lite-04"}}); err != nil {
		t.Fatal(err)
	}
	cli, err := rawquic.NewEndpoint("127.0.0.1:0", qc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close(); _ = srv.Close() })
	accepted := make(chan transport.Conn, 1)
	go func() {
		c, _ := srv.Accept(testCtx(t))
		accepted <- c
	}()
	tc := cert.PinnedConfig(cert.Fingerprint(crt))
	tc.NextProtos = []string{"moq-lite-04"}
	cc, err := cli.Dial(testCtx(t), srv.Addr().String(), tc)
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	origin := broadcast.NewOrigin(0)
	pub, err := New(sc, Config{Publish: origin, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := New(cc, Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Close(broadcast.CodeCancel, "")
		_ = pub.Close(broadcast.CodeCancel, "")
	})
	return &pair{origin: origin, pub: pub, sub: sub}
}

// shapedConn sends at most rate bytes per second. It embeds only the
// net.PacketConn interface, so quic-go cannot bypass WriteTo with batched
// sends.
type shapedConn struct {
	net.PacketConn
	rate int
	mu   sync.Mutex
	next time.Time
}

func (c *shapedConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	now := time.Now()
	if c.next.Before(now) {
		c.next = now
	}
	c.next = c.next.Add(time.Duration(len(p)) * time.Second / time.Duration(c.rate))
	wait := c.next.Sub(now)
	c.mu.Unlock()
	time.Sleep(wait)
	return c.PacketConn.WriteTo(p, addr)
}

// A subscriber's ordered flag decides which of two groups in flight a
// congested link carries first: by default the newer one, with ordered the
// older one (moq-lite's "ordered": oldest group first). As in
// TestPriorityOrdersGroupsOnTheWire, the second group starts once half of
// the first has arrived.
func TestOrderedFlagOrdersGroups(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		name := map[bool]string{false: "newest first", true: "ordered"}[ordered]
		t.Run(name, func(t *testing.T) {
			p := newShapedPair(t, 8<<20) // 8 MB/s
			b := broadcast.New(broadcast.Config{})
			tp, _ := b.CreateTrack(broadcast.Track{Name: "v"})
			_, _ = p.origin.Publish("cam", b.Consume())
			tc, err := p.sub.Subscribe(testCtx(t), "cam", "v", SubscribeOptions{Ordered: ordered})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()

			const frames = 16 // of 64 KiB: 1 MiB per group, 128 ms at 8 MB/s
			halfway := make(chan struct{})
			finished := make(chan uint64, 2)
			drain := func(g *broadcast.GroupConsumer) {
				for n := 1; ; n++ {
					if _, err := g.ReadFrame(testCtx(t)); err != nil {
						if !errors.Is(err, io.EOF) {
							t.Error(err)
						}
						finished <- g.Sequence()
						return
					}
					if g.Sequence() == 0 && n == frames/2 {
						close(halfway)
					}
				}
			}
			go func() {
				for range 2 {
					g, err := tc.RecvGroup(testCtx(t))
					if err != nil {
						t.Error(err)
						finished <- 99
						return
					}
					go drain(g)
				}
			}()
			payload := make([]byte, 64<<10)
			write := func() {
				g, _ := tp.AppendGroup()
				for range frames {
					_ = g.WriteFrame(payload)
				}
				_ = g.Finish()
			}
			write()
			select {
			case <-halfway:
			case <-time.After(5 * time.Second):
				t.Fatal("group 0 never got halfway")
			}
			write()
			first, second := <-finished, <-finished
			want := []uint64{1, 0}
			if ordered {
				want = []uint64{0, 1}
			}
			if first != want[0] || second != want[1] {
				t.Fatalf("completion order %d, %d; want %d, %d", first, second, want[0], want[1])
			}
		})
	}
}
