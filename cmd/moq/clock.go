package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

const clockUsage = `
usage: moq clock pub [--broadcast NAME] [--track NAME] (--listen URL... | --connect URL)
       moq clock sub [--broadcast NAME] [--track NAME] (--connect URL | --listen URL) [--count N]

A clock broadcast, as moq-dev's moq-clock: the publisher starts a group each
second holding one frame, the local time as text ("2006-01-02 15:04:05"); the
subscriber prints each frame it gets as a line, the newest only (a late group
is skipped, as live media does). Both run until interrupted; sub also stops
after --count lines or when the publisher ends.
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
	role := ""
	if len(args) > 0 && (args[0] == "pub" || args[0] == "sub") {
		role, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	if role == "" {
		return usagef("clock: want clock pub or clock sub (see moq clock -h)")
	}
	listens, connects, err := nf.endpoints(1)
	switch {
	case err != nil:
		return err
	case len(listens)+len(connects) == 0:
		return usagef("clock %s: give --listen URL or --connect URL", role)
	case role == "sub" && len(listens) > 0 && len(connects) > 0:
		return usagef("clock sub: give --connect or --listen, not both")
	}
	log := nf.logger(std.stderr)
	cfg := nodeConfig{listens: listens, connects: connects, net: &nf, log: log}
	if role == "pub" {
		cfg.interest = []string{}
	} else {
		cfg.interest, cfg.incoming = interestFor(*name), len(listens) > 0
	}
	n, err := newNode(cfg)
	if err != nil {
		return err
	}
	defer n.close()
	if role == "pub" {
		return clockPub(ctx, std, n, *name, *track, connects)
	}
	return clockSub(ctx, std, n, *name, *track, *count, connects)
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

func clockSub(ctx context.Context, std stdio, n *node, name, track string, count int, connects []endpoint) error {
	var s peerSession
	var tc *broadcast.TrackConsumer
	var err error
	if len(connects) > 0 {
		if s, err = n.connect(ctx, connects[0]); err != nil {
			return err
		}
		tc, err = subscribeWithin(ctx, s, name, track, n.cfg.net.timeout)
	} else {
		n.printListening(std.stderr)
		s, tc, err = awaitAndSubscribe(ctx, n, name, track)
	}
	if err != nil {
		return err
	}
	defer s.Close("done")
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
