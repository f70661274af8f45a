package impair

import (
	"maps"
	"net"
	"slices"
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

// late sends n numbered packets through a Conn that reorders with seed and
// returns the packets that arrived after a higher-numbered one: those held
// back, as the seed drew them. Every packet must arrive.
func late(t *testing.T, n int, seed uint64) map[int]bool {
	t.Helper()
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := New(a, Config{Reorder: 0.2, ReorderDelay: 50 * time.Millisecond, Seed: seed})
	defer c.Close()
	for i := range n {
		if _, err := c.WriteTo([]byte{byte(i)}, b.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// A tail never held back (the draw is only made with Reorder set):
	// every held packet is overtaken by it at least.
	c.Set(Config{Seed: seed})
	if _, err := c.WriteTo([]byte{byte(n)}, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	seen := map[int]bool{}
	highest := -1
	buf := make([]byte, 16)
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(seen) < n+1 {
		k, _, err := b.ReadFrom(buf)
		if err != nil || k != 1 {
			t.Fatalf("after %d of %d packets: %v", len(seen), n+1, err)
		}
		i := int(buf[0])
		seen[i] = true
		if i < highest {
			out[i] = true
		}
		highest = max(highest, i)
	}
	if c.Reordered() != len(out) || c.Dropped() != 0 {
		t.Errorf("%d packets arrived late, %d reordered, %d dropped", len(out), c.Reordered(), c.Dropped())
	}
	return out
}

// Reordering holds back about its share of the packets, which arrive
// after later ones and are never lost; the seed decides which, the same
// on every run.
func TestReorderSeeded(t *testing.T) {
	const n = 200
	first := late(t, n, 3)
	if len(first) < n/10 || len(first) > 3*n/10 {
		t.Errorf("20%% reordering held back %d of %d packets", len(first), n)
	}
	if again := late(t, n, 3); !maps.Equal(first, again) {
		t.Errorf("the same seed reordered %v, then %v", slices.Sorted(maps.Keys(first)), slices.Sorted(maps.Keys(again)))
	}
	if other := late(t, n, 4); maps.Equal(first, other) {
		t.Errorf("seeds 3 and 4 reordered the same packets %v", slices.Sorted(maps.Keys(first)))
	}
}
