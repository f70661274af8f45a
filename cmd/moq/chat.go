package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

const chatUsage = `
usage: moq chat [--name NICK] [--room NAME] [--listen URL]... [--connect URL]...

Exchanges lines with the peers this one is connected to: each line of stdin
is sent to them, and their lines are printed on stdout as "<nick>: <line>";
"* <nick> joined" and "* <nick> left" go to stderr. Each peer publishes its
lines as the broadcast chat/<room>/<nick> (one group per line) and subscribes
to the others' it sees announced. Lines are not forwarded between peers, so
connect every pair (with moql://, one peer listens and the others connect to
it: they all talk to the listener). Ends at the end of stdin or on interrupt.
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
	case len(listens)+len(connects) == 0:
		return usagef("chat: give --listen URL and/or --connect URL")
	case *nick == "" || strings.Contains(*nick, "/"):
		return usagef("chat: --name must be non-empty and without '/'")
	case *room == "" || strings.Contains(*room, "/"):
		return usagef("chat: --room must be non-empty and without '/'")
	}
	log := nf.logger(std.stderr)
	prefix := broadcast.JoinPath("chat", *room)
	own := broadcast.JoinPath(prefix, *nick)

	n, err := newNode(nodeConfig{listens: listens, connects: connects, interest: []string{prefix},
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

	c := &chatRoom{io: std, prefix: prefix, own: own}
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

	lines := make(chan string)
	go readLines(std.stdin, lines) // ends with stdin; the process exits first on interrupt
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				// Let peers read the end of our track before hanging up.
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
	prefix string
	own    string
	mu     sync.Mutex // serialises output lines
	wg     sync.WaitGroup
}

// watch subscribes to every chat broadcast s announces, other than ours.
func (c *chatRoom) watch(ctx context.Context, s peerSession) {
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
