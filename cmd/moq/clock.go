package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

const clockUsage = `
usage: moq clock pub [--broadcast NAME] [--track NAME] (--listen URL... | --connect URL | --bootstrap ADDR...)
       moq clock sub [--broadcast NAME] [--track NAME] (--connect URL | --listen URL | --bootstrap ADDR...) [--count N]
       moq clock sub --ticket TICKET [--bootstrap ADDR...] [--count N]

A clock broadcast, as moq-dev's moq-clock: the publisher starts a group each
second holding one frame, the local time as text ("2006-01-02 15:04:05"); the
subscriber prints each frame it gets as a line, the newest only (a late group
is skipped, as live media does). Both run until interrupted; sub also stops
after --count lines or when the publisher ends.

With --bootstrap, pub provides the broadcast in the DHT and sub, without
--connect, finds it there by name (see moq pub -h and moq sub -h).
`

// runClock is `moq clock pub|sub`.
func runClock(ctx context.Context, std stdio, args []string) error {
	fs := flag.NewFlagSet("clock", flag.ContinueOnError)
	setUsage(fs, clockUsage)
	var nf netFlags
	nf.register(fs)
	name := fs.String("broadcast", "clock", "broadcast `NAME`")
	track := fs.String("track", "seconds", "track `NAME`")
	count := fs.Int("count", 0, "sub: exit after `N` lines (0: run until interrupted)")
	ticket := fs.String("ticket", "", "sub: subscribe to the clock at the peer this `TICKET` names (clock pub prints it)")
	role := ""
	switch {
	case len(args) > 0 && (args[0] == "pub" || args[0] == "sub"):
		role, args = args[0], args[1:]
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		return usagef("clock: want clock pub or clock sub, not clock %s (see moq clock -h)", args[0])
	}
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	if role == "" {
		return usagef("clock: want clock pub or clock sub (see moq clock -h)")
	}
	listens, connects, err := nf.endpoints(1)
	if err != nil {
		return err
	}
	cfg := nodeConfig{listens: listens, connects: connects, net: &nf}
	var src source
	if role == "pub" {
		switch {
		case *ticket != "":
			return usagef("clock pub: --ticket is for clock sub")
		case len(listens)+len(connects) == 0 && !nf.discovers():
			return usagef("clock pub: give --listen URL, --connect URL or --bootstrap ADDR")
		}
		cfg.listens, cfg.interest = nf.reachable(listens), []string{}
	} else {
		bname := *name
		if *ticket != "" && !setFlag(fs, "broadcast") {
			bname = "" // the ticket names it
		}
		if src, err = parseSource("clock sub", &nf, listens, connects, bname, *ticket); err != nil {
			return err
		}
		src.track = *track
		cfg.interest, cfg.incoming, cfg.dials = interestFor(src.name), len(listens) > 0 && !src.byName, src.dials()
	}
	cfg.log = nf.logger(std.stderr)
	n, err := newNode(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.close()
	if role == "pub" {
		return clockPub(ctx, std, n, *name, *track, connects)
	}
	return clockSub(ctx, std, n, src, *count)
}

func clockPub(ctx context.Context, std stdio, n *node, name, track string, connects []endpoint) error {
	prod := broadcast.New(broadcast.Config{})
	defer prod.Finish()
	tp, err := prod.CreateTrack(broadcast.Track{Name: track})
	if err != nil {
		return err
	}
	dialed, peerGone, err := n.publishAndDial(ctx, name, prod.Consume(), connects, std.stderr)
	if err != nil {
		return err
	}
	defer func() { _ = tp.Finish() }()
	for {
		now := time.Now()
		if err := tp.WriteFrame([]byte(now.Format(time.DateTime))); err != nil {
			return err
		}
		select {
		case <-time.After(now.Truncate(time.Second).Add(time.Second).Sub(now)):
		case <-peerGone:
			if hungUp(dialed) {
				return nil // the subscriber is done
			}
			return sessionEnded(dialed)
		case <-ctx.Done():
			return nil
		}
	}
}

func clockSub(ctx context.Context, std stdio, n *node, src source, count int) error {
	s, tc, _, err := n.subscribe(ctx, std.stderr, src)
	if err != nil {
		return err
	}
	if s != nil {
		defer s.Close("done")
	}
	defer tc.Close()
	for lines := 0; count == 0 || lines < count; {
		g, err := tc.NextGroup(ctx)
		switch {
		case errors.Is(err, io.EOF), ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("subscription ended: %w", err)
		}
		f, err := g.ReadFrame(ctx)
		if err != nil {
			continue // an empty or aborted group: wait for the next second
		}
		fmt.Fprintf(std.stdout, "%s\n", f)
		lines++
	}
	return nil
}
