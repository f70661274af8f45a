// Admission runs a gate: a node that admits only allow-listed peers. Its
// moq.WithAdmission function decides about every incoming session before
// anything is offered to the peer; a rejected peer's connection is closed
// with an application error code (here 7, wire code 64+7 = 71) and a reason.
// The gate ranges over IncomingSessions, which yields admitted sessions
// only, and offers them its broadcast "lobby".
//
// Three visitors in one process, alice and bob on the list, mallory not:
//
//	go run ./examples/admission
//
// Or a gate and a visitor in separate terminals on this machine. -key FILE
// keeps a node's peer ID across runs (and -port the gate's port), so the
// gate can be restarted with the visitor on its -allow list:
//
//	go run ./examples/admission -role gate -key gate.key -port 4242             # prints ADDR
//	go run ./examples/admission -role visitor -key alice.key -peer ADDR         # turned away; prints its ID
//	go run ./examples/admission -role gate -key gate.key -port 4242 -allow ID   # Ctrl-C the first gate before
//	go run ./examples/admission -role visitor -key alice.key -peer ADDR         # admitted
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/examples/internal/peers"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport"
)

// notListed is why the gate turns a peer away: application code 7.
var notListed = broadcast.AppError(7, "not on the allow list")

func main() {
	role := flag.String("role", "demo", "demo (a gate and three visitors in this process), gate or visitor")
	allow := flag.String("allow", "", "gate: comma-separated peer IDs to admit")
	port := flag.Int("port", 0, "gate: UDP port to listen on (0: any free port)")
	addr := flag.String("peer", "", "visitor: the gate's multiaddr, ending in /p2p/<peer-id>")
	key := flag.String("key", "", "gate, visitor: `FILE` holding the node's key (made if missing), for a stable peer ID")
	flag.Parse()

	peers.Main("admission", func(ctx context.Context) error {
		switch *role {
		case "demo":
			return demo(ctx)
		case "gate":
			return serveGate(ctx, *allow, *port, *key)
		case "visitor":
			return runVisitor(ctx, *addr, *key)
		}
		return fmt.Errorf("-role %q: want demo, gate or visitor", *role)
	})
}

func demo(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	visitors := map[string]*peers.Peer{}
	for _, name := range []string{"alice", "bob", "mallory"} {
		v, err := peers.New(peers.Config{})
		if err != nil {
			return err
		}
		defer v.Close()
		visitors[name] = v
	}
	names := func(id peer.ID) string {
		for name, v := range visitors {
			if v.ID() == id {
				return name
			}
		}
		return peers.Short(id)
	}
	g, err := newGate(names, peers.Config{}, visitors["alice"].ID(), visitors["bob"].ID())
	if err != nil {
		return err
	}
	defer g.close()

	for _, name := range []string{"alice", "bob", "mallory"} {
		if err := visit(ctx, name, visitors[name], g.p.Info()); err != nil {
			return err
		}
	}
	// The gate's live sessions: the admitted visitors' only.
	list, err := g.p.Sessions(ctx)
	if err != nil {
		return err
	}
	var live []string
	for _, s := range list {
		live = append(live, names(s.RemotePeer()))
	}
	fmt.Printf("gate: %d live sessions: %s\n", len(live), strings.Join(live, ", "))
	return nil
}

func serveGate(ctx context.Context, allow string, port int, key string) error {
	var ids []peer.ID
	for _, s := range strings.Split(allow, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		id, err := peer.Decode(s)
		if err != nil {
			return fmt.Errorf("-allow %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	g, err := newGate(peer.ID.String, peers.Config{Port: port, KeyFile: key}, ids...)
	if err != nil {
		return err
	}
	defer g.close()
	fmt.Printf("gate at %s admits %d peers; visit with:\n  go run ./examples/admission -role visitor -peer %s\n",
		peers.Short(g.p.ID()), len(ids), g.p.Addr())
	<-ctx.Done()
	return nil
}

func runVisitor(ctx context.Context, addr, key string) error {
	info, err := peers.ParsePeer(addr, "-role gate")
	if err != nil {
		return err
	}
	v, err := peers.New(peers.Config{KeyFile: key})
	if err != nil {
		return err
	}
	defer v.Close()
	fmt.Printf("visitor's peer ID: %s\n", v.ID())
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return visit(ctx, "visitor", v, *info)
}

// gate is a node that admits the peers on its list and offers them the
// broadcast "lobby", whose track "welcome" holds a greeting.
type gate struct {
	p    *peers.Peer
	done chan struct{} // closed when the IncomingSessions loop has ended
}

func newGate(name func(peer.ID) string, cfg peers.Config, allowed ...peer.ID) (*gate, error) {
	// admit runs before a session exists, concurrently for several peers.
	admit := func(_ context.Context, p peer.ID) error {
		if slices.Contains(allowed, p) {
			return nil
		}
		fmt.Printf("gate: rejected %s: %v (wire code %d)\n", name(p), notListed.Reason, notListed.Code)
		return notListed // its code and text close the peer's connection
	}
	p, err := peers.New(cfg, moq.WithAdmission(admit))
	if err != nil {
		return nil, err
	}
	g := &gate{p: p, done: make(chan struct{})}

	b := broadcast.New(broadcast.Config{})
	welcome, err := b.CreateTrack(broadcast.Track{Name: "welcome"})
	if err == nil {
		// The track's latest group stays cached: every subscriber gets it.
		err = welcome.WriteFrame([]byte("welcome to the lobby"))
	}
	if err == nil {
		_, err = p.Publish(context.Background(), "lobby", b.Consume())
	}
	if err != nil {
		g.p.Close()
		return nil, err
	}

	// IncomingSessions yields admitted sessions only: first those already
	// open when the loop starts, then each one admitted later. The loop
	// ends when the node shuts down.
	go func() {
		defer close(g.done)
		for s := range p.IncomingSessions() {
			fmt.Printf("gate: admitted %s (%s)\n", name(s.RemotePeer()), s.Version())
		}
	}()
	return g, nil
}

func (g *gate) close() {
	g.p.Close()
	<-g.done
}

// visit connects to the gate and reads the lobby's greeting, or reports
// how the gate turned the visitor away.
func visit(ctx context.Context, name string, v *peers.Peer, gate peer.AddrInfo) error {
	fmt.Printf("%s: visiting\n", name)
	s, err := v.Connect(ctx, gate)
	if err != nil {
		if turnedAway(name, err) {
			return nil
		}
		return err
	}
	// Subscribe waits for the gate to announce "lobby": an admitted peer
	// gets it at once, a rejected one sees its session end instead.
	welcome, err := s.Subscribe(ctx, "lobby", "welcome")
	if errors.Is(err, moq.ErrNotAnnounced) {
		<-s.Closed()
		if turnedAway(name, s.Err()) {
			return nil
		}
	}
	if err != nil {
		return err
	}
	defer welcome.Close()
	grp, err := welcome.NextGroup(ctx)
	if err != nil {
		return err
	}
	text, err := grp.ReadFrame(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("%s: admitted; the gate says %q\n", name, text)
	return nil
}

// turnedAway reports a connection the gate closed with a code, if err is one.
func turnedAway(name string, err error) bool {
	var ce *transport.ConnError
	if !errors.As(err, &ce) {
		return false
	}
	code := broadcast.Code(ce.Code)
	fmt.Printf("%s: turned away: session closed with code %d (%v), reason %q\n", name, ce.Code, code, ce.Reason)
	return true
}
