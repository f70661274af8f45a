package main

// P8 (a relay hop against a direct session, same run; its processes are
// in relay_procs.go) and P9 (failover time, in this process), on loopback.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/moq"
)

func newNodeWith(opts ...moq.Option) (*node, error) {
	h, q, err := newHost()
	if err != nil {
		return nil, err
	}
	m, err := moq.New(h, append([]moq.Option{moq.WithQUIC(q), moq.WithLogger(quietLogger()), moq.WithShutdownGrace(time.Second)}, opts...)...)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return &node{Moq: m, h: h}, nil
}

func newRelayNode() (*node, error) { return newCachedRelayNode(0) }

// newCachedRelayNode is a relay whose track caches (each forwarded track's
// and that of the subscription feeding it) hold at most cacheMiB MiB of
// groups besides the latest; 0 keeps the defaults (64 MiB or 5 s).
func newCachedRelayNode(cacheMiB int) (*node, error) {
	if cacheMiB <= 0 {
		return newNodeWith(moq.WithForwarding(moq.Forwarding{}))
	}
	l := broadcast.Limits{CacheMaxBytes: int64(cacheMiB) << 20}
	return newNodeWith(moq.WithForwarding(moq.Forwarding{Limits: l}), moq.WithLimits(moq.Limits{Model: l}))
}

// p8Groups groups of 100 frames of 1 KiB: 100 MiB per transfer (a quarter
// with -quick; -p8-groups sets it).
func p8Groups(quick bool) int {
	if p8GroupsFlag > 0 {
		return p8GroupsFlag
	}
	if quick {
		return 256
	}
	return 1024
}

func runRelayHop(ctx context.Context, cfg config) []*line {
	groups := p8Groups(cfg.quick)
	logf("P8: %d groups of 100 × 1 KiB, through one relay and direct, each node a process (ours, then plain quic-go)", groups)
	var relayMBs, directMBs, relayCPU, pubCPU, rawRelayMBs, rawDirectMBs, rawRelayCPU, rawPubCPU sample
	for run := range cfg.runs {
		var rs [4]hopResult
		var err error
		for i, c := range []struct{ relayed, raw bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
			if rs[i], err = hopProcs(ctx, groups, c.relayed, c.raw); err != nil {
				logf("P8 run %d (relayed %v, raw %v): %v", run+1, c.relayed, c.raw, err)
				break
			}
		}
		if err != nil {
			continue
		}
		relayMBs, directMBs = append(relayMBs, rs[0].mbs), append(directMBs, rs[1].mbs)
		relayCPU, pubCPU = append(relayCPU, rs[0].relayCPU), append(pubCPU, rs[1].pubCPU)
		rawRelayMBs, rawDirectMBs = append(rawRelayMBs, rs[2].mbs), append(rawDirectMBs, rs[3].mbs)
		rawRelayCPU, rawPubCPU = append(rawRelayCPU, rs[2].relayCPU), append(rawPubCPU, rs[3].pubCPU)
		logf("P8 run %d: ours relay %.0f MB/s (relay %.2f, its publisher %.2f CPU s/GiB), direct %.0f MB/s (publisher %.2f); quic-go relay %.0f MB/s (relay %.2f, publisher %.2f), direct %.0f MB/s (publisher %.2f)",
			run+1, rs[0].mbs, rs[0].relayCPU, rs[0].pubCPU, rs[1].mbs, rs[1].pubCPU, rs[2].mbs, rs[2].relayCPU, rs[2].pubCPU, rs[3].mbs, rs[3].pubCPU)
	}
	return []*line{
		{Row: "P8", Metric: "throughput through one relay, MB/s", Ours: relayMBs, Raw: directMBs, Target: "≥ 0.8× direct", Check: atLeast((*line).vsRaw, 0.8),
			Note: "raw column: the same publisher and subscriber linked directly, same run; publisher and relay are processes of their own"},
		{Row: "P8", Metric: "relay process CPU per GiB forwarded, s", Ours: relayCPU, Raw: pubCPU, Target: "≤ 1.3× direct publisher", Check: atMost((*line).vsRaw, 1.3),
			Note: "raw column: the direct publisher's process"},
		{Row: "P8", Metric: "plain quic-go relay process CPU per GiB, s", Ours: rawRelayCPU, Raw: rawPubCPU,
			Note: "baseline: a quic-go process copying each received stream into a stream to its subscriber, against a quic-go publisher; the ratio is what a relay costs without moq"},
		{Row: "P8", Metric: "our relay against the quic-go relay, CPU per GiB, s", Ours: relayCPU, Raw: rawRelayCPU,
			Note: "raw column: the plain quic-go relay process"},
		{Row: "P8", Metric: "plain quic-go throughput through its relay, MB/s", Ours: rawRelayMBs, Raw: rawDirectMBs,
			Note: "raw column: the quic-go publisher and subscriber linked directly"},
	}
}

func runFailover(ctx context.Context, cfg config) []*line {
	logf("P9: failover between two relays, the active one's sessions closed")
	var gaps sample
	for run := range cfg.runs {
		gap, err := failoverOnce(ctx)
		if err != nil {
			logf("P9 run %d: %v", run+1, err)
			continue
		}
		gaps = append(gaps, float64(gap)/float64(time.Millisecond))
		logf("P9 run %d: %.1f ms between the last group before and the first after", run+1, gaps[len(gaps)-1])
	}
	return []*line{{Row: "P9", Metric: "failover gap at 100 groups/s, ms", Ours: gaps,
		Note:   "the relay's sessions are closed: dead-peer detection (≤ 3 s by default) not included",
		Target: "≤ 500", Check: func(l *line) any {
			if len(l.Ours) == 0 {
				return nil
			}
			return l.Ours.median() <= 500
		}}}
}

// failoverOnce: a publisher, two relays, a subscriber linked to both;
// groups every 10 ms; the relay in use shuts down.
func failoverOnce(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pub, err := newNode()
	if err != nil {
		return 0, err
	}
	defer pub.close()
	var relays []*node
	for range 2 {
		r, err := newRelayNode()
		if err != nil {
			return 0, err
		}
		defer r.close()
		if _, err := r.Connect(ctx, pub.info()); err != nil {
			return 0, err
		}
		relays = append(relays, r)
	}
	sub, err := newRelayNode()
	if err != nil {
		return 0, err
	}
	defer sub.close()
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "data"})
	if _, err := pub.Publish(ctx, "p9", b.Consume()); err != nil {
		return 0, err
	}
	wait := func(what string, cond func() bool) error {
		for !cond() {
			select {
			case <-time.After(5 * time.Millisecond):
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", what, ctx.Err())
			}
		}
		return nil
	}
	for _, r := range relays {
		if err := wait("relays forwarding", func() bool { return r.Forwarded().Get("p9") != nil }); err != nil {
			return 0, err
		}
	}
	// The first link is the route in use (the older of equals).
	if _, err := sub.Connect(ctx, relays[0].info()); err != nil {
		return 0, err
	}
	if err := wait("the first route", func() bool { return sub.Forwarded().Get("p9") != nil }); err != nil {
		return 0, err
	}
	if _, err := sub.Connect(ctx, relays[1].info()); err != nil {
		return 0, err
	}
	if err := wait("the second route", func() bool { st, _ := sub.ForwardStats(ctx); return st.Routes == 2 }); err != nil {
		return 0, err
	}
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for seq := uint64(0); ctx.Err() == nil; seq++ {
			_ = tp.WriteGroup(seq, []byte("frame"))
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}()
	tc, err := sub.Subscribe(ctx, "p9", "data")
	if err != nil {
		return 0, err
	}
	defer tc.Close()
	// The gap is the longest pause between two groups around the kill.
	var at []time.Time
	for i := range 80 {
		if i == 50 {
			_ = relays[0].Shutdown(ctx)
		}
		if _, err := tc.NextGroup(ctx); err != nil {
			return 0, errors.Join(fmt.Errorf("group %d (the relay went at 50)", i), err)
		}
		at = append(at, time.Now())
	}
	var gap time.Duration
	for i := 40; i < len(at); i++ {
		gap = max(gap, at[i].Sub(at[i-1]))
	}
	return gap, nil
}
