package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/transport/websocket"
)

// The ws:// listener takes same-origin pages (and non-browser clients) only,
// unless --allow-origin opens it to more pages or, with *, to any.
func TestListenOrigin(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		args    []string
		allowed map[string]bool // Origin header -> accepted
	}{
		{"default", nil, map[string]bool{"": true, "same": true, "http://evil.test": false}},
		{"allow-one", []string{"--allow-origin", "http://good.test"}, map[string]bool{"same": true, "http://good.test": true, "http://evil.test": false}},
		{"allow-any", []string{"--allow-origin", "*"}, map[string]bool{"http://evil.test": true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			n := start(t, "node "+c.name, nil, append([]string{"node", "--listen", "ws://127.0.0.1:0/"}, c.args...)...)
			url := field(n.stdout.await(t, n.name, "listening: ws://", 20*time.Second))
			for origin, want := range c.allowed {
				h := http.Header{}
				switch origin {
				case "same":
					h.Set("Origin", "http://"+strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/"))
				case "":
				default:
					h.Set("Origin", origin)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				conn, err := websocket.Dial(ctx, url, &websocket.Config{HTTPHeader: h})
				cancel()
				if err == nil {
					_ = conn.CloseWithError(0, "")
				}
				if got := err == nil; got != want {
					t.Errorf("Origin %q: accepted %v (%v), want %v", origin, got, err, want)
				}
			}
			n.interrupt(t)
			n.mustSucceed(t, 15*time.Second)
		})
	}
}

// moq help documents the origin rule and the flag that opens it.
func TestHelpDocumentsAllowOrigin(t *testing.T) {
	t.Parallel()
	p := start(t, "help", nil, "help")
	p.mustSucceed(t, 10*time.Second)
	if out := string(p.stdout.bytes()); !strings.Contains(out, "--allow-origin") || !strings.Contains(out, "same origin") {
		t.Fatalf("moq help says nothing of --allow-origin and same-origin pages:\n%s", out)
	}
	p = start(t, "pub -h", nil, "pub", "-h")
	p.mustSucceed(t, 10*time.Second)
	if out := string(p.stdout.bytes()); !strings.Contains(out, "--allow-origin ORIGIN") {
		t.Fatalf("moq pub -h lists no --allow-origin:\n%s", out)
	}
}

// A broadcast that exists without the asked-for track is reported as a
// missing track, not a missing broadcast.
func TestUnknownTrack(t *testing.T) {
	t.Parallel()
	pub, connect := listenFor(t, "pub", "moql://127.0.0.1:0", true, "--broadcast", "b", "--frames", "0")
	args := append([]string{"sub", "--broadcast", "b", "--track", "nope", "--timeout", "5s"}, connect...)
	p := start(t, "sub --track nope", nil, args...)
	code := p.wait(t, 20*time.Second)
	errLines := p.stderr.all()
	if code == 0 || len(errLines) != 1 || !strings.Contains(errLines[0], `unknown track "nope"`) || strings.Contains(errLines[0], "unknown broadcast") {
		t.Fatalf("exit %d, stderr %q; want one line naming the unknown track", code, errLines)
	}
	pub.interrupt(t)
	pub.wait(t, 15*time.Second)
}

// A libp2p --listen on a taken port is one line naming the address asked
// for, with none of libp2p's startup logs.
func TestListenAddressInUse(t *testing.T) {
	t.Parallel()
	n := start(t, "node", nil, "node", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	addr := field(n.stdout.await(t, n.name, "listening: /", 20*time.Second))
	taken, _, _ := strings.Cut(addr, "/p2p/")
	expectOneLineError(t, "--listen "+taken+": address already in use", 20*time.Second, "node", "--listen", taken)
	n.interrupt(t)
	n.mustSucceed(t, 15*time.Second)
}
