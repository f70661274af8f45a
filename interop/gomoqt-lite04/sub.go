package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qumo-dev/gomoqt/moqt"
)

// endGrace: after the publisher's FIN on the SUBSCRIBE stream, group streams already in flight may
// still arrive, so the track counts as ended once no group was active for this long. With -count,
// reading also goes on for this long after the N-th frame, so that groups handed over late (gomoqt
// hands groups over in arrival order, not sequence order) are not missed.
const endGrace = 200 * time.Millisecond

type receivedGroup struct {
	seq      uint64
	frames   [][]byte
	n, bytes uint64 // -bench: frames counted, not kept
}

// collector keeps every received group and, at the end, hashes the payloads ordered by
// (group sequence, frame index). gomoqt's AcceptGroup hands groups over in the order its
// per-stream goroutines decode the GROUP headers, which can be far from sequence order (hundreds
// of groups apart with one-frame groups), so groups are read concurrently and the order is fixed
// afterwards. With a limit, only the first limit frames in that order count.
type collector struct {
	groups []receivedGroup
}

func (c *collector) result(limit uint64) *result {
	sort.SliceStable(c.groups, func(a, b int) bool { return c.groups[a].seq < c.groups[b].seq })
	h := sha256.New()
	var r result
	for _, g := range c.groups {
		if limit > 0 && r.Frames >= limit {
			break
		}
		if g.frames == nil && g.n > 0 { // -bench: counted only
			take := g.n
			if limit > 0 {
				take = min(take, limit-r.Frames)
			}
			r.Frames += take
			r.Bytes += g.bytes / g.n * take
			r.Groups++
			continue
		}
		for _, p := range g.frames {
			if limit > 0 && r.Frames >= limit {
				break
			}
			h.Write(p)
			r.Frames++
			r.Bytes += uint64(len(p))
		}
		r.Groups++
	}
	r.SHA256 = hex.EncodeToString(h.Sum(nil))
	return &r
}

type groupResult struct {
	gr       *moqt.GroupReader
	frames   [][]byte
	n, bytes uint64 // frames and bytes read
	err      error  // nil: the group ended cleanly (FIN)
}

// subscribe optionally waits for the broadcast's ANNOUNCE, subscribes and reads the track.
func subscribe(ctx context.Context, sess *moqt.Session, o options) (*result, error) {
	if o.announce {
		ar, err := sess.AcceptAnnounce("/")
		if err != nil {
			return nil, fmt.Errorf("announce: %w", err)
		}
		defer ar.Close()
		for {
			ann, err := ar.ReceiveAnnouncement(ctx)
			if err != nil {
				return nil, fmt.Errorf("waiting for ANNOUNCE of %s: %w", o.broadcast, err)
			}
			logf("ANNOUNCE %s active=%v", ann.BroadcastPath(), ann.IsActive())
			if string(ann.BroadcastPath()) == o.broadcast && ann.IsActive() {
				break
			}
		}
	}
	start := time.Now()
	var lastFrame atomic.Int64 // -bench: when the last counted frame arrived (UnixNano)
	tr, err := sess.Subscribe(ctx, moqt.BroadcastPath(o.broadcast), moqt.TrackName(o.track), nil)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s %s: %w", o.broadcast, o.track, err)
	}
	defer tr.Close()
	logf("subscribed %s %s", o.broadcast, o.track)

	actx, stopAccept := context.WithCancel(ctx)
	accepted := make(chan *moqt.GroupReader)
	acceptErr := make(chan error, 1)
	accepting := true
	defer func() { // before tr.Close: gomoqt's TrackReader.Close races with a running AcceptGroup
		stopAccept()
		if accepting {
			<-acceptErr
		}
	}()
	go func() {
		for {
			gr, err := tr.AcceptGroup(actx)
			if err != nil {
				acceptErr <- err
				return
			}
			select {
			case accepted <- gr:
			case <-actx.Done():
				gr.CancelRead(moqt.SubscribeCanceledErrorCode)
				acceptErr <- actx.Err()
				return
			}
		}
	}()

	var col collector
	results := make(chan groupResult)
	reached := make(chan struct{})
	var reachedOnce sync.Once
	var received atomic.Uint64
	readers := map[*moqt.GroupReader]bool{}
	stopping := false // -count reached: cancel what is still being read
	fin := false      // the publisher closed the SUBSCRIBE stream cleanly: the end of the track
	var endErr error  // why the subscription ended otherwise
	var broken []error
	var stopTimer <-chan time.Time
	last := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(readers) > 0 || !(stopping || endErr != nil || (fin && time.Since(last) >= endGrace)) {
		select {
		case gr := <-accepted:
			readers[gr], last = true, time.Now()
			logf("group %d accepted", gr.GroupSequence())
			go readGroup(gr, results, !o.bench, func() {
				n := received.Add(1)
				if o.bench && (n == o.count || o.count == 0) {
					lastFrame.Store(time.Now().UnixNano())
				}
				if o.count > 0 && n >= o.count {
					reachedOnce.Do(func() { close(reached) })
				}
			})
			if stopping {
				gr.CancelRead(moqt.SubscribeCanceledErrorCode)
			}
		case r := <-results:
			delete(readers, r.gr)
			last = time.Now()
			if r.err != nil && !stopping {
				logf("group %d ended after %d frames: %v", r.gr.GroupSequence(), r.n, r.err)
				broken = append(broken, fmt.Errorf("group %d ended after %d frames: %w", r.gr.GroupSequence(), r.n, r.err))
			}
			col.groups = append(col.groups, receivedGroup{uint64(r.gr.GroupSequence()), r.frames, r.n, r.bytes})
		case <-reached:
			reached, stopTimer = nil, time.After(endGrace)
		case <-stopTimer:
			stopTimer, stopping = nil, true
			stopAccept()
			for gr := range readers {
				gr.CancelRead(moqt.SubscribeCanceledErrorCode)
			}
		case err := <-acceptErr:
			accepting = false
			if endErr == nil && !stopping {
				endErr = err
			}
			logf("no more groups: %v", err)
		case err := <-subscribeEnded:
			if errors.Is(err, io.EOF) {
				fin = true
			} else if endErr == nil {
				endErr = err
			}
			logf("SUBSCRIBE stream ended: %v", err)
		case <-tick.C:
		case <-ctx.Done():
			return col.result(o.count), fmt.Errorf("timeout after %v (%d frames received)", o.timeout, received.Load())
		}
	}
	res := col.result(o.count)
	if o.bench {
		res.SHA256 = ""
		if t := lastFrame.Load(); t > 0 {
			res.ElapsedNS = t - start.UnixNano()
		}
	}
	switch {
	case o.count > 0 && res.Frames >= o.count:
		return res, nil
	case o.count > 0:
		return res, fmt.Errorf("got %d of %d frames (end of track: %v, error: %v)", res.Frames, o.count, fin, errors.Join(append(broken, endErr)...))
	case !fin:
		return res, fmt.Errorf("the subscription ended without the end of the track: %w", endErr)
	case len(broken) > 0:
		return res, fmt.Errorf("%d group(s) incomplete, first: %w", len(broken), broken[0])
	}
	return res, nil
}

// readGroup reads one group to its end and reports its frames (copies of them if keep, else
// only their count); onFrame runs after each frame.
func readGroup(gr *moqt.GroupReader, out chan<- groupResult, keep bool, onFrame func()) {
	f := moqt.NewFrame(0)
	res := groupResult{gr: gr}
	var err error
	for {
		if err = gr.ReadFrame(f); err != nil {
			break
		}
		if keep {
			res.frames = append(res.frames, bytes.Clone(f.Body()))
		}
		res.n++
		res.bytes += uint64(len(f.Body()))
		onFrame()
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	res.err = err
	out <- res
}
