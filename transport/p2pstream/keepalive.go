package p2pstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	msmux "github.com/multiformats/go-multistream"

	"github.com/moqp2p/moqp2p/internal/keepalive"
)

// pingSize is the libp2p ping protocol's payload: the peer echoes it.
const pingSize = 32

// startKeepAlive pings the peer for the session's life with libp2p's ping
// protocol (which every libp2p host serves unless told not to), on one
// stream held open, and ends the session when a ping goes unanswered, and
// nothing arrives on the session's streams, for Config.DeadPeerTimeout. libp2p's own keep-alives (yamux's, QUIC's) take
// tens of seconds, and a relayed connection has none end to end. A peer
// without the ping service is left to them.
func (c *Conn) startKeepAlive() {
	timeout := keepalive.Resolve(c.t.cfg.DeadPeerTimeout)
	if timeout <= 0 {
		return
	}
	c.t.wg.Add(1)
	go func() {
		defer c.t.wg.Done()
		var s network.Stream
		defer func() {
			if s != nil {
				_ = s.Reset()
			}
		}()
		out, in := make([]byte, pingSize), make([]byte, pingSize)
		keepalive.Run(c.ctx, timeout, func(ctx context.Context) error {
			if s == nil {
				var err error
				s, err = c.t.h.NewStream(network.WithAllowLimitedConn(ctx, "moq keep-alive"), c.key.peer, ping.ID)
				if errors.As(err, new(msmux.ErrNotSupported[protocol.ID])) {
					c.log.Debug("peer has no ping service: no keep-alive", "err", err)
					return errors.ErrUnsupported
				}
				if err != nil {
					return err
				}
			}
			if d, ok := ctx.Deadline(); ok {
				_ = s.SetDeadline(d)
			}
			stop := context.AfterFunc(ctx, func() { _ = s.SetDeadline(time.Now()) })
			defer stop()
			_, _ = rand.Read(out)
			if _, err := s.Write(out); err != nil {
				return err
			}
			if _, err := io.ReadFull(s, in); err != nil {
				return err
			}
			if !bytes.Equal(in, out) {
				return errors.New("ping answered with other bytes")
			}
			return nil
		}, c.received.Load, func(err error) {
			c.log.Info("peer unresponsive: closing session", "err", err)
			c.shutdown(fmt.Errorf("%w: %w", ErrConnLost, err), ctlReset)
		})
	}()
}
