package moq

import (
	"crypto/rand"
	"io"
	"log/slog"

	"github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	basicconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	p2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/moqp2p/moqp2p/transport/p2pstream"
)

// HostOptions returns the libp2p options a host needs to run moqp2p well:
// q's socket sharing (so moq-lite QUIC connections use the host's UDP port;
// pass nil to run over libp2p streams only) and a resource manager whose
// stream limits allow one stream per group on the moq protocols. The host
// must listen for QUIC on an unspecified address (/ip4/0.0.0.0/udp/P/quic-v1)
// for q to share its socket. Pass the result to libp2p.New with your own
// options (libp2p.Option is config.Option), then give q to New with
// WithQUIC. NewHost builds such a host without go-libp2p's root package.
func HostOptions(q *QUICTransport) []config.Option {
	opts := []config.Option{p2pstream.ResourceManager(0)}
	if q != nil {
		opts = append(opts, q.Option())
	}
	return opts
}

// HostConfig describes the libp2p host NewHost builds. The zero value is a
// host with a fresh identity listening for QUIC on a free port of 0.0.0.0.
type HostConfig struct {
	// Key is the host's identity (its peer ID). Nil means a fresh Ed25519
	// key.
	Key crypto.PrivKey
	// ListenAddrs are the multiaddrs to listen on: /ipX/IP/udp/P/quic-v1
	// for QUIC, /ipX/IP/tcp/P for TCP. Nil means
	// /ip4/0.0.0.0/udp/0/quic-v1. With QUIC set, at least one QUIC address
	// is needed (ErrNoQUICListen: raw QUIC dials leave from that socket),
	// and one on a specific IP is bound on the unspecified IP of its family
	// (QUIC shares only such a socket) while the host advertises only the
	// IP asked for; when every QUIC address asked for is a loopback one
	// (/ip4/127.0.0.1/udp/0/quic-v1 for a test), QUIC connections from
	// other addresses are refused, as a socket bound to loopback would.
	// Without QUIC an empty non-nil slice listens on nothing (a host that
	// only dials).
	ListenAddrs []ma.Multiaddr
	// QUIC is the transport that runs moq-lite on the host's UDP sockets;
	// give the same one to New with WithQUIC. Nil: sessions run over libp2p
	// streams only.
	QUIC *QUICTransport
	// Relay lets the host reach peers through circuit-relay v2 relays
	// (/p2p-circuit addresses); sessions on relayed connections run over
	// libp2p streams.
	Relay bool
	// AddrsFactory rewrites the addresses the host advertises; nil
	// advertises what it listens on.
	AddrsFactory func([]ma.Multiaddr) []ma.Multiaddr
	// ConnectionGater vets dials and accepted connections; nil allows all.
	ConnectionGater connmgr.ConnectionGater
	// StreamsPerPeer is the resource manager's per-peer stream allowance on
	// the moq protocols (p2pstream.Limits); zero means
	// p2pstream.DefaultStreamsPerPeer.
	StreamsPerPeer int
	// UserAgent is what identify tells peers; empty means "moqp2p".
	UserAgent string
	// NAT turns on NAT traversal (AutoNAT v2, AutoRelay, DCUtR hole
	// punching) and the circuit relay service; see NATConfig. Any of it
	// implies Relay.
	NAT NATConfig
	// Options set anything else a libp2p config holds; they are applied
	// after the fields above, and a resource manager, peerstore or
	// connection manager they set replaces NewHost's. (libp2p's own option
	// functions are config.Options too, but importing go-libp2p's root
	// package for them links every transport it has.)
	Options []config.Option
}

// NewHost builds a libp2p host with only what moqp2p uses: QUIC (and TCP,
// for listen addresses or peers that have only TCP, secured by TLS or
// Noise and multiplexed by yamux), identify and ping, a peerstore, a
// connection manager with libp2p's default watermarks (160 to 192
// connections), and the resource manager of HostOptions. libp2p.New links
// WebTransport, WebSocket and WebRTC besides (and with them
// webtransport-go, quic-go's HTTP/3 and pion); a program that builds its
// host here does not. Close the host when done (after the node's Shutdown).
func NewHost(cfg HostConfig) (host.Host, error) {
	c := config.Config{
		PeerKey:         cfg.Key,
		ListenAddrs:     cfg.ListenAddrs,
		AddrsFactory:    cfg.AddrsFactory,
		ConnectionGater: cfg.ConnectionGater,
		UserAgent:       cfg.UserAgent,
		Muxers:          []tptu.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}},
		SecurityTransports: []config.Security{
			{ID: p2ptls.ID, Constructor: p2ptls.New},
			{ID: noise.ID, Constructor: noise.New},
		},
		Transports: []fx.Option{
			transportOption(libp2pquic.NewTransport),
			transportOption(tcp.NewTCPTransport),
		},
		Relay:       cfg.Relay,
		RelayCustom: true,
		// Metrics need a Prometheus registerer; a host that wants them
		// passes one (and DisableMetrics false) in Options.
		DisableMetrics: true,
		// Stop dialing a family that keeps failing (no UDP, no IPv6) as
		// libp2p.New does: after 100 dials with fewer than 5 successes.
		UDPBlackHoleSuccessCounter:  &swarm.BlackHoleSuccessCounter{N: 100, MinSuccesses: 5, Name: "UDP"},
		IPv6BlackHoleSuccessCounter: &swarm.BlackHoleSuccessCounter{N: 100, MinSuccesses: 5, Name: "IPv6"},
	}
	if c.PeerKey == nil {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		c.PeerKey = k
	}
	if c.ListenAddrs == nil {
		c.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/0.0.0.0/udp/0/quic-v1")}
	}
	if c.UserAgent == "" {
		c.UserAgent = "moqp2p"
	}
	if cfg.QUIC != nil {
		plan, err := planQUICListen(c.ListenAddrs)
		if err != nil {
			return nil, err
		}
		c.ListenAddrs = plan.bind
		if len(plan.widened) > 0 {
			user := c.AddrsFactory
			c.AddrsFactory = func(as []ma.Multiaddr) []ma.Multiaddr {
				if as = plan.advertise(as); user != nil {
					as = user(as)
				}
				return as
			}
		}
		if plan.loopback {
			c.ConnectionGater = loopbackQUICGate{inner: c.ConnectionGater}
		}
	}
	punch := applyNAT(&c, cfg.NAT)
	// Options first, then what they left unset, as libp2p.New's defaults
	// come after its options.
	if err := c.Apply(cfg.Options...); err != nil {
		return nil, err
	}
	// What this function makes, it closes if the host is never built.
	var made []io.Closer
	fail := func(err error) (host.Host, error) {
		for _, m := range made {
			_ = m.Close()
		}
		return nil, err
	}
	if c.ResourceManager == nil {
		if err := c.Apply(p2pstream.ResourceManager(cfg.StreamsPerPeer)); err != nil {
			return fail(err)
		}
		made = append(made, c.ResourceManager)
	}
	if c.Peerstore == nil {
		ps, err := pstoremem.NewPeerstore()
		if err != nil {
			return fail(err)
		}
		c.Peerstore = ps
		made = append(made, ps)
	}
	if c.ConnManager == nil {
		cm, err := basicconnmgr.NewConnManager(160, 192)
		if err != nil {
			return fail(err)
		}
		c.ConnManager = cm
		made = append(made, cm)
	}
	if cfg.QUIC != nil {
		if err := c.Apply(cfg.QUIC.Option()); err != nil {
			return fail(err)
		}
	}
	// A host whose listening fails is not built, but its swarm (made
	// before it listens) is left running: keep hold of it to close it.
	var sw *swarm.Swarm
	c.UserFxOptions = append(c.UserFxOptions, fx.Invoke(func(s *swarm.Swarm) { sw = s }), fx.WithLogger(newFxLogger))
	h, err := c.NewNode()
	if err != nil {
		if sw != nil {
			_ = sw.Close()
		}
		return fail(err)
	}
	if punch != nil {
		if err := punch.attach(h); err != nil {
			_ = h.Close()
			return nil, err
		}
	}
	return h, nil
}

// transportOption supplies a libp2p transport constructor to the host's
// dependency injection, whose arguments (upgrader, key, resource manager,
// QUIC connection manager ...) the host provides.
func transportOption(constructor any) fx.Option {
	return fx.Provide(fx.Annotate(constructor,
		fx.As(new(transport.Transport)),
		fx.ResultTags(`group:"transport"`)))
}

// startQuiet is the fx event logger libp2p gives a host (its "p2p-config"
// logger, events at debug level), less the errors of a failed start: NewHost
// returns that error, which libp2p would log three times over at error
// level (a listen address taken, say). Errors after the start (a stop hook
// failing on Close, which nothing returns) are still logged.
type startQuiet struct{ fxevent.Logger }

func newFxLogger() fxevent.Logger {
	l := &fxevent.SlogLogger{Logger: gologshim.Logger("p2p-config").With("system", "fx")}
	l.UseLogLevel(slog.LevelDebug)
	return startQuiet{l}
}

// LogEvent implements fxevent.Logger.
func (q startQuiet) LogEvent(e fxevent.Event) {
	switch e := e.(type) {
	case *fxevent.OnStartExecuted:
		if e.Err != nil {
			return
		}
	case *fxevent.RollingBack:
		return
	case *fxevent.Started:
		if e.Err != nil {
			return
		}
	}
	q.Logger.LogEvent(e)
}
