package main

// P8 (a relay hop against a direct session, same run) and P9 (failover
// time), all in this process on loopback.

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

func newRelayNode() (*node, error) { return newNodeWith(moq.WithForwarding(moq.Forwarding{})) }

// p8Groups groups of 100 frames of 1 KiB: 100 MiB per transfer (a quarter
// with -quick).
func p8Groups(quick bool) int {
	if quick {
		return 256
	}
	return 1024
}

func runRelayHop(ctx context.Context, cfg config) []*line {
	groups := p8Groups(cfg.quick)
	logf("P8: %d groups of 100 × 1 KiB, through one relay and direct", groups)
	var relayMBs, directMBs, relayCPU, directCPU sample
	for run := range cfg.runs {
		mbs, cpu, err := hopOnce(ctx, groups, true)
		if err != nil {
			logf("P8 relay run %d: %v", run+1, err)
			continue
		}
		dmbs, dcpu, err := hopOnce(ctx, groups, false)
		if err != nil {
			logf("P8 direct run %d: %v", run+1, err)
			continue
		}
		relayMBs, relayCPU = append(relayMBs, mbs), append(relayCPU, cpu)
		directMBs, directCPU = append(directMBs, dmbs), append(directCPU, dcpu)
		logf("P8 run %d: relay %.0f MB/s (%.2f CPU s/GiB), direct %.0f MB/s (%.2f CPU s/GiB)", run+1, mbs, cpu, dmbs, dcpu)
	}
	note := "raw column: the direct session in the same run; CPU is the whole process (publisher, relay and subscriber)"
	return []*line{
		{Row: "P8", Metric: "throughput through one relay, MB/s", Ours: relayMBs, Raw: directMBs, Note: note, Target: "≥ 0.8× direct", Check: atLeast((*line).vsRaw, 0.8)},
		{Row: "P8", Metric: "CPU per GiB delivered, s", Ours: relayCPU, Raw: directCPU, Note: "a relay hop adds a receive and a send: about 2× a direct session's total is the expectation"},
	}
}

// hopOnce moves groups from a publisher to a subscriber, through a relay
// or directly, keeping at most 64 groups in flight so that the live track
// drops none, and returns MB/s and CPU seconds per GiB.
func hopOnce(ctx context.Context, groups int, relayed bool) (float64, float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	pub, err := newNode()
	if err != nil {
		return 0, 0, err
	}
	defer pub.close()
	sub, err := newNode()
	if err != nil {
		return 0, 0, err
	}
	defer sub.close()
	up := pub
	if relayed {
		r, err := newRelayNode()
		if err != nil {
			return 0, 0, err
		}
		defer r.close()
		if _, err := r.Connect(ctx, pub.info()); err != nil {
			return 0, 0, err
		}
		up = r
	}
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "data"})
	if _, err := pub.Publish(ctx, "p8", b.Consume()); err != nil {
		return 0, 0, err
	}
	if _, err := sub.Connect(ctx, up.info()); err != nil {
		return 0, 0, err
	}
	tc, err := sub.Subscribe(ctx, "p8", "data")
	if err != nil {
		return 0, 0, err
	}
	defer tc.Close()
	// Through a relay, SUBSCRIBE_OK comes before the relay's own upstream
	// subscription reaches the publisher: start once the publisher's track
	// has its subscriber, or the first groups go to nobody.
	select {
	case <-tp.Used():
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	payload := make([]byte, 1024)
	frames := make([][]byte, 100)
	for i := range frames {
		frames[i] = payload
	}
	received := make(chan uint64, groups)
	go func() {
		for {
			g, err := tc.RecvGroup(ctx)
			if err != nil {
				return
			}
			for {
				if _, err := g.ReadFrame(ctx); err != nil {
					break
				}
			}
			received <- g.Sequence()
		}
	}()
	cpu0, start := cpuTime(), time.Now()
	got := 0
	for seq := range groups {
		for seq-got >= 64 {
			select {
			case <-received:
				got++
			case <-ctx.Done():
				return 0, 0, fmt.Errorf("after %d groups: %w", got, ctx.Err())
			}
		}
		if err := tp.WriteGroup(uint64(seq), frames...); err != nil {
			return 0, 0, err
		}
	}
	for got < groups {
		select {
		case <-received:
			got++
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("after %d groups: %w", got, ctx.Err())
		}
	}
	d, cpu := time.Since(start), cpuTime()-cpu0
	bytes := float64(groups * 100 * 1024)
	return bytes / d.Seconds() / 1e6, cpu.Seconds() / (bytes / (1 << 30)), nil
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
		Note:   "the relay's sessions are closed: dead-peer detection (QUIC idle timeout) not included",
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
