package impair

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Packets arrive after the delay, in order, and every n-th is dropped.
func TestDelayAndDrop(t *testing.T) {
	const delay = 30 * time.Millisecond
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := New(a, Config{Delay: delay, DropEvery: 3})
	defer c.Close()
	start := time.Now()
	for i := range 9 {
		if _, err := c.WriteTo([]byte{byte(i)}, b.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	buf := make([]byte, 16)
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < 6 {
		n, _, err := b.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if len(got) == 0 && time.Since(start) < delay {
			t.Errorf("first packet after %v, before the %v delay", time.Since(start), delay)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != string([]byte{0, 1, 3, 4, 6, 7}) || c.Dropped() != 3 {
		t.Errorf("received %v, dropped %d: want every third dropped, the rest in order", got, c.Dropped())
	}
}

// Loss 1 is a partition: nothing arrives until Set heals the link; a
// seeded loss rate drops about that share, the same packets on every run.
func TestSetPartitionAndLoss(t *testing.T) {
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := New(a, Config{Loss: 1})
	defer c.Close()
	for i := range 100 {
		_, _ = c.WriteTo([]byte{byte(i)}, b.LocalAddr())
	}
	if c.Dropped() != 100 {
		t.Fatalf("partitioned link dropped %d of 100", c.Dropped())
	}
	sink, err := net.ListenPacket("udp", "127.0.0.1:0") // never read: only counts matter here
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	c.Set(Config{Loss: 0.2, Seed: 7, Jitter: time.Millisecond})
	for i := range 1000 {
		_, _ = c.WriteTo([]byte{byte(i)}, sink.LocalAddr())
	}
	lost := c.Dropped() - 100
	if lost < 150 || lost > 250 {
		t.Errorf("20%% loss dropped %d of 1000", lost)
	}
	c.Set(Config{})
	_, _ = c.WriteTo([]byte{4, 2}, b.LocalAddr()) // the only 2-byte packet
	buf := make([]byte, 16)
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n := 0
	for {
		k, _, err := b.ReadFrom(buf)
		if err != nil {
			t.Fatalf("healed link: %v after %d packets", err, n)
		}
		n++
		if k == 2 {
			break
		}
	}
}
