package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/moq"
)

// source is where a subscribing command gets its broadcast: a --connect
// peer, a --ticket's peer, any peer that publishes the name (found through
// the DHT or mDNS), or a peer that connects to a --listen address.
type source struct {
	connects []endpoint
	ticket   *discovery.Ticket
	byName   bool
	name     string
	track    string
}

// parseSource checks the flags that say where a subscriber gets the
// broadcast. name is --broadcast ("" if not given), ticket --ticket.
func parseSource(cmd string, nf *netFlags, listens, connects []endpoint, name, ticket string) (source, error) {
	src := source{connects: connects, name: name}
	if ticket != "" {
		t, err := discovery.ParseTicket(ticket)
		switch {
		case err != nil:
			return src, usagef("%s: --ticket: %v", cmd, err)
		case len(connects) > 0 || len(listens) > 0:
			return src, usagef("%s: --ticket names the peer: give no --connect or --listen", cmd)
		case name != "":
			return src, usagef("%s: --ticket names the broadcast: give no --broadcast", cmd)
		case len(t.Addrs) == 0 && !nf.discovers():
			return src, usagef("%s: a short ticket (<peer-id>/<broadcast>) needs --bootstrap ADDR (or --mdns) to find the peer; "+
				"or use the long one (moq…)", cmd)
		}
		src.ticket, src.name = &t, t.Broadcast
		return src, nil
	}
	switch {
	case name == "":
		return src, usagef("%s: --broadcast is required (or give --ticket), as in: moq %s --broadcast demo --connect moql://127.0.0.1:4443 --insecure", cmd, cmd)
	case broadcast.CleanPath(name) == "":
		return src, usagef("%s: --broadcast %q names no broadcast; give a path such as demo or room/cam", cmd, name)
	case len(connects) > 0 && len(listens) > 0:
		return src, usagef("%s: give --connect or --listen, not both", cmd)
	case len(connects) == 0 && nf.discovers():
		src.byName = true
	case len(connects)+len(listens) == 0:
		return src, usagef("%s: give --connect URL, --listen URL, or --bootstrap ADDR (or --mdns) to find the broadcast by name", cmd)
	}
	return src, nil
}

// dials are the ticket's addresses, for the node's choice of sockets.
func (src source) dials() []endpoint {
	if src.ticket == nil {
		return nil
	}
	var out []endpoint
	for _, a := range src.ticket.Addrs {
		out = append(out, endpoint{raw: a.String(), kind: kindP2P, maddr: a, peer: src.ticket.Peer})
	}
	return out
}

// subscribe opens the subscription. s is the session it runs on, nil when
// the node picked it (by name); rtt reports that session's round-trip time.
// Listening lines, if any, go to w before it waits for a peer.
func (n *node) subscribe(ctx context.Context, w io.Writer, src source) (s peerSession, tc *broadcast.TrackConsumer, rtt func() time.Duration, err error) {
	timeout := n.cfg.net.timeout
	switch {
	case len(src.connects) > 0:
		if s, err = n.connect(ctx, src.connects[0]); err == nil {
			tc, err = subscribeWithin(ctx, s, src.name, src.track, timeout)
		}
	case src.ticket != nil:
		if s, err = n.resolve(ctx, *src.ticket); err == nil {
			tc, err = subscribeWithin(ctx, s, src.name, src.track, timeout)
		}
	case src.byName:
		n.printListening(w)
		tc, err = n.subscribeByName(ctx, src.name, src.track)
	default:
		n.printListening(w)
		s, tc, err = awaitAndSubscribe(ctx, n, src.name, src.track)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	rtt = func() time.Duration {
		if s != nil {
			return s.RTT()
		}
		for _, s := range n.sessions(ctx) {
			return s.RTT()
		}
		return 0
	}
	return s, tc, rtt, nil
}

// resolve opens a session to a ticket's peer, at the ticket's addresses or
// those the DHT (or mDNS) finds, giving up after --timeout.
func (n *node) resolve(ctx context.Context, t discovery.Ticket) (peerSession, error) {
	d := n.cfg.net.timeout
	started := time.Now()
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	s, err := n.p2p.m.Resolve(rctx, t)
	switch {
	case err == nil:
		n.log.Debug("connected", "peer", s.RemotePeer(), "via", (&p2pSession{s: s}).Via())
		return &p2pSession{s: s}, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) || rctx.Err() != nil:
		return nil, fmt.Errorf("ticket peer %s: no answer within %s (is its moq pub still running?)", t.Peer, waited(started, d))
	}
	return nil, fmt.Errorf("ticket peer %s: %s", t.Peer, oneLine(err.Error()))
}

// subscribeByName subscribes to a track of the broadcast called name,
// published by whichever peer the DHT (or mDNS) finds, within --timeout.
func (n *node) subscribeByName(ctx context.Context, name, track string) (*broadcast.TrackConsumer, error) {
	d := n.cfg.net.timeout
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	n.log.Debug("looking the broadcast up", "broadcast", name, "key", discovery.Key(name).String())
	tc, err := n.p2p.m.SubscribeWith(sctx, name, track, subscribeOptions)
	if err != nil {
		return nil, n.byNameError(ctx, name, err)
	}
	return tc, nil
}

// byNameError is a failed subscription by name as one clear sentence.
func (n *node) byNameError(ctx context.Context, name string, err error) error {
	d := n.cfg.net.timeout
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, moq.ErrNoProviders):
		n.log.Debug("no provider served the broadcast", "broadcast", name, "err", err)
		msg := fmt.Sprintf("broadcast %q: no peer publishing it found within %s", name, d)
		// The library's error wraps ErrNoProviders, ctx's error and, if
		// some provider was tried, the last attempt's error.
		if u, ok := err.(interface{ Unwrap() []error }); ok && len(u.Unwrap()) == 3 {
			msg += fmt.Sprintf(" (last attempt: %s)", oneLine(u.Unwrap()[2].Error()))
		}
		return errors.New(msg)
	}
	return fmt.Errorf("subscribe to %q: %s", name, oneLine(err.Error()))
}

// setFlag reports whether the flag called name was given.
func setFlag(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
