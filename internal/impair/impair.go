// Package impair wraps a net.PacketConn so that what it sends is delayed
// and, optionally, dropped: a deterministic impaired link for tests that
// must not need root (the kernel's netem, network namespaces).
package impair

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Config says how a Conn impairs what it sends.
type Config struct {
	// Delay is added to every packet sent (one way). Packets leave in the
	// order they were written.
	Delay time.Duration
	// DropEvery drops every n-th packet sent (0: none), deterministically.
	DropEvery int
	// Queue bounds the packets waiting out their delay; one more is dropped
	// (a full router queue). Default 4096.
	Queue int
}

// Conn is a net.PacketConn whose WriteTo delays (and drops) packets as its
// Config says; reads are untouched. Impair both ends of a link for a
// symmetric one.
type Conn struct {
	net.PacketConn
	cfg Config

	mu      sync.Mutex
	sent    int
	dropped int
	closed  bool

	q      chan packet
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

type packet struct {
	due  time.Time
	b    []byte
	addr net.Addr
}

// New wraps pc. Close the Conn (which closes pc) to stop its goroutine.
func New(pc net.PacketConn, cfg Config) *Conn {
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	c := &Conn{PacketConn: pc, cfg: cfg, q: make(chan packet, cfg.Queue), done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	return c
}

// ErrClosed is returned by WriteTo after Close.
var ErrClosed = errors.New("impair: closed")

// WriteTo queues p for sending after the delay; it never blocks. A packet
// dropped (DropEvery, a full queue) is reported as sent, as a lossy link
// would.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	c.sent++
	drop := c.cfg.DropEvery > 0 && c.sent%c.cfg.DropEvery == 0
	if drop {
		c.dropped++
	}
	c.mu.Unlock()
	if drop {
		return len(p), nil
	}
	select {
	case c.q <- packet{due: time.Now().Add(c.cfg.Delay), b: append([]byte(nil), p...), addr: addr}:
	default:
		c.mu.Lock()
		c.dropped++
		c.mu.Unlock()
	}
	return len(p), nil
}

// Dropped is how many packets were dropped so far.
func (c *Conn) Dropped() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

func (c *Conn) run() {
	defer close(c.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var p packet
		select {
		case p = <-c.q:
		case <-c.ctx.Done():
			return
		}
		if d := time.Until(p.due); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				return
			}
		}
		_, _ = c.PacketConn.WriteTo(p.b, p.addr)
	}
}

// Close stops sending (packets still delayed are dropped) and closes the
// wrapped connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	err := c.PacketConn.Close()
	<-c.done
	return err
}

// SetReadBuffer sets the wrapped connection's receive buffer, if it has
// one (quic-go asks for a large one).
func (c *Conn) SetReadBuffer(n int) error {
	if b, ok := c.PacketConn.(interface{ SetReadBuffer(int) error }); ok {
		return b.SetReadBuffer(n)
	}
	return errors.ErrUnsupported
}

// SetWriteBuffer sets the wrapped connection's send buffer, if it has one.
func (c *Conn) SetWriteBuffer(n int) error {
	if b, ok := c.PacketConn.(interface{ SetWriteBuffer(int) error }); ok {
		return b.SetWriteBuffer(n)
	}
	return errors.ErrUnsupported
}
