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
//
// Each node says which broadcasts it carries and how they came (the
// session's transport: webtransport or websocket for a page, p2pquic for
// a libp2p peer), and, read with package hang, what each broadcast's
// catalog offers:
//
//	A: camera.hang from webtransport 127.0.0.1:50312
//	B: camera.hang from p2pquic 127.0.0.1:46825
//	A: camera.hang catalog: video "video/hd" avc1.640028 1280x720
//	B: camera.hang catalog: video "video/hd" avc1.640028 1280x720
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/examples/internal/peers"
	"github.com/moqp2p/moqp2p/hang"
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
	for i, p := range []*peers.Peer{a, b} {
		wg.Go(func() { republishIncoming(ctx, "AB"[i:i+1], p.Moq, &wg) })
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
	wg.Go(func() { republish(ctx, "B", b.Moq, s, &wg) })

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
// peers) announces; node names m in what it prints.
func republishIncoming(ctx context.Context, node string, m *moq.Moq, wg *sync.WaitGroup) {
	for s := range m.IncomingSessions() {
		if ctx.Err() != nil {
			return
		}
		wg.Go(func() { republish(ctx, node, m, s, wg) })
	}
}

// republish publishes at node m each broadcast session s announces, while
// it is announced: m's other sessions (a page on m's server, a libp2p
// peer) then see it too. A broadcast that came from m itself is refused
// (its hop list holds m), which is what stops two nodes echoing each other.
// It prints each broadcast it republishes, with the session's transport,
// and the broadcast's hang catalog.
func republish(ctx context.Context, node string, m *moq.Moq, s *moq.Session, wg *sync.WaitGroup) {
	type republished struct {
		p    *moq.Publication
		stop context.CancelFunc
	}
	pubs := map[string]republished{}
	defer func() {
		for _, p := range pubs {
			p.stop()
			p.p.Unpublish()
		}
	}()
	for path, b := range s.Announced(ctx, "") {
		if old, ok := pubs[path]; ok {
			old.stop()
			old.p.Unpublish()
			delete(pubs, path)
		}
		if b == nil {
			continue
		}
		p, err := m.Publish(ctx, path, b)
		if err != nil {
			continue
		}
		fmt.Printf("%s: %s from %s %s\n", node, path, s.Stats().Link.Transport, s.RemoteAddr())
		cctx, stop := context.WithCancel(ctx)
		wg.Go(func() { printCatalogs(cctx, node, path, b) })
		pubs[path] = republished{p, stop}
	}
}

// printCatalogs prints each version of broadcast b's hang catalog (a
// browser publisher's first has no video yet: its encoder is still
// starting) until ctx ends or the catalog track does. A broadcast that is
// not hang has no catalog: nothing is printed.
func printCatalogs(ctx context.Context, node, path string, b *broadcast.Consumer) {
	tc, err := b.SubscribeTrack(broadcast.Track{Name: hang.CatalogTrack, Priority: 100})
	if err != nil {
		return
	}
	cr := hang.NewCatalogReader(tc)
	defer cr.Close()
	for {
		c, err := cr.Next(ctx)
		if err != nil {
			return
		}
		fmt.Printf("%s: %s catalog: %s\n", node, path, renditions(c))
	}
}

// renditions describes a catalog's renditions in one line, by name.
func renditions(c *hang.Catalog) string {
	var parts []string
	if c.Video != nil {
		for _, name := range sortedKeys(c.Video.Renditions) {
			v := c.Video.Renditions[name]
			parts = append(parts, fmt.Sprintf("video %q %s %dx%d", name, v.Codec, v.CodedWidth, v.CodedHeight))
		}
	}
	if c.Audio != nil {
		for _, name := range sortedKeys(c.Audio.Renditions) {
			a := c.Audio.Renditions[name]
			parts = append(parts, fmt.Sprintf("audio %q %s %d Hz ×%d", name, a.Codec, a.SampleRate, a.NumberOfChannels))
		}
	}
	if len(parts) == 0 {
		return "no renditions yet"
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
