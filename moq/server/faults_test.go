package server

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/faults"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport/cert"
)

// resumedAfter waits for tr's first TrackResumed event after healed and
// returns when it came (the first group from the new upstream).
func resumedAfter(t *testing.T, tr *moq.ResilientTrack, healed time.Time) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var kinds []string
	for ev := range tr.Events(ctx) {
		kinds = append(kinds, ev.Kind.String())
		if ev.Kind == moq.TrackResumed && ev.At.After(healed) {
			return ev.At
		}
	}
	t.Fatalf("no group from a new upstream after the partition healed (events %v)", kinds)
	return time.Time{}
}

// A 5 s partition between a subscriber and the server it dials (raw QUIC,
// WebSocket), through the impairing proxy: the session dies (dead-peer
// detection), the resilient track's kept link redials, and the track
// resumes within 1 s of the heal; every group published after it resumed
// arrives.
func TestResilientTrackServerPartition(t *testing.T) {
	for _, tc := range []struct {
		name string
		udp  bool
	}{{"moql", true}, {"websocket", false}} {
		t.Run(tc.name, func(t *testing.T) {
			pub := newNode(t)
			m := publish(t, pub, "live")
			faults.Pace(t, m.track, 15)
			srv := serve(t, pub, nil)
			var link faults.Link
			var url string
			if tc.udp {
				p, err := impair.NewUDPProxy(srv.UDPAddr().String(), impair.Config{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = p.Close() })
				link, url = p, "moql://"+p.Addr().String()
			} else {
				p, err := impair.NewTCPProxy(srv.TCPAddr().String(), impair.Config{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = p.Close() })
				link, url = p, "ws://"+p.Addr().String()+"/"
			}
			dial, err := Dialer(url, pinned(t, srv))
			if err != nil {
				t.Fatal(err)
			}
			sub := newNode(t)
			tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", moq.ResilientOptions{Dial: dial})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(tr.Close)
			rec := faults.Record(t, tr.RecvGroup)
			time.Sleep(time.Second)
			link.Set(impair.Config{Loss: 1})
			time.Sleep(5 * time.Second)
			healed := faults.Heal(link)
			resumed := resumedAfter(t, tr, healed)
			time.Sleep(3 * time.Second)
			faults.CheckResumed(t, rec, healed, resumed, faults.ResumeBound)
			if err := rec.Err(); err != nil {
				t.Errorf("the reader failed: %v", err)
			}
		})
	}
}

// serverChildEnv makes TestFaultsServerProcess a server publishing "live":
// run in a child process by the failover test, which kills it with
// SIGKILL.
const serverChildEnv = "MOQP2P_FAULTS_SERVER"

// childFirst is the first frame index of the child's publisher: its frames
// are told from the second server's (counting from 0) by their index.
const childFirst = 1_000_000

// TestFaultsServerProcess serves "live" at 15 frames/s (indices from
// childFirst) over raw QUIC and WebSocket, and prints its addresses and
// certificate hash, until killed. It does nothing in a normal test run.
func TestFaultsServerProcess(t *testing.T) {
	if os.Getenv(serverChildEnv) == "" {
		return
	}
	n := newNode(t)
	m := publish(t, n, "live")
	faults.PaceFrom(t, m.track, 15, childFirst)
	srv := serve(t, n, nil)
	fmt.Printf("UDP %s\nTCP %s\nCERT %s\nREADY\n", srv.UDPAddr(), srv.TCPAddr(), srv.CertificateHash())
	select {}
}

// serverProcess is a TestFaultsServerProcess child.
type serverProcess struct {
	cmd           *exec.Cmd
	udp, tcp, crt string
}

func startServerProcess(t *testing.T) *serverProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultsServerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), serverChildEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &serverProcess{cmd: cmd}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "UDP "); ok {
			p.udp = v
		}
		if v, ok := strings.CutPrefix(line, "TCP "); ok {
			p.tcp = v
		}
		if v, ok := strings.CutPrefix(line, "CERT "); ok {
			p.crt = v
		}
		if line == "READY" {
			break
		}
	}
	go func() { // keep draining, so the child never blocks on stdout
		for sc.Scan() {
		}
	}()
	if p.udp == "" || p.tcp == "" || p.crt == "" {
		t.Fatalf("child server: udp %q tcp %q cert %q", p.udp, p.tcp, p.crt)
	}
	return p
}

// kill -9 of a server's process (raw QUIC, WebSocket) while a second
// server announces the same name on another session of the subscriber's:
// the resilient track (not pinned to either) continues from the second
// within the dead-peer bound plus a second, and every group of the second
// server's after the first one arrives.
func TestResilientTrackServerFailoverAfterKill(t *testing.T) {
	if os.Getenv(serverChildEnv) != "" {
		return
	}
	for _, tc := range []struct {
		name string
		url  func(udp, tcp string) string
	}{
		{"moql", func(udp, _ string) string { return "moql://" + udp }},
		{"websocket", func(_, tcp string) string { return "ws://" + tcp + "/" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			child := startServerProcess(t)
			fp, err := cert.ParseFingerprint(child.crt)
			if err != nil {
				t.Fatal(err)
			}
			dialA, err := Dialer(tc.url(child.udp, child.tcp), cert.PinnedConfig(fp))
			if err != nil {
				t.Fatal(err)
			}
			second := newNode(t)
			faults.Pace(t, publish(t, second, "live").track, 15)
			srvB := serve(t, second, nil)
			dialB, err := Dialer(tc.url(srvB.UDPAddr().String(), srvB.TCPAddr().String()), pinned(t, srvB))
			if err != nil {
				t.Fatal(err)
			}

			sub := newNode(t)
			la := sub.KeepOpen(dialA, moq.KeepOptions{})
			t.Cleanup(la.Detach)
			if _, err := la.Session(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", moq.ResilientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(tr.Close)
			rec := faults.Record(t, tr.RecvGroup)
			fromChild := func(a faults.Arrival) bool { return a.Index >= childFirst }
			testutil.Until(t, testCtx(t), "frames from the child's server", func() bool {
				as := rec.Between(time.Time{}, time.Now().Add(time.Hour))
				return len(as) >= 5 && fromChild(as[len(as)-1])
			})
			lb := sub.KeepOpen(dialB, moq.KeepOptions{})
			t.Cleanup(lb.Detach)
			if _, err := lb.Session(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if err := child.cmd.Process.Kill(); err != nil { // SIGKILL: no close of any kind
				t.Fatal(err)
			}
			killed := time.Now()
			bound := moq.DefaultDeadPeerTimeout + time.Second
			var first faults.Arrival
			testutil.Until(t, testutil.Context(t, bound+5*time.Second), "frames from the second server", func() bool {
				for _, a := range rec.Between(killed, time.Now().Add(time.Hour)) {
					if !fromChild(a) {
						first = a
						return true
					}
				}
				return false
			})
			time.Sleep(2 * time.Second)
			faults.CheckResumed(t, rec, killed, first.At, bound)
			if err := rec.Err(); err != nil {
				t.Errorf("the reader failed: %v", err)
			}
		})
	}
}
