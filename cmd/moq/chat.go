package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/discovery"
)

const chatUsage = `
usage: moq chat [--name NICK] [--room NAME] [--listen URL]... [--connect URL]...
                [--bootstrap ADDR]... [--mdns]

Exchanges lines with the peers this one is connected to: each line of stdin
is sent to them, and their lines are printed on stdout as "<nick>: <line>";
"* <nick> joined" and "* <nick> left" go to stderr. Each peer publishes its
lines as the broadcast chat/<room>/<nick> (one group per line) and subscribes
to the others' it sees announced. Lines are not forwarded between peers, so
connect every pair (with moql://, one peer listens and the others connect to
it: they all talk to the listener). Ends at the end of stdin or on interrupt.

With --bootstrap, the peers of a room find each other in the DHT: each
provides chat/<room> there and opens a session to every other provider it
finds (looking again now and then). With --mdns, it opens a session to every
chat peer on the local network. Either way it listens on
/ip4/0.0.0.0/udp/0/quic-v1 unless --listen gives a multiaddr.
`

const chatTrack = "messages"

// runChat is `moq chat`.
func runChat(ctx context.Context, std stdio, args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	setUsage(fs, chatUsage)
	var nf netFlags
	nf.register(fs)
	host, _ := os.Hostname()
	nick := fs.String("name", fmt.Sprintf("%s-%d", strings.Split(host, ".")[0], os.Getpid()), "your `NICK`")
	room := fs.String("room", "lobby", "room `NAME`")
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	listens, connects, err := nf.endpoints(-1)
	switch {
	case err != nil:
		return err
	case len(listens)+len(connects) == 0 && !nf.discovers():
		return usagef("chat: give --listen URL, --connect URL and/or --bootstrap ADDR")
	case *nick == "" || strings.Contains(*nick, "/"):
		return usagef("chat: --name must be non-empty and without '/'")
	case *room == "" || strings.Contains(*room, "/"):
		return usagef("chat: --room must be non-empty and without '/'")
	}
	log := nf.logger(std.stderr)
	prefix := broadcast.JoinPath("chat", *room)
	own := broadcast.JoinPath(prefix, *nick)

	listens = nf.reachable(listens)
	n, err := newNode(ctx, nodeConfig{listens: listens, connects: connects, interest: []string{prefix},
		incoming: len(listens) > 0, net: &nf, log: log})
	if err != nil {
		return err
	}
	defer n.close()
	prod := broadcast.New(broadcast.Config{})
	defer prod.Finish()
	tp, err := prod.CreateTrack(broadcast.Track{Name: chatTrack})
	if err != nil {
		return err
	}
	if err := n.publish(ctx, own, prod.Consume()); err != nil {
		return err
	}

	c := &chatRoom{io: std, log: log, prefix: prefix, own: own, watching: map[string]bool{}}
	cctx, cancel := context.WithCancel(ctx)
	defer c.wg.Wait()
	defer cancel()
	for _, e := range connects {
		s, err := n.connect(ctx, e)
		if err != nil {
			return err
		}
		c.watch(cctx, s)
	}
	n.printListening(std.stderr)
	if len(listens) > 0 {
		c.wg.Go(func() {
			for {
				select {
				case s := <-n.incoming:
					c.watch(cctx, s)
				case <-cctx.Done():
					return
				}
			}
		})
	}
	if nf.discovers() {
		// Sessions that discovery opens, either way: watch them all.
		c.wg.Go(func() { c.watchAll(cctx, n) })
	}
	if n.p2p != nil && n.p2p.d != nil {
		c.wg.Go(func() { c.meet(cctx, n.p2p) })
	}

	lines := make(chan string)
	go readLines(std.stdin, lines) // ends with stdin; the process exits first on interrupt
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				// Let peers read the end of our track before hanging up: until
				// every subscriber has left, at most 2 s (a subscriber that
				// stopped reading must not hold the exit up; it misses the end).
				_ = tp.Finish()
				select {
				case <-tp.Unused():
				case <-time.After(2 * time.Second):
				case <-ctx.Done():
				}
				return nil
			}
			if err := tp.WriteFrame([]byte(line)); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func readLines(r io.Reader, out chan<- string) {
	defer close(out)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		out <- sc.Text()
	}
}

// chatRoom follows the peers' chat broadcasts on every session.
type chatRoom struct {
	io     stdio
	log    *slog.Logger
	prefix string
	own    string
	mu     sync.Mutex // serialises output lines
	wg     sync.WaitGroup

	wmu      sync.Mutex
	watching map[string]bool // peers with a watched session
}

// watch subscribes to every chat broadcast s announces, other than ours,
// unless a session with the same peer is watched already (two peers that
// find each other may both dial).
func (c *chatRoom) watch(ctx context.Context, s peerSession) {
	c.wmu.Lock()
	dup := c.watching[s.Peer()]
	c.watching[s.Peer()] = true
	c.wmu.Unlock()
	if dup {
		return
	}
	c.wg.Go(func() {
		select {
		case <-s.Done():
		case <-ctx.Done():
		}
		c.wmu.Lock()
		delete(c.watching, s.Peer())
		c.wmu.Unlock()
	})
	c.wg.Go(func() {
		following := map[string]bool{}
		for path, b := range s.Announced(ctx, c.prefix) {
			if b == nil {
				delete(following, path) // if it comes back, follow it again
				continue
			}
			if path == c.own || following[path] {
				continue
			}
			following[path] = true
			c.wg.Go(func() { c.follow(ctx, s, path) })
		}
	})
}

// follow prints one peer's lines until its track or the session ends.
func (c *chatRoom) follow(ctx context.Context, s peerSession, path string) {
	nick, _ := broadcast.StripPrefix(path, c.prefix)
	tc, err := s.Subscribe(ctx, path, chatTrack)
	if err != nil {
		if ctx.Err() == nil {
			c.printf(c.io.stderr, "* cannot follow %s: %v\n", nick, err)
		}
		return
	}
	defer tc.Close()
	c.printf(c.io.stderr, "* %s joined\n", nick)
	for {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.printf(c.io.stderr, "* %s left\n", nick)
			}
			return
		}
		for {
			f, err := g.ReadFrame(ctx)
			if err != nil {
				break // the group's end, or it was cut short
			}
			c.printf(c.io.stdout, "%s: %s\n", nick, f)
		}
	}
}

func (c *chatRoom) printf(w io.Writer, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(w, format, args...)
}

// watchAll watches every session the node has, now and then: those that
// discovery opens (to the peers meet finds, or mDNS). There is no event for
// a dialed session, so it looks every 250 ms: a new peer's lines start to
// show at most that late (watch keeps them from then on).
func (c *chatRoom) watchAll(ctx context.Context, n *node) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, s := range n.sessions(ctx) {
			c.watch(ctx, s)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// meet provides the room (its prefix, chat/<room>) in the DHT and opens a
// session to every other peer that provides it, looking again with pauses
// growing to maxMeetPause.
func (c *chatRoom) meet(ctx context.Context, p *p2pNode) {
	prov := discovery.NewProvider(p.d, discovery.ProviderConfig{Logger: c.log})
	defer prov.Close()
	prov.Provide(ctx, c.prefix)
	// The DHT tells nobody of a new provider: look again, at first soon
	// (peers that start together), then less often so that an idle room
	// costs one lookup per maxMeetPause.
	pause := 250 * time.Millisecond
	for {
		var wg sync.WaitGroup
		for info := range discovery.Find(ctx, p.d, c.prefix) {
			if info.ID == p.h.ID() || p.h.Network().Connectedness(info.ID) == network.Connected && c.watched(info.ID.String()) {
				continue
			}
			wg.Go(func() {
				if _, err := p.m.Connect(ctx, info); err != nil && ctx.Err() == nil {
					c.log.Debug("chat peer: no session", "peer", info.ID, "err", err)
				}
			})
		}
		wg.Wait()
		select {
		case <-time.After(pause):
			pause = min(2*pause, maxMeetPause)
		case <-ctx.Done():
			return
		}
	}
}

// maxMeetPause bounds the pause between a chat peer's DHT lookups.
const maxMeetPause = 5 * time.Second

func (c *chatRoom) watched(peer string) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.watching[peer]
}
