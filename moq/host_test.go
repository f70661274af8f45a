package moq

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/fx/fxevent"

	"github.com/moqp2p/moqp2p/transport/p2pstream"
)

// A NewHost host listens where it is told, on QUIC and TCP, and its
// resource manager lets a peer hold p2pstream's stream allowance on the moq
// protocols (libp2p's default allows about 75 inbound).
func TestNewHost(t *testing.T) {
	h, err := NewHost(HostConfig{
		ListenAddrs:    []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"), ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		StreamsPerPeer: 300,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var quic, tcp bool
	for _, a := range h.Addrs() {
		_, errQ := a.ValueForProtocol(ma.P_QUIC_V1)
		_, errT := a.ValueForProtocol(ma.P_TCP)
		quic, tcp = quic || errQ == nil, tcp || errT == nil
	}
	if !quic || !tcp {
		t.Fatalf("addresses %v, want QUIC and TCP", h.Addrs())
	}
	rm, ok := h.Network().ResourceManager().(interface {
		ViewProtocol(protocol.ID, func(network.ProtocolScope) error) error
	})
	if !ok {
		t.Fatalf("resource manager %T", h.Network().ResourceManager())
	}
	for _, p := range p2pstream.Protocols {
		_ = rm.ViewProtocol(p, func(s network.ProtocolScope) error {
			if in := s.(rcmgr.ResourceScopeLimiter).Limit().GetStreamLimit(network.DirInbound); in < 8*300 {
				t.Errorf("%s: %d inbound streams for all peers, want at least 8 × 300", p, in)
			}
			return nil
		})
	}
}

// A host that cannot listen is not built, and leaves nothing running (the
// package's goleak check): NewHost closes the resource manager, peerstore
// and connection manager it made.
func TestNewHostListenFails(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", taken.Addr().(*net.TCPAddr).Port))
	if h, err := NewHost(HostConfig{ListenAddrs: []ma.Multiaddr{addr}}); err == nil {
		_ = h.Close()
		t.Fatalf("a host listening on a taken port %s was built", addr)
	}
}

// The fx events of a failed start, whose error NewHost returns, are not
// logged again; those of a failure nothing returns (a stop hook's) are.
func TestFxLoggerQuietStart(t *testing.T) {
	var got fxEvents
	q := startQuiet{&got}
	boom := errors.New("boom")
	stopFailed, started := &fxevent.OnStopExecuted{Err: boom}, &fxevent.Started{}
	for _, e := range []fxevent.Event{
		&fxevent.OnStartExecuted{Err: boom}, &fxevent.RollingBack{StartErr: boom}, &fxevent.Started{Err: boom},
		stopFailed, started,
	} {
		q.LogEvent(e)
	}
	if want := (fxEvents{stopFailed, started}); !reflect.DeepEqual(got, want) {
		t.Fatalf("logged %v, want %v", got, want)
	}
}

type fxEvents []fxevent.Event

func (l *fxEvents) LogEvent(e fxevent.Event) { *l = append(*l, e) }
