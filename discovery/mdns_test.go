package discovery_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// mdnsOnLoopback decides where the mDNS test runs. mDNS multicasts on every
// multicast-capable interface and tests send traffic on loopback only, so:
// in a private network namespace whose only interface is lo with multicast
// (where the kernel lets us make one; the host's configuration is not
// touched); else here, if lo has multicast and is the only interface that
// does; else the test is skipped, saying why. It returns whether to run the
// test body in this process.
func mdnsOnLoopback(t *testing.T) bool {
	child, err := netns.Private(t)
	if child || err == nil {
		if child {
			requireLoopbackMulticast(t)
		}
		return child
	}
	lo, lerr := loopback()
	if lerr != nil || lo.Flags&net.FlagMulticast == 0 {
		netns.Unavailable(t, "mDNS test: the kernel has no multicast on lo (%v), and no private network namespace could be made to enable it there: %v", flagsOrErr(lo, lerr), err)
	}
	if others := otherMulticastInterfaces(); len(others) > 0 {
		netns.Unavailable(t, "mDNS test: no private network namespace could be made (%v), and here mDNS would also multicast on %v, off loopback", err, others)
	}
	requireLoopbackMulticast(t)
	return true
}

func loopback() (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			return &i, nil
		}
	}
	return nil, fmt.Errorf("no loopback interface")
}

func flagsOrErr(i *net.Interface, err error) string {
	if err != nil {
		return err.Error()
	}
	return "flags " + i.Flags.String()
}

func otherMulticastInterfaces() []string {
	ifs, _ := net.Interfaces()
	var out []string
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 && i.Flags&net.FlagUp != 0 && i.Flags&net.FlagMulticast != 0 {
			out = append(out, i.Name)
		}
	}
	return out
}

// requireLoopbackMulticast skips, saying so, unless lo has multicast and
// accepts a member of the mDNS group.
func requireLoopbackMulticast(t *testing.T) {
	lo, err := loopback()
	if err != nil || lo.Flags&net.FlagMulticast == 0 || lo.Flags&net.FlagUp == 0 {
		netns.Unavailable(t, "mDNS test: the kernel has no multicast on lo (%s)", flagsOrErr(lo, err))
	}
	c, err := net.ListenMulticastUDP("udp4", lo, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
	if err != nil {
		netns.Unavailable(t, "mDNS test: the kernel has no multicast on lo: joining 224.0.0.251 on %s failed: %v", lo.Name, err)
	}
	_ = c.Close()
}

// Peers find each other on the local network with mDNS, and a
// subscriber reaches a broadcast by name with no address, no DHT and no
// Connect.
func TestMDNS(t *testing.T) {
	if !mdnsOnLoopback(t) {
		return
	}
	service := fmt.Sprintf("_moqtest%d._udp", time.Now().UnixNano()%1e6)

	t.Run("Helper", func(t *testing.T) {
		a, b := newHost(t), newHost(t)
		start := time.Now()
		for _, h := range []host.Host{a, b} {
			m, err := discovery.StartMDNS(h, discovery.MDNSConfig{ServiceName: service, Logger: testutil.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
		}
		testutil.Eventually(t, "the peers to connect", func() bool {
			return a.Network().Connectedness(b.ID()) == network.Connected
		})
		t.Logf("mDNS: peers connected %v after starting", time.Since(start))
	})

	t.Run("MoqSubscribeByName", func(t *testing.T) {
		pub, sub := newMoq(t, moq.WithMDNS(service)), newMoq(t, moq.WithMDNS(service))
		b := broadcast.New(broadcast.Config{})
		track, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		if _, err := pub.Publish(testCtx(t), "lan/cam", b.Consume()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ctx.Err() == nil; i++ {
				_ = track.WriteFrame(fmt.Appendf(nil, "frame %d", i))
				time.Sleep(5 * time.Millisecond)
			}
		}()
		defer func() { cancel(); <-done }()

		start := time.Now()
		tc, err := sub.Subscribe(testCtx(t), "lan/cam", "video")
		if err != nil {
			t.Fatalf("subscribe by name over mDNS: %v", err)
		}
		defer tc.Close()
		g, err := tc.NextGroup(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		f, err := g.ReadFrame(testCtx(t))
		if err != nil || !strings.HasPrefix(string(f), "frame ") {
			t.Fatalf("frame %q, %v", f, err)
		}
		t.Logf("mDNS: subscribe by name → first frame in %v", time.Since(start))
	})
}

// newHost is a QUIC host listening on loopback.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// newMoq is a moq node on a QUIC host whose socket it shares.
func newMoq(t *testing.T, opts ...moq.Option) *moq.Moq {
	t.Helper()
	q := p2pquic.New(p2pquic.Config{Logger: testutil.Logger()})
	h, err := libp2p.New(append(moq.HostOptions(q), libp2p.ListenAddrStrings("/ip4/0.0.0.0/udp/0/quic-v1"), libp2p.DisableMetrics())...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := moq.New(h, append([]moq.Option{moq.WithQUIC(q), moq.WithLogger(testutil.Logger()), moq.WithShutdownGrace(time.Second)}, opts...)...)
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Shutdown(context.Background())
		_ = h.Close()
	})
	return m
}
