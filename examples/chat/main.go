// Chat exchanges lines of text between peers. Each peer publishes its own
// broadcast "chat/<peer-id>" with one track, "lines", that gets one group per
// line; it learns of the other peers' broadcasts from Session.Announced and
// subscribes to each of them.
//
// A scripted conversation between two peers in one process:
//
//	go run ./examples/chat
//
// Interactively, in two (or more) terminals on this machine: every line you
// type goes to the peers you are connected to, and theirs are printed.
//
//	go run ./examples/chat -role listen
//	go run ./examples/chat -role join -peer /ip4/127.0.0.1/udp/…/quic-v1/p2p/12D3KooW…
//
// Both print their address; a third peer may join either one or both (lines
// are not forwarded, so connect every pair that should talk). A peer holds
// its lines until another one listens. At the end of its input (Ctrl-D) it
// leaves: it ends its track, and each peer hangs up on it once it has read
// the last line (with -n N it first waits until it has heard N lines).
// Ctrl-C quits at once.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/examples/internal/peers"
	"github.com/moqp2p/moqp2p/moq"
)

func main() {
	role := flag.String("role", "demo", "demo (a scripted conversation in this process), listen or join")
	var join []string
	flag.Func("peer", "join: a peer's multiaddr, ending in /p2p/<peer-id> (repeatable)", func(s string) error {
		join = append(join, s)
		return nil
	})
	port := flag.Int("port", 0, "UDP port to listen on (0: any free port)")
	n := flag.Int("n", 0, "listen, join: before leaving, wait until `N` lines were heard")
	flag.Parse()

	peers.Main("chat", func(ctx context.Context) error {
		switch {
		case *role == "demo":
			return demo(ctx)
		case *role == "listen" || *role == "join" && len(join) > 0:
			return interactive(ctx, *port, join, *n)
		case *role == "join":
			return errors.New("-role join needs -peer ADDR")
		}
		return fmt.Errorf("-role %q: want demo, listen or join", *role)
	})
}

// demo runs two peers, alice and bob, through a short scripted conversation.
func demo(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	alice, err := newChatter(ctx, "alice", 0)
	if err != nil {
		return err
	}
	defer alice.close()
	bob, err := newChatter(ctx, "bob", 0)
	if err != nil {
		return err
	}
	defer bob.close()
	alice.know(bob)
	bob.know(alice)

	// Alice connects to bob; bob takes the session from IncomingSessions.
	s, err := alice.p.Connect(ctx, bob.p.Info())
	if err != nil {
		return err
	}
	alice.join(s)

	script := []struct {
		from, to *chatter
		text     string
	}{
		{alice, bob, "hi bob, it's alice"},
		{bob, alice, "hello alice! loud and clear"},
		{alice, bob, "this line took one moq-lite group"},
		{bob, alice, "bye!"},
	}
	for _, line := range script {
		line.from.print("> %s", line.text)
		if err := line.from.say(ctx, line.text); err != nil {
			return err
		}
		// Wait for the other side to print it before the next line.
		select {
		case <-line.to.heard:
		case <-ctx.Done():
			return fmt.Errorf("%s did not hear %q: %w", line.to.name, line.text, ctx.Err())
		}
	}
	alice.leave(ctx)
	return nil
}

// interactive chats with the peers in join, and any that connect to us,
// sending the lines of stdin.
func interactive(ctx context.Context, port int, join []string, n int) error {
	c, err := newChatter(ctx, "", port)
	if err != nil {
		return err
	}
	defer c.close()
	for _, addr := range join {
		s, err := c.p.Dial(ctx, addr)
		if err != nil {
			return err
		}
		c.join(s)
	}
	fmt.Printf("you are %s; others join with:\n  go run ./examples/chat -role join -peer %s\n", c.name, c.p.Addr())

	input := make(chan string)
	go func() { // ends with stdin; the process may exit first
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			input <- sc.Text()
		}
		close(input)
	}()
	for heard := 0; input != nil || heard < n; {
		select {
		case text, ok := <-input:
			if !ok {
				input = nil
				continue
			}
			if err := c.say(ctx, text); err != nil {
				return nil // interrupted while waiting for a listener
			}
		case <-c.heard:
			heard++
		case <-ctx.Done():
			return nil
		}
	}
	c.leave(ctx)
	return nil
}

// chatter is one peer in the chat: its own track of lines and the
// subscriptions to the others'.
type chatter struct {
	p      *peers.Peer
	name   string // ours, for display
	prefix string // put before every line printed
	lines  *broadcast.TrackProducer
	heard  chan string // every line heard, for the caller to count

	ctx    context.Context // ends at close: stops the subscriptions
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	names    map[peer.ID]string // others' display names; unknown peers show a short peer ID
	sessions []*moq.Session     // every session joined
}

// newChatter starts a peer that publishes the broadcast chat/<peer-id> with
// its track "lines" and listens to every peer that connects to it. With a
// name, the lines it prints start with it.
func newChatter(ctx context.Context, name string, port int) (*chatter, error) {
	// WithInterest: ask peers for their chat broadcasts only.
	p, err := peers.New(peers.Config{Port: port}, moq.WithInterest("chat"))
	if err != nil {
		return nil, err
	}
	c := &chatter{p: p, name: name, names: map[peer.ID]string{}, heard: make(chan string, 16)}
	if name == "" {
		c.name = peers.Short(p.ID())
	} else {
		c.prefix = "[" + name + "] "
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())

	b := broadcast.New(broadcast.Config{})
	if c.lines, err = b.CreateTrack(broadcast.Track{Name: "lines"}); err == nil {
		// Moq.Publish offers the broadcast to every session, now and later.
		_, err = p.Publish(ctx, "chat/"+p.ID().String(), b.Consume())
	}
	if err != nil {
		c.close()
		return nil, err
	}
	// IncomingSessions ends when the peer shuts down (in close).
	c.wg.Go(func() {
		for s := range p.IncomingSessions() {
			c.join(s)
		}
	})
	return c, nil
}

// close stops listening, shuts the peer down and waits for its goroutines.
func (c *chatter) close() {
	c.cancel()
	c.p.Close()
	c.wg.Wait()
}

// say sends one line: a group holding one frame. The first line waits until
// someone subscribed, since a new subscriber starts at the latest group.
func (c *chatter) say(ctx context.Context, text string) error {
	select {
	case <-c.lines.Used():
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.lines.WriteFrame([]byte(text))
}

// join subscribes to every chat broadcast the peer at the other end of s
// announces, now or later, until the session ends or c closes.
func (c *chatter) join(s *moq.Session) {
	c.mu.Lock()
	c.sessions = append(c.sessions, s)
	c.mu.Unlock()
	c.wg.Go(func() {
		for path, b := range s.Announced(c.ctx, "chat") {
			if b != nil { // nil: the broadcast at path ended
				c.wg.Go(func() { c.listen(s, path) })
			}
		}
	})
}

// leave ends our track, then keeps the sessions open until the peers have
// read it to its end and hung up (see listen), for at most 3 s: shutting
// down at once could cut our last lines off in flight.
func (c *chatter) leave(ctx context.Context) {
	_ = c.lines.Finish()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, s := range c.joined() {
		select {
		case <-s.Closed():
		case <-ctx.Done():
			return
		}
	}
}

// joined returns the sessions joined so far.
func (c *chatter) joined() []*moq.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sessions)
}

// listen prints the lines of the broadcast at path until it ends. A peer
// ends its track when it leaves; having read every line, we hang up on it.
func (c *chatter) listen(s *moq.Session, path string) {
	from := path
	if id, err := peer.Decode(strings.TrimPrefix(path, "chat/")); err == nil {
		from = c.nameOf(id)
	}
	lines, err := s.Subscribe(c.ctx, path, "lines")
	if err != nil {
		return
	}
	defer lines.Close()
	c.print("* %s joined", from)
	for {
		// RecvGroup returns every group, in the order they arrive: in a chat
		// every line counts (a clock would skip late ones with NextGroup).
		g, err := lines.RecvGroup(c.ctx)
		switch {
		case c.ctx.Err() != nil:
			return
		case errors.Is(err, io.EOF):
			c.print("* %s left", from)
			_ = s.Close(broadcast.CodeCancel, "bye")
			return
		case err != nil:
			select {
			case <-s.Closed():
				c.print("* %s hung up", from)
			default:
				c.print("* lost %s: %v", from, err)
			}
			return
		}
		text, err := g.ReadFrame(c.ctx)
		if err != nil {
			continue
		}
		c.print("%s: %s", from, text)
		select {
		case c.heard <- string(text):
		case <-c.ctx.Done():
			return
		}
	}
}

// know makes c call other by its name.
func (c *chatter) know(other *chatter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names[other.p.ID()] = other.name
}

func (c *chatter) nameOf(id peer.ID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name, ok := c.names[id]; ok {
		return name
	}
	return peers.Short(id)
}

// out serialises the chatters' printing.
var out sync.Mutex

func (c *chatter) print(format string, args ...any) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(c.prefix+format+"\n", args...)
}
