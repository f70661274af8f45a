package impair

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// UDPProxy forwards datagrams between clients and one target on loopback,
// impairing both directions as its Config says: a link between two
// programs (or two processes) that the test can slow, make lossy or cut,
// without touching either end's sockets. QUIC does not mind the proxy's
// address standing in for the target's.
type UDPProxy struct {
	ln     *Conn // towards clients
	target net.Addr
	bytes  atomic.Int64 // datagram payload forwarded, both directions

	mu      sync.Mutex
	cfg     Config
	clients map[string]*Conn // by client address: a socket towards target
	closed  bool
	wg      sync.WaitGroup
}

// NewUDPProxy listens on 127.0.0.1 and forwards to target.
func NewUDPProxy(target string, cfg Config) (*UDPProxy, error) {
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &UDPProxy{ln: New(pc, cfg), target: ta, cfg: cfg, clients: map[string]*Conn{}}
	p.wg.Go(p.serve)
	return p, nil
}

// Addr is the address clients send to instead of the target's.
func (p *UDPProxy) Addr() *net.UDPAddr { return p.ln.LocalAddr().(*net.UDPAddr) }

// Bytes is how many bytes of datagram payload the proxy has received to
// forward, both directions (dropped ones included; UDP/IP headers not).
func (p *UDPProxy) Bytes() int64 { return p.bytes.Load() }

// Dropped is how many datagrams the proxy dropped, both directions.
func (p *UDPProxy) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.ln.Dropped()
	for _, c := range p.clients {
		n += c.Dropped()
	}
	return n
}

// Set changes the impairment of both directions from now on.
func (p *UDPProxy) Set(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg = cfg
	p.ln.Set(cfg)
	for _, c := range p.clients {
		c.Set(cfg)
	}
}

func (p *UDPProxy) serve() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := p.ln.ReadFrom(buf)
		if err != nil {
			return
		}
		up := p.upstream(from)
		if up == nil {
			return
		}
		p.bytes.Add(int64(n))
		_, _ = up.WriteTo(buf[:n], p.target)
	}
}

// upstream returns the socket towards the target for client from, making
// it (and its reader) on the client's first datagram.
func (p *UDPProxy) upstream(from net.Addr) *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if c := p.clients[from.String()]; c != nil {
		return c
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil
	}
	c := New(pc, p.cfg)
	p.clients[from.String()] = c
	p.wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			p.bytes.Add(int64(n))
			_, _ = p.ln.WriteTo(buf[:n], from)
		}
	})
	return c
}

// Close stops forwarding and waits for the proxy's goroutines.
func (p *UDPProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	clients := p.clients
	p.clients = nil
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range clients {
		_ = c.Close()
	}
	p.wg.Wait()
	return err
}

// TCPProxy forwards TCP connections to one target on loopback, delaying
// what it forwards by Config.Delay (and Jitter, drawn from a generator
// seeded with Config.Seed: the same delays, chunk after chunk, on every
// run that reads the same chunks) and, while Config.Loss is 1, forwarding
// nothing (a partition: bytes wait, TCP's flow control stops the senders,
// nobody is told). Other losses, and Reorder, mean nothing to a byte
// stream and are ignored.
type TCPProxy struct {
	ln     net.Listener
	target string

	bytes atomic.Int64 // forwarded, both directions

	mu     sync.Mutex
	cfg    Config
	rng    *rand.Rand    // the Jitter draws, seeded with cfg.Seed
	cut    bool          // partitioned
	healed chan struct{} // closed while not partitioned
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewTCPProxy listens on 127.0.0.1 and forwards to target.
func NewTCPProxy(target string, cfg Config) (*TCPProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &TCPProxy{ln: ln, target: target, healed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.healed)
	p.Set(cfg)
	p.wg.Go(p.serve)
	return p, nil
}

// Addr is the address clients connect to instead of the target's.
func (p *TCPProxy) Addr() *net.TCPAddr { return p.ln.Addr().(*net.TCPAddr) }

// Bytes is how many bytes the proxy has forwarded, both directions (TCP
// payload: what the ends wrote, TLS and framing included).
func (p *TCPProxy) Bytes() int64 { return p.bytes.Load() }

// Set changes the impairment from now on.
func (p *TCPProxy) Set(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng == nil || cfg.Seed != p.cfg.Seed {
		p.rng = newRNG(cfg.Seed)
	}
	cut := cfg.Loss >= 1
	if cut && !p.cut {
		p.healed = make(chan struct{})
	} else if !cut && p.cut {
		close(p.healed)
	}
	p.cfg, p.cut = cfg, cut
}

// gate waits out a partition and returns the delay in force.
func (p *TCPProxy) gate() (time.Duration, bool) {
	for {
		p.mu.Lock()
		cut, healed, closed := p.cut, p.healed, p.closed
		var d time.Duration
		if !cut && !closed {
			d = p.cfg.delay(p.rng)
		}
		p.mu.Unlock()
		if closed {
			return 0, false
		}
		if !cut {
			return d, true
		}
		<-healed
	}
}

func (p *TCPProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = u.Close()
			return
		}
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(u, c) })
		p.wg.Go(func() { p.pipe(c, u) })
	}
}

// pipe copies src to dst, each chunk after the delay in force when it was
// read (chunks keep their order), holding everything during a partition.
func (p *TCPProxy) pipe(dst, src net.Conn) {
	type chunk struct {
		due time.Time
		b   []byte
	}
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			time.Sleep(time.Until(ch.due))
			if _, ok := p.gate(); !ok {
				return
			}
			if _, err := dst.Write(ch.b); err != nil {
				return
			}
			p.bytes.Add(int64(len(ch.b)))
		}
	}()
	defer func() {
		close(q)
		<-done
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			d, ok := p.gate()
			if !ok {
				return
			}
			select {
			case q <- chunk{due: time.Now().Add(d), b: append([]byte(nil), buf[:n]...)}:
			case <-done:
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = src.Close()
			}
			return
		}
	}
}

// Close stops forwarding, closes every proxied connection and waits for
// the proxy's goroutines.
func (p *TCPProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	if p.cut {
		close(p.healed) // wake gates; they see closed
		p.cut = false
	}
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	err := p.ln.Close()
	for c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
	return err
}
