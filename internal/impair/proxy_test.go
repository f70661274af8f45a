package impair

import (
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// The TCP proxy forwards both ways; while partitioned it forwards nothing
// and tells nobody, and once healed it delivers what waited, in order.
func TestTCPProxyPartition(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	p, err := NewTCPProxy(ln.Addr().String(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip := func(msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: %q, %v", msg, buf, err)
		}
	}
	roundTrip("before")
	// The echo's bytes are counted just after they were written to us:
	// counts are read once they settle.
	settled := func(want int64) int64 {
		for deadline := time.Now().Add(5 * time.Second); p.Bytes() != want && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		return p.Bytes()
	}
	settled(2 * int64(len("before")))
	p.Set(Config{Loss: 1})
	if _, err := c.Write([]byte("during")); err != nil {
		t.Fatal(err)
	}
	if n := p.Bytes(); n != 2*int64(len("before")) {
		t.Fatalf("partitioned link forwarded %d bytes, want only the first echo's %d", n, 2*len("before"))
	}
	p.Set(Config{})
	buf := make([]byte, 6)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during" {
		t.Fatalf("after healing: %q, %v", buf, err)
	}
	roundTrip("after")
	if n := settled(2 * int64(len("before")+len("during")+len("after"))); n != 2*int64(len("before")+len("during")+len("after")) {
		t.Errorf("forwarded %d bytes", n)
	}
	_ = c.Close()
	_ = p.Close()
	<-echoed
}

// The UDP proxy forwards datagrams both ways and drops them all while
// partitioned.
func TestUDPProxy(t *testing.T) {
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteTo(buf[:n], from)
		}
	}()
	p, err := NewUDPProxy(srv.LocalAddr().String(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("udp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("echo: %q, %v", buf[:n], err)
	}
	p.Set(Config{Loss: 1})
	_, _ = c.Write([]byte("lost"))
	for deadline := time.Now().Add(5 * time.Second); p.Dropped() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the partitioned proxy dropped nothing")
		}
		time.Sleep(time.Millisecond) // polling a counter, not a negative check
	}
	p.Set(Config{})
	if _, err := c.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "again" {
		t.Fatalf("after healing: %q, %v (the datagram sent during the partition must be gone)", buf[:n], err)
	}
}

// The TCP proxy's jitter is drawn from its seed: the same delays in the
// same order for the same seed, others for another, each within Delay ±
// Jitter.
func TestTCPProxyJitterSeeded(t *testing.T) {
	const delay, jitter = 50 * time.Millisecond, 20 * time.Millisecond
	draws := func(seed uint64) []time.Duration {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		p, err := NewTCPProxy(ln.Addr().String(), Config{Delay: delay, Jitter: jitter, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		var out []time.Duration
		for range 50 {
			d, ok := p.gate()
			if !ok {
				t.Fatal("open proxy's gate closed")
			}
			if d < delay-jitter || d > delay+jitter {
				t.Errorf("delay %v outside %v ± %v", d, delay, jitter)
			}
			out = append(out, d)
		}
		return out
	}
	first := draws(5)
	if again := draws(5); !slices.Equal(first, again) {
		t.Errorf("seed 5 drew %v, then %v", first, again)
	}
	if other := draws(6); slices.Equal(first, other) {
		t.Errorf("seeds 5 and 6 drew the same delays %v", first)
	}
	if slices.Min(first) == slices.Max(first) {
		t.Errorf("no jitter: every delay %v", first[0])
	}
}
