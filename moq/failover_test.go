package moq

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// childEnv makes TestFaultsPublisherProcess a publisher: run in a child
// process by the failover test, which kills it with SIGKILL.
const childEnv = "MOQP2P_FAULTS_PUBLISHER"

// TestFaultsPublisherProcess publishes "live" at 15 frames/s ("a0", "a1",
// ...) and prints its address, until killed. It does nothing in a normal
// test run.
func TestFaultsPublisherProcess(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		return
	}
	n := newNode(t)
	m := publish(t, n, "live")
	for _, a := range n.h.Addrs() {
		fmt.Printf("ADDR %s/p2p/%s\n", a, n.h.ID())
	}
	fmt.Println("READY")
	for i := 0; ; i++ {
		_ = m.track.WriteFrame([]byte(fmt.Sprintf("a%d", i)))
		time.Sleep(time.Second / 15)
	}
}

// startPublisherProcess runs TestFaultsPublisherProcess in a child
// process and returns its address.
func startPublisherProcess(t *testing.T) (*exec.Cmd, peer.AddrInfo) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultsPublisherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var addrs []ma.Multiaddr
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "ADDR "); ok {
			addrs = append(addrs, ma.StringCast(a))
		}
		if line == "READY" {
			break
		}
	}
	go func() { // keep draining, so the child never blocks on stdout
		for sc.Scan() {
		}
	}()
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil || len(infos) != 1 {
		t.Fatalf("child addresses %v: %v", addrs, err)
	}
	return cmd, infos[0]
}

// kill -9 of the publisher's process while a second provider of the name
// exists: the resilient track continues from the second within the
// dead-peer bound plus a second.
func TestResilientTrackFailsOverAfterKill(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		return
	}
	cmd, childInfo := startPublisherProcess(t)
	sub := newNode(t)
	if _, err := sub.Connect(testCtx(t), childInfo); err != nil {
		t.Fatal(err)
	}
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The second provider, in this process, publishing "0", "1", ...
	second := newNode(t)
	paced(t, publish(t, second, "live"), 15)
	sub.connect(t, second)

	frames := make(chan string, 1024)
	go func() {
		for {
			g, err := tr.NextGroup(context.Background())
			if err != nil {
				close(frames)
				return
			}
			if f, err := g.ReadFrame(context.Background()); err == nil {
				frames <- string(f)
			}
		}
	}()
	defer tr.Close()
	// Frames from the child first.
	for f := range frames {
		if strings.HasPrefix(f, "a") {
			break
		}
	}
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no close of any kind
		t.Fatal(err)
	}
	killed := time.Now()
	bound := DefaultDeadPeerTimeout + time.Second
	deadline := time.After(bound + 5*time.Second)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("track ended: %v", tr.Err())
			}
			if strings.HasPrefix(f, "a") {
				continue
			}
			if d := time.Since(killed); d > bound {
				t.Errorf("continued from the second provider %v after the kill, want within %v", d, bound)
			} else {
				t.Logf("continued from the second provider %v after the kill", d)
			}
			return
		case <-deadline:
			t.Fatalf("nothing from the second provider %v after the kill", bound+5*time.Second)
		}
	}
}
