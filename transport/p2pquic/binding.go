// Binding to a libp2p host: the host option through which the host hands
// this transport its ConnManager, identity, resource manager and gater.

package p2pquic

import (
	"context"
	"errors"
	"net"

	"github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	p2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
	"golang.org/x/time/rate"
)

// binding is what the transport takes from its host when libp2p constructs
// the ConnManager. It never changes afterwards.
type binding struct {
	cm      *quicreuse.ConnManager
	rcmgr   network.ResourceManager
	gater   connmgr.ConnectionGater // may be nil
	id      *p2ptls.Identity
	self    peer.ID
	sockets []*socket
}

// Option returns the libp2p option that binds t to the host being built: it
// supplies the host's quicreuse.ConnManager (the host never exposes its own)
// and lends the host UDP sockets whose listeners grant moq-lite's stream
// limits. Pass it to exactly one host (libp2p.New takes it too: its Option
// is config.Option); no other QUICReuse option may be given with it.
func (t *Transport) Option() config.Option {
	return func(cfg *config.Config) error {
		// The constructor needs the final listen addresses and connection
		// gater, which later options may still change; the host runs it on
		// this same Config after applying every option, so it reads them
		// then. The host's dependency injection (fx) supplies its arguments.
		cfg.QUICReuse = append(cfg.QUICReuse, fx.Provide(
			func(srk quic.StatelessResetKey, tok quic.TokenGeneratorKey, rm network.ResourceManager,
				priv crypto.PrivKey, lc fx.Lifecycle) (*quicreuse.ConnManager, error) {
				return t.bind(cfg, srk, tok, rm, priv, lc)
			}))
		return nil
	}
}

// bind builds the ConnManager the way libp2p's default constructor does (the
// resource manager opens a scope for each inbound connection, and decides
// when to verify source addresses) and lends it a socket for each
// unspecified QUIC listen address.
func (t *Transport) bind(cfg *config.Config, srk quic.StatelessResetKey, tok quic.TokenGeneratorKey,
	rm network.ResourceManager, priv crypto.PrivKey, lc fx.Lifecycle) (*quicreuse.ConnManager, error) {
	if cfg == nil {
		return nil, errors.New("p2pquic: Option's constructor ran without its config")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, ErrClosed
	case t.b != nil:
		return nil, errors.New("p2pquic: a Transport binds to one host; its Option was used twice")
	}
	if rm == nil {
		rm = &network.NullResourceManager{}
	}
	id, err := p2ptls.NewIdentity(priv)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	connCtx := t.connContext(rm)
	cm, err := quicreuse.NewConnManager(srk, tok,
		quicreuse.ConnContext(connCtx),
		quicreuse.VerifySourceAddress(rm.VerifySourceAddress))
	if err != nil {
		return nil, err
	}
	b := &binding{cm: cm, rcmgr: rm, gater: cfg.ConnectionGater, id: id, self: self}
	// The ConnManager rate-limits its own VerifySourceAddress (verify every
	// address once more than 1000 connections a second arrive); our sockets
	// bypass that wrapper, so they get the same policy here.
	limiter := rate.NewLimiter(1000, 1000)
	verify := func(addr net.Addr) bool { return !limiter.Allow() || rm.VerifySourceAddress(addr) }
	for _, l := range lendable(cfg.ListenAddrs) {
		s, err := t.lend(cm, l.netw, l.port, &srk, &tok, connCtx, verify)
		if err != nil {
			closeSockets(b.sockets)
			_ = cm.Close()
			return nil, err
		}
		b.sockets = append(b.sockets, s)
	}
	// Appended before the swarm (which needs the ConnManager) adds its hooks,
	// so it runs after the swarm has stopped.
	lc.Append(fx.Hook{OnStop: func(context.Context) error { return t.hostStopped(b) }})
	t.b = b
	return cm, nil
}
