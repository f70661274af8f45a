package main

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// awaitBytes waits up to d for the lines to hold at least n bytes.
func (l *lines) awaitBytes(t *testing.T, what string, n int, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		got, wake := l.buf.Len(), l.wake
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("%s: %d bytes within %s, want %d", what, got, d, n)
		}
	}
}

// stop interrupts p unless it has exited already (a publisher that dialed
// its subscriber ends when the subscriber hangs up) and waits for it.
func stop(t *testing.T, p *proc) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT) // fails only if it has exited
	p.wait(t, 20*time.Second)
}

// freePort returns a port that was free on 127.0.0.1 for network ("tcp"
// or "udp") a moment ago, for a process that must listen at the same
// address twice.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A live subscriber outlives its publisher's process: pub is killed
// (SIGKILL, no goodbye) mid-stream and started again at the same address;
// sub says it lost the publisher, redials the same --connect URL or peer,
// says it resumed and after how long, and goes on until --count frames,
// exiting 0.
func TestSubSurvivesPublisherRestart(t *testing.T) {
	t.Parallel()
	key := filepath.Join(t.TempDir(), "key")
	for _, tc := range []struct {
		name    string
		listen  func() string
		pubArgs []string
		connect func(listening string) []string
	}{
		{"moql", func() string { return fmt.Sprintf("moql://127.0.0.1:%d", freePort(t, "udp")) }, nil,
			func(l string) []string { return []string{"--connect", l, "--insecure"} }},
		{"websocket", func() string { return fmt.Sprintf("ws://127.0.0.1:%d", freePort(t, "tcp")) }, nil,
			func(l string) []string { return []string{"--connect", l} }},
		{"p2p", func() string { return fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", freePort(t, "udp")) }, []string{"--identity", key},
			func(l string) []string { return []string{"--connect", l} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			listen := tc.listen()
			scheme, _, _ := strings.Cut(listen, "://")
			prefix := "listening: " + scheme + "://"
			if scheme == listen {
				prefix = "listening: /"
			}
			pubArgs := append([]string{"pub", "--broadcast", "live", "--listen", listen, "--frames", "0",
				"--rate", "15", "--group-frames", "1", "--size", "100"}, tc.pubArgs...)
			pub1 := start(t, "pub 1", nil, pubArgs...)
			addr := field(pub1.stderr.await(t, pub1.name, prefix, 20*time.Second))

			const count = 40
			sub := start(t, "sub", nil, append([]string{"sub", "--broadcast", "live", "--count", fmt.Sprint(count),
				"--out", "-", "--dead-peer-timeout", "1s"}, tc.connect(addr)...)...)
			sub.stdout.awaitBytes(t, "frames before the kill", 5*100, 30*time.Second)
			resumesAfterKill(t, sub, pub1, count, func() *proc {
				pub2 := start(t, "pub 2", nil, pubArgs...)
				if got := field(pub2.stderr.await(t, pub2.name, prefix, 20*time.Second)); got != addr {
					t.Fatalf("pub 2 listens at %s, pub 1 at %s", got, addr)
				}
				return pub2
			})
		})
	}
}

// A live subscriber by name goes on from a second provider of the name when
// the one it was reading is killed: both provide it in the DHT, and sub,
// knowing only the bootstrap node, finds the other one after the loss.
func TestSubFailsOverToSecondProvider(t *testing.T) {
	t.Parallel()
	_, boot := bootstrapNode(t)
	live := []string{"--frames", "0", "--rate", "15", "--group-frames", "1", "--size", "100"}
	provider := func(name string) *proc {
		p := start(t, name, nil, append([]string{"pub", "--bootstrap", boot, "--listen", loopbackQUIC, "--broadcast", "cam"}, live...)...)
		p.stderr.await(t, p.name, "listening: /", 20*time.Second)
		return p
	}
	pub1 := provider("pub 1")
	const count = 40
	sub := start(t, "sub", nil, "sub", "--bootstrap", boot, "--broadcast", "cam", "--count", fmt.Sprint(count),
		"--out", "-", "--dead-peer-timeout", "1s", "--timeout", "20s")
	sub.stdout.awaitBytes(t, "frames from the first provider", 5*100, 30*time.Second)
	pub2 := provider("pub 2") // providing before the loss
	resumesAfterKill(t, sub, pub1, count, func() *proc { return pub2 })
}

// A live subscriber that listens (--listen) outlives the publisher that
// connected to it: killed and started again, the publisher connects anew,
// announces the broadcast, and sub goes on from it.
func TestSubListeningSurvivesPublisherRestart(t *testing.T) {
	t.Parallel()
	const count = 40
	sub, connect := listenFor(t, "sub", "moql://127.0.0.1:0", true, "--broadcast", "live", "--count", fmt.Sprint(count),
		"--out", "-", "--dead-peer-timeout", "1s")
	pubArgs := append(append([]string{"pub", "--broadcast", "live", "--frames", "0", "--rate", "15",
		"--group-frames", "1", "--size", "100"}, connect...), "--dead-peer-timeout", "1s")
	pub1 := start(t, "pub 1", nil, pubArgs...)
	sub.stdout.awaitBytes(t, "frames before the kill", 5*100, 30*time.Second)
	resumesAfterKill(t, sub, pub1, count, func() *proc { return start(t, "pub 2", nil, pubArgs...) })
}

// resumesAfterKill kills pub1 (SIGKILL) under a live sub reading count
// frames: sub reports the loss, next() gives the publisher it goes on
// from, sub reports resuming, exits 0 with every frame, and that
// publisher is stopped.
func resumesAfterKill(t *testing.T, sub, pub1 *proc, count uint64, next func() *proc) {
	t.Helper()
	if err := pub1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-pub1.done
	lost := sub.stderr.await(t, "sub after the kill", "lost: ", 20*time.Second)
	pub2 := next()
	resumed := sub.stderr.await(t, "sub after the loss", "resumed: ", 30*time.Second)
	sub.mustSucceed(t, 60*time.Second)
	t.Logf("sub: %q then %q", lost, resumed)
	var sum subSummary
	if err := json.Unmarshal([]byte(sub.stderr.await(t, "sub's summary", "{", time.Second)), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Frames != count {
		t.Errorf("sub received %d frames, want %d: %+v\nstderr:\n%s", sum.Frames, count, sum, sub.stderr.bytes())
	}
	stop(t, pub2)
}

// A live publisher outlives the relay it connected to: the relay's process
// is killed (SIGKILL) and started again at the same address; pub says the
// link was lost, redials, and a subscriber of the new relay process gets
// its frames (the new relay knows the broadcast only from pub's new
// session), while pub goes on.
func TestPubConnectSurvivesRelayRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		listen  func() string
		connect []string
	}{
		{"moql", func() string { return fmt.Sprintf("moql://127.0.0.1:%d", freePort(t, "udp")) }, []string{"--insecure"}},
		{"websocket", func() string { return fmt.Sprintf("ws://127.0.0.1:%d", freePort(t, "tcp")) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			listen := tc.listen()
			r1, _ := startRelay(t, "relay 1", "--listen", listen)
			pub := start(t, "pub", nil, append([]string{"pub", "--broadcast", "live", "--connect", listen, "--frames", "0",
				"--rate", "15", "--group-frames", "1", "--size", "100", "--dead-peer-timeout", "1s"}, tc.connect...)...)
			sub1 := start(t, "sub 1", nil, append([]string{"sub", "--broadcast", "live", "--connect", listen, "--count", "5", "--out", "-"}, tc.connect...)...)
			sub1.mustSucceed(t, 30*time.Second)

			if err := r1.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-r1.done
			awaitLog(t, pub, `msg="link lost; redialing"`, 20*time.Second)
			r2, _ := startRelay(t, "relay 2", "--listen", listen)
			const count = 20
			sub2 := start(t, "sub 2", nil, append([]string{"sub", "--broadcast", "live", "--connect", listen, "--count", fmt.Sprint(count), "--out", "-"}, tc.connect...)...)
			sub2.mustSucceed(t, 30*time.Second)
			sub2.stdout.awaitBytes(t, "frames through the restarted relay", count*100, time.Second)
			select {
			case <-pub.done:
				t.Fatalf("pub exited after the relay's restart:\n%s", pub.stderr.bytes())
			default:
			}
			stop(t, pub)
			stop(t, r2)
		})
	}
}
