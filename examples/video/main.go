// Video runs two nodes that carry live video between browsers through
// peers: page 1 publishes its camera with @moq/publish to node A over
// WebTransport; node B, a libp2p peer of A that knows nothing of page 1,
// serves page 2, which plays it with @moq/watch. Each node republishes what
// its sessions announce, so a broadcast published at either node plays at
// both.
//
//	go run ./examples/video
//	# open the printed publish URL, then the watch URL
//
// It prints node A's libp2p address too, so other publishers can join:
//
//	moq pub --media movie.mp4 --loop --broadcast movie.hang --connect <node A>
//
// then open B's /watch?name=movie.hang. The pages (and their bundled
// JavaScript) are moq/server/watch's, the ones every moq node serves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/moqp2p/moqp2p/examples/internal/peers"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/moq/server/watch"
)

func main() {
	addrA := flag.String("a", "127.0.0.1:4443", "node A's `host:port` for pages, WebTransport and WebSocket (port 0 picks one)")
	addrB := flag.String("b", "127.0.0.1:4444", "node B's `host:port`")
	name := flag.String("name", "camera.hang", "broadcast `name` the publish page uses")
	flag.Parse()
	peers.Main("video", func(ctx context.Context) error { return run(ctx, *addrA, *addrB, *name) })
}

func run(ctx context.Context, addrA, addrB, name string) error {
	// Deferred first, so it runs last: the republishing goroutines end
	// with ctx and with the nodes' shutdown (IncomingSessions).
	var wg sync.WaitGroup
	defer wg.Wait()
	a, err := peers.New(peers.Config{})
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := peers.New(peers.Config{})
	if err != nil {
		return err
	}
	defer b.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, p := range []*peers.Peer{a, b} {
		wg.Go(func() { republishIncoming(ctx, p.Moq, &wg) })
	}
	srvA, servedA, err := serve(a.Moq, addrA)
	if err != nil {
		return err
	}
	srvB, servedB, err := serve(b.Moq, addrB)
	if err != nil {
		return errors.Join(err, shutdown(srvA, servedA))
	}
	// B dials A: the only link between the two sides.
	s, err := b.Dial(ctx, a.Addr())
	if err != nil {
		return errors.Join(err, shutdown(srvA, servedA), shutdown(srvB, servedB))
	}
	wg.Go(func() { republish(ctx, b.Moq, s) })

	fmt.Printf("node A: %s\n", a.Addr())
	fmt.Printf("publish: %s\n", watch.PublishURL("http://"+srvA.TCPAddr().String(), name))
	fmt.Printf("watch: %s\n", watch.WatchURL("http://"+srvB.TCPAddr().String(), name))

	var errA, errB error
	select {
	case <-ctx.Done():
	case errA = <-servedA:
		servedA = nil
	case errB = <-servedB:
		servedB = nil
	}
	cancel()
	return errors.Join(errA, errB, shutdown(srvA, servedA), shutdown(srvB, servedB))
}

// serve starts a server.Server for node m on addr serving the pages, and
// waits until it listens.
func serve(m *moq.Moq, addr string) (*server.Server, chan error, error) {
	srv := &server.Server{
		Moq:     m,
		Addr:    addr,
		Handler: watch.Handler(),
		Route:   func(*http.Request) (string, error) { return "", nil }, // every broadcast, whatever the path
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	// The server has no "listening" event: look every millisecond until it
	// has an address, or ListenAndServe fails.
	for srv.TCPAddr() == nil {
		select {
		case err := <-served:
			return nil, nil, err
		case <-time.After(time.Millisecond):
		}
	}
	return srv, served, nil
}

// shutdown stops srv (GOAWAY, then close whoever stays) and waits for its
// Serve to return; served nil means it already did.
func shutdown(srv *server.Server, served chan error) error {
	if served == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	err := <-served
	if errors.Is(err, server.ErrServerClosed) {
		return nil
	}
	return err
}

// republishIncoming republishes what every session that reaches m (pages,
// peers) announces.
func republishIncoming(ctx context.Context, m *moq.Moq, wg *sync.WaitGroup) {
	for s := range m.IncomingSessions() {
		if ctx.Err() != nil {
			return
		}
		wg.Go(func() { republish(ctx, m, s) })
	}
}

// republish publishes at node m each broadcast session s announces, while
// it is announced: m's other sessions (a page on m's server, a libp2p
// peer) then see it too. A broadcast that came from m itself is refused
// (its hop list holds m), which is what stops two nodes echoing each other.
func republish(ctx context.Context, m *moq.Moq, s *moq.Session) {
	pubs := map[string]*moq.Publication{}
	defer func() {
		for _, p := range pubs {
			p.Unpublish()
		}
	}()
	for path, b := range s.Announced(ctx, "") {
		if old := pubs[path]; old != nil {
			old.Unpublish()
			delete(pubs, path)
		}
		if b == nil {
			continue
		}
		if p, err := m.Publish(ctx, path, b); err == nil {
			pubs[path] = p
		}
	}
}
