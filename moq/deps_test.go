package moq

import (
	"os/exec"
	"strings"
	"testing"
)

// heavy are packages a P2P-only program must not link: the browser-facing
// transports (WebTransport over HTTP/3, WebSocket) belong to moq/server,
// and go-libp2p's root package links every libp2p transport (its own
// WebTransport, WebSocket and WebRTC ones among them). A path ending in
// "/" matches the packages under it too.
var heavy = []string{
	"github.com/quic-go/webtransport-go",
	"github.com/quic-go/quic-go/http3",
	"github.com/quic-go/quic-go/http3/",
	"github.com/coder/websocket",
	"github.com/coder/websocket/",
	"github.com/libp2p/go-libp2p",
	"github.com/libp2p/go-libp2p/p2p/transport/webtransport",
	"github.com/libp2p/go-libp2p/p2p/transport/websocket",
	"github.com/moqp2p/moqp2p/transport/webtransport",
	"github.com/moqp2p/moqp2p/transport/websocket",
}

// libp2pRoot are go-libp2p's root package and the libp2p transports only it
// links: no moqp2p program needs them, browser-facing or not (moq.NewHost
// builds hosts without them).
var libp2pRoot = []string{
	"github.com/libp2p/go-libp2p",
	"github.com/libp2p/go-libp2p/p2p/transport/webtransport",
	"github.com/libp2p/go-libp2p/p2p/transport/websocket",
}

// deps lists the non-standard packages pkg links (go list -deps).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.CommandContext(testCtx(t), "go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func isHeavy(p string) bool {
	for _, h := range heavy {
		if p == h || strings.HasSuffix(h, "/") && strings.HasPrefix(p, h) {
			return true
		}
	}
	return false
}

// Package moq and a P2P example program link none of the heavy packages,
// while moq/server (which needs them) does: the check sees what it looks
// for. The CLI links no part of go-libp2p's root. The counts are logged
// for ARCHITECTURE.md's dependency weight.
func TestDependencyWeight(t *testing.T) {
	for _, pkg := range []string{".", "../examples/clock"} {
		list := deps(t, pkg)
		for _, p := range list {
			if isHeavy(p) {
				t.Errorf("%s links %s", pkg, p)
			}
		}
		t.Logf("%s: %d non-standard packages", pkg, len(list))
	}
	found := 0
	for _, p := range deps(t, "./server") {
		if isHeavy(p) {
			found++
		}
	}
	if found == 0 {
		t.Fatal("moq/server links none of the heavy packages: the check is blind")
	}
	// The CLI serves browsers, so it links their transports, but not
	// go-libp2p's root.
	for _, p := range deps(t, "../cmd/moq") {
		for _, r := range libp2pRoot {
			if p == r {
				t.Errorf("cmd/moq links %s", p)
			}
		}
	}
}
