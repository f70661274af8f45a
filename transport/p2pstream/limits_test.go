package p2pstream

import (
	"context"
	"errors"
	"io"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/moqp2p/moqp2p/transport"
)

// holdStreams opens n uni streams from d and keeps them all open until a
// has accepted and read the first byte of every one; it returns how many a
// got within the wait.
func holdStreams(t *testing.T, d, a *Conn, n int, wait time.Duration) (accepted int, opened []transport.SendStream) {
	t.Helper()
	var got atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			rs, err := a.AcceptUniStream(ctx)
			if err != nil {
				return
			}
			if _, err := io.ReadFull(rs, make([]byte, 1)); err == nil {
				got.Add(1)
			}
			if got.Load() == int64(n) {
				return
			}
		}
	}()
	for range n {
		octx, ocancel := context.WithTimeout(ctx, 200*time.Millisecond)
		st, err := d.OpenUniStream(octx)
		ocancel()
		if err != nil {
			break
		}
		_, _ = st.Write([]byte{1})
		opened = append(opened, st)
	}
	<-done
	return int(got.Load()), opened
}

// TestManyOpenStreams holds more streams open at once in one session than
// libp2p's default per-protocol allowance (about 150 out, 75 in), with
// Limits applied. QUIC caps it below 256: libp2p grants the peer 256
// concurrent bidirectional QUIC streams per connection, for all protocols.
func TestManyOpenStreams(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		d, a := setup(t, kind)
		n := map[string]int{"tcp": 300, "quic": 250}[kind]
		got, opened := holdStreams(t, d, a, n, 10*time.Second)
		if got != n || len(opened) != n {
			t.Fatalf("opened %d, accepted %d of %d concurrent streams", len(opened), got, n)
		}
		for _, st := range opened {
			_ = st.Close()
		}
		waitStreams(t, d, 0)
	})
}

// TestStockLimits documents why Limits exists: with libp2p's default
// resource manager the receiver refuses streams of one protocol beyond
// 64 + 4·G open at once, and the sender learns it as BoundsExceeded.
func TestStockLimits(t *testing.T) {
	ha, hb := newStockHost(t, "tcp"), newStockHost(t, "tcp")
	connect(t, ha, hb)
	d, a := dialPair(t, newTransport(t, ha), newTransport(t, hb))
	const n = 300
	got, opened := holdStreams(t, d, a, n, time.Second)
	t.Logf("stock limits: %d streams opened, %d accepted", len(opened), got)
	if got >= n {
		t.Fatalf("all %d streams accepted: stock limits are higher than documented", n)
	}
	// The refused ones were reset with libp2p's code, read as BoundsExceeded.
	var refused int
	for _, st := range opened {
		var se *transport.StreamError
		if _, err := st.Write([]byte{2}); errors.As(err, &se) && se.Code == codeBoundsExceeded && se.Remote {
			refused++
		}
	}
	if refused == 0 {
		t.Error("no stream reported BoundsExceeded")
	}
}

func TestLimitsLeavesDefaultsAlone(t *testing.T) {
	before := rcmgr.DefaultLimits.PeerBaseLimit
	cfg := rcmgr.DefaultLimits
	Limits(&cfg, 1000)
	if rcmgr.DefaultLimits.PeerBaseLimit != before || rcmgr.DefaultLimits.ProtocolPeerLimits != nil {
		t.Fatal("Limits changed rcmgr.DefaultLimits")
	}
	conc := cfg.Scale(4<<30, 1024)
	pp := conc.ToPartialLimitConfig().ProtocolPeer[ProtocolLite04]
	if pp.StreamsInbound != 1000 || pp.StreamsOutbound != 1000 {
		t.Errorf("per-peer limit for %s: %+v", ProtocolLite04, pp)
	}
	if peer := conc.ToPartialLimitConfig().PeerDefault; int(peer.StreamsInbound) < 1000 || int64(peer.Memory) < 1000*yamuxStreamMemory {
		t.Errorf("peer limits %+v, want at least 1000 inbound streams and their yamux memory", peer)
	}
}

// TestYamuxMemoryEndsConnection documents why Limits raises the peer's
// memory limit: over yamux each open stream holds 256 KiB of it, and when a
// new stream's reservation fails yamux drops the whole connection (here the
// listener allows 8 MiB, 32 streams), which ends the session with
// ErrConnLost instead of refusing one stream.
func TestYamuxMemoryEndsConnection(t *testing.T) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	Limits(&limits, 0)
	limits.PeerBaseLimit.Memory, limits.PeerLimitIncrease.Memory = 8<<20, 0
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		t.Fatal(err)
	}
	hb := newStockHost(t, "tcp", libp2p.ResourceManager(rm))
	ha := newHost(t, "tcp")
	connect(t, ha, hb)
	d, a := dialPair(t, newTransport(t, ha), newTransport(t, hb))
	for range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		st, err := d.OpenUniStream(ctx)
		cancel()
		if err != nil {
			break
		}
		_, _ = st.Write([]byte{1})
	}
	select {
	case <-a.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session survived: yamux no longer drops the connection on a failed stream reservation")
	}
	if err := context.Cause(a.Context()); !errors.Is(err, ErrConnLost) {
		t.Fatalf("cause %v, want ErrConnLost", err)
	}
}

// ServiceLimits gives a host built without go-libp2p's root package the
// service limits libp2p.New would give it, scaled the same on any machine.
func TestServiceLimitsMatchLibp2p(t *testing.T) {
	ours, theirs := rcmgr.DefaultLimits, rcmgr.DefaultLimits
	ServiceLimits(&ours)
	libp2p.SetDefaultServiceLimits(&theirs)
	if !reflect.DeepEqual(ours, theirs) {
		t.Fatalf("service limits differ from go-libp2p's:\nours   %+v\ntheirs %+v", ours, theirs)
	}
	for _, mem := range []int64{256 << 20, 4 << 30, 64 << 30} {
		if a, b := ours.Scale(mem, 1024), theirs.Scale(mem, 1024); !reflect.DeepEqual(a, b) {
			t.Fatalf("scaled to %d bytes the limits differ", mem)
		}
	}
}
