// Browser shows a Go node's live broadcast in a web page. The node publishes
// the clock (broadcast "clock", track "seconds", one group per second, as in
// examples/clock) and a server.Server serves, on one port number, the page over
// HTTP, WebTransport over UDP and a WebSocket fallback over TCP. The page uses
// @moq/lite, kixelated's JavaScript moq-lite client, loaded unbundled from a
// node_modules directory.
//
//	(cd interop/jspeer && npm ci)   # @moq/lite 0.2.2, pinned by the lockfile
//	go run ./examples/browser        # then open the printed http:// URL
//
// The development certificate is self-signed: the page fetches its hash from
// /certificate.sha256 and hands it to WebTransport's serverCertificateHashes,
// so no browser flags are needed.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/examples/internal/peers"
	"github.com/moqp2p/moqp2p/moq/server"
)

//go:embed index.html
var page []byte

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "`host:port` to serve on (UDP and TCP; port 0 picks one)")
	modules := flag.String("modules", filepath.Join("interop", "jspeer", "node_modules"), "`dir`ectory holding @moq/lite and its dependencies")
	flag.Parse()

	peers.Main("browser", func(ctx context.Context) error { return run(ctx, *addr, *modules) })
}

func run(ctx context.Context, addr, modules string) error {
	if _, err := os.Stat(filepath.Join(modules, "@moq", "lite")); err != nil {
		return fmt.Errorf("@moq/lite not found under %s (run npm ci in interop/jspeer, or pass -modules): %w", modules, err)
	}
	node, err := peers.New(peers.Config{})
	if err != nil {
		return err
	}
	defer node.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	mux.Handle("GET /modules/", http.StripPrefix("/modules/", http.FileServer(http.Dir(modules))))
	srv := &server.Server{Moq: node.Moq, Addr: addr, Handler: mux}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	// The server has no "listening" event: look every millisecond until it
	// has an address (a few looks), or ListenAndServe fails.
	for srv.TCPAddr() == nil {
		select {
		case err := <-served:
			return err
		case <-time.After(time.Millisecond):
		}
	}
	fmt.Printf("open http://%s/ (certificate sha256 %s)\n", srv.TCPAddr(), srv.CertificateHash())

	pubCtx, stopPub := context.WithCancel(ctx)
	published := make(chan error, 1)
	go func() { published <- publishClock(pubCtx, node) }()

	select {
	case <-ctx.Done():
	case err := <-served:
		stopPub()
		return errors.Join(err, <-published)
	}
	stopPub()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx) // GOAWAY, then close whoever stays
	<-served
	return <-published
}

// publishClock writes the time as one single-frame group per second until
// ctx ends.
func publishClock(ctx context.Context, p *peers.Peer) error {
	b := broadcast.New(broadcast.Config{})
	defer b.Finish()
	seconds, err := b.CreateTrack(broadcast.Track{Name: "seconds"})
	if err != nil {
		return err
	}
	if _, err := p.Publish(ctx, "clock", b.Consume()); err != nil {
		return err
	}
	return peers.RunClock(ctx, seconds)
}
