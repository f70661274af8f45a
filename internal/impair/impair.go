// Package impair wraps a net.PacketConn so that what it sends is delayed
// and, optionally, dropped or reordered: a deterministic impaired link for
// tests that must not need root (the kernel's netem, network namespaces).
package impair

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Config says how a Conn impairs what it sends.
type Config struct {
	// Delay is added to every packet sent (one way). Packets leave in the
	// order they were written.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [-Jitter, +Jitter]
	// (never below zero in total). Packets still leave in the order they
	// were written, so a packet may wait behind an earlier, later-due one.
	Jitter time.Duration
	// DropEvery drops every n-th packet sent (0: none), deterministically.
	DropEvery int
	// Loss drops each packet with this probability (0 to 1; 1 is a
	// partition), drawn from a generator seeded with Seed, so a run is
	// repeatable for a given sequence of writes.
	Loss float64
	// Reorder holds each packet back with this probability (0 to 1, drawn
	// from the generator seeded with Seed, so the same packets on every
	// run), by ReorderDelay beyond its delay: the packets written after it
	// overtake it. A dropped packet is not held.
	Reorder float64
	// ReorderDelay is how long a reordered packet is held back beyond its
	// delay. Default 10 ms.
	ReorderDelay time.Duration
	// Seed seeds the Loss, Jitter and Reorder draws.
	Seed uint64
	// Queue bounds the packets waiting out their delay; one more is dropped
	// (a full router queue). Default 4096.
	Queue int
}

// newRNG returns the generator of the Loss, Jitter and Reorder draws,
// seeded with seed.
func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// delay is the delay of one packet (or chunk): Delay, plus a Jitter drawn
// from rng (none drawn without Jitter), never below zero.
func (cfg *Config) delay(rng *rand.Rand) time.Duration {
	d := cfg.Delay
	if j := cfg.Jitter; j > 0 {
		d = max(d+time.Duration(rng.Int64N(int64(2*j)+1))-j, 0)
	}
	return d
}

// Conn is a net.PacketConn whose WriteTo delays (and drops) packets as its
// Config says; reads are untouched. Impair both ends of a link for a
// symmetric one.
type Conn struct {
	net.PacketConn
	cfg Config

	mu        sync.Mutex
	sent      int
	dropped   int
	reordered int
	closed    bool
	rng       *rand.Rand
	held      map[*time.Timer]struct{} // reordered packets waiting
	heldWG    sync.WaitGroup

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
	c := &Conn{PacketConn: pc, cfg: cfg, q: make(chan packet, cfg.Queue), done: make(chan struct{}),
		rng: newRNG(cfg.Seed), held: map[*time.Timer]struct{}{}}
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
	if c.cfg.Loss > 0 && c.rng.Float64() < c.cfg.Loss {
		drop = true
	}
	if drop {
		c.dropped++
	}
	delay := c.cfg.delay(c.rng)
	if !drop && c.cfg.Reorder > 0 && c.rng.Float64() < c.cfg.Reorder {
		// Held back on a timer of its own: the queue's later packets
		// leave before it.
		c.reordered++
		hold := c.cfg.ReorderDelay
		if hold <= 0 {
			hold = DefaultReorderDelay
		}
		b := append([]byte(nil), p...)
		c.heldWG.Add(1)
		var tm *time.Timer
		tm = time.AfterFunc(delay+hold, func() {
			defer c.heldWG.Done()
			c.mu.Lock()
			delete(c.held, tm)
			closed := c.closed
			c.mu.Unlock()
			if !closed {
				_, _ = c.PacketConn.WriteTo(b, addr)
			}
		})
		c.held[tm] = struct{}{}
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	if drop {
		return len(p), nil
	}
	select {
	case c.q <- packet{due: time.Now().Add(delay), b: append([]byte(nil), p...), addr: addr}:
	default:
		c.mu.Lock()
		c.dropped++
		c.mu.Unlock()
	}
	return len(p), nil
}

// Set changes the impairment of packets written from now on (those
// already delayed keep their due time); Queue keeps its first value.
// Set(Config{Loss: 1}) partitions the link, Set(Config{}) heals it.
func (c *Conn) Set(cfg Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg.Queue = c.cfg.Queue
	if cfg.Seed != c.cfg.Seed {
		c.rng = newRNG(cfg.Seed)
	}
	c.cfg = cfg
}

// DefaultReorderDelay is Config.ReorderDelay's default.
const DefaultReorderDelay = 10 * time.Millisecond

// Reordered is how many packets were held back for reordering so far.
func (c *Conn) Reordered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reordered
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
	for tm := range c.held {
		if tm.Stop() {
			c.heldWG.Done()
		}
	}
	clear(c.held)
	c.mu.Unlock()
	c.heldWG.Wait()
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
