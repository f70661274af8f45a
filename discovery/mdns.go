package discovery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// DefaultMDNSService is the DNS-SD service name moqp2p nodes announce and
// browse for on the local network. (go-libp2p's own default is "_p2p._udp".)
const DefaultMDNSService = "_moqp2p._udp"

// MDNSConfig configures StartMDNS. Zero values take the defaults.
type MDNSConfig struct {
	// ServiceName (DefaultMDNSService). Only peers announcing the same name
	// are found.
	ServiceName string
	// Found is called, each time in its own goroutine, for every peer that
	// mDNS reports (repeatedly for the same peer, as its announcements
	// repeat). ctx ends when the MDNS is closed. The default connects the
	// host to the peer unless it is connected already, within ConnectTimeout.
	Found func(ctx context.Context, info peer.AddrInfo)
	// ConnectTimeout bounds the default Found's connect (10 s).
	ConnectTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// MDNS announces a host on the local network with mDNS and reports the
// peers that announce the same service (go-libp2p's p2p/discovery/mdns).
type MDNS struct {
	svc    mdns.Service
	cfg    MDNSConfig
	h      host.Host
	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// StartMDNS starts announcing h and browsing for peers. mDNS multicasts on
// every multicast-capable interface and announces the addresses h listens
// on; close it when done.
func StartMDNS(h host.Host, cfg MDNSConfig) (*MDNS, error) {
	if cfg.ServiceName == "" {
		cfg.ServiceName = DefaultMDNSService
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &MDNS{cfg: cfg, h: h}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if m.cfg.Found == nil {
		m.cfg.Found = m.connect
	}
	m.svc = mdns.NewMdnsService(h, cfg.ServiceName, notifee{m})
	if err := m.svc.Start(); err != nil {
		m.cancel()
		_ = m.svc.Close()
		return nil, err
	}
	return m, nil
}

// Close stops announcing and browsing and waits for Found calls in
// progress (whose ctx it cancels). It is idempotent.
func (m *MDNS) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	err := m.svc.Close()
	m.wg.Wait()
	return err
}

// found runs Found for a reported peer unless the MDNS is closed.
func (m *MDNS) found(info peer.AddrInfo) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()
	m.cfg.Logger.Debug("mDNS found a peer", "peer", info.ID, "addrs", info.Addrs)
	m.cfg.Found(m.ctx, info)
}

// connect is the default Found.
func (m *MDNS) connect(ctx context.Context, info peer.AddrInfo) {
	if m.h.Network().Connectedness(info.ID) == network.Connected {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ConnectTimeout)
	defer cancel()
	if err := m.h.Connect(ctx, info); err != nil {
		m.cfg.Logger.Debug("mDNS peer unreachable", "peer", info.ID, "err", err)
	}
}

// notifee adapts MDNS to mdns.Notifee (which go-libp2p calls in a fresh
// goroutine per report).
type notifee struct{ m *MDNS }

func (n notifee) HandlePeerFound(info peer.AddrInfo) { n.m.found(info) }
