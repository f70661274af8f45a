package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"

	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
)

// statsProtocol is moq stats over libp2p, served by a node started with
// --serve-stats: the client opens a stream, sends nothing and closes its
// side; the node answers with its stats document (server.NodeStats, JSON)
// and closes the stream. One answer per stream.
const statsProtocol protocol.ID = "/moqp2p/stats/1"

// The bounds of the stats protocol's server: what a peer that asks for
// stats can make the node do.
const (
	// statsMaxRequest is what a client may send before closing its side
	// (nothing is defined yet); more resets the stream.
	statsMaxRequest = 256
	// statsRequestTimeout is how long the node waits for the client's side
	// to close, and statsWriteTimeout for the answer to be taken.
	statsRequestTimeout = 5 * time.Second
	statsWriteTimeout   = 10 * time.Second
	// statsMaxResponse caps the answer; a larger document is not sent.
	statsMaxResponse = 4 << 20
	// statsMaxBusy bounds the requests served at once, from every peer;
	// a peer has one at a time, and one per statsPeerInterval.
	statsMaxBusy      = 8
	statsPeerInterval = 100 * time.Millisecond
)

// statsServer answers statsProtocol streams with m's stats.
type statsServer struct {
	m   *moq.Moq
	log *slog.Logger

	mu   sync.Mutex
	busy map[peer.ID]bool      // a request of the peer is being served
	last map[peer.ID]time.Time // when the peer's last request began
}

// serveStats makes m's host answer statsProtocol (--serve-stats).
func serveStats(m *moq.Moq, log *slog.Logger) {
	ss := &statsServer{m: m, log: log, busy: map[peer.ID]bool{}, last: map[peer.ID]time.Time{}}
	m.Host().SetStreamHandler(statsProtocol, ss.handle)
}

// acquire admits a request of p, or refuses it (false) when p has one
// being served or had one within statsPeerInterval, or statsMaxBusy are.
func (ss *statsServer) acquire(p peer.ID, now time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.busy[p] || len(ss.busy) >= statsMaxBusy || now.Sub(ss.last[p]) < statsPeerInterval {
		return false
	}
	if len(ss.last) >= 1024 { // forget the peers that may ask again anyway
		for q, at := range ss.last {
			if now.Sub(at) >= statsPeerInterval {
				delete(ss.last, q)
			}
		}
	}
	ss.busy[p], ss.last[p] = true, now
	return true
}

func (ss *statsServer) release(p peer.ID) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.busy, p)
}

func (ss *statsServer) handle(s network.Stream) {
	p := s.Conn().RemotePeer()
	if !ss.acquire(p, time.Now()) {
		ss.log.Debug("stats request refused: too many", "peer", p)
		_ = s.Reset()
		return
	}
	defer ss.release(p)
	// The request: nothing, then the client's side closes, in time.
	_ = s.SetReadDeadline(time.Now().Add(statsRequestTimeout))
	n, err := io.Copy(io.Discard, io.LimitReader(s, statsMaxRequest+1))
	if err != nil || n > statsMaxRequest {
		ss.log.Debug("stats request refused", "peer", p, "bytes", n, "err", err)
		_ = s.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), statsWriteTimeout)
	defer cancel()
	body, err := json.Marshal(server.Stats(ctx, ss.m))
	if err != nil || len(body) > statsMaxResponse {
		ss.log.Warn("stats not sent: the document is too large", "bytes", len(body), "err", err)
		_ = s.Reset()
		return
	}
	_ = s.SetWriteDeadline(time.Now().Add(statsWriteTimeout))
	if _, err := s.Write(body); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// fetchStatsP2P asks the node at addr (a multiaddr with /p2p/ID) for its
// stats over statsProtocol, from a host of its own that only dials.
func fetchStatsP2P(ctx context.Context, addr ma.Multiaddr) ([]byte, error) {
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return nil, err
	}
	h, err := moq.NewHost(moq.HostConfig{ListenAddrs: []ma.Multiaddr{}, UserAgent: "moqp2p-cli"})
	if err != nil {
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	defer h.Close()
	if err := h.Connect(ctx, *info); err != nil {
		return nil, err
	}
	s, err := h.NewStream(ctx, info.ID, statsProtocol)
	if errors.As(err, new(msmux.ErrNotSupported[protocol.ID])) {
		return nil, fmt.Errorf("%s does not serve its stats over libp2p (start it with --serve-stats)", info.ID)
	}
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetReadDeadline(d)
	}
	body, err := io.ReadAll(io.LimitReader(s, statsMaxResponse+1))
	switch {
	case errors.As(err, new(msmux.ErrNotSupported[protocol.ID])): // negotiated lazily
		return nil, fmt.Errorf("%s does not serve its stats over libp2p (start it with --serve-stats)", info.ID)
	case errors.Is(err, network.ErrReset):
		return nil, fmt.Errorf("%s refused the request (too many at once, or too often)", info.ID)
	case err != nil:
		return nil, err
	case len(body) > statsMaxResponse:
		return nil, fmt.Errorf("%s answered over %d bytes", info.ID, statsMaxResponse)
	}
	return body, nil
}
