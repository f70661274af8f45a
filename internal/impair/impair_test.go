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
