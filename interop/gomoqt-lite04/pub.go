package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/quic-go/quic-go"
	"github.com/qumo-dev/gomoqt/moqt"
)

// payload returns the deterministic payload of frame i (counted from 0 across the whole track:
// group g, frame f -> i = g*frames + f): size bytes where byte j = byte((i*131 + j*7 + 13) & 0xff),
// except that when size >= 8 the first 8 bytes are i as a big-endian uint64.
func payload(i uint64, size int) []byte {
	p := make([]byte, size)
	for j := range p {
		p[j] = byte((i*131 + uint64(j)*7 + 13) & 0xff)
	}
	if size >= 8 {
		binary.BigEndian.PutUint64(p, i)
	}
	return p
}

// publisher serves the track for every SUBSCRIBE (gomoqt calls serve once per SUBSCRIBE, so
// nothing is written before a subscription arrives). The first subscription is the one reported.
type publisher struct {
	o       options
	once    sync.Once
	started chan struct{} // closed when the first SUBSCRIBE arrives
	done    chan struct{} // closed when the first subscription has been served

	mu  sync.Mutex
	res result
	h   hash.Hash
	err error
}

func newPublisher(o options) *publisher {
	return &publisher{o: o, started: make(chan struct{}), done: make(chan struct{}), h: sha256.New()}
}

func (p *publisher) subscribed() bool {
	select {
	case <-p.started:
		return true
	default:
		return false
	}
}

func (p *publisher) serve(tw *moqt.TrackWriter) {
	logf("SUBSCRIBE %s %s", tw.BroadcastPath, tw.TrackName)
	if string(tw.TrackName) != p.o.track {
		tw.CloseWithError(moqt.SubscribeErrorCodeNotFound)
		return
	}
	primary := false
	p.once.Do(func() { primary = true; close(p.started) })
	err := p.write(tw, primary)
	switch {
	case err == nil:
		// FIN on the SUBSCRIBE stream: the end of the track (gomoqt would also do it after serve returns).
		logf("track closed: %v", tw.Close())
	case tw.Context().Err() != nil || remoteCancel(err):
		// The subscriber cancelled a group or the subscription, or closed the session.
		logf("subscriber went away: %v", err)
		err = nil
	default:
		// Reset the SUBSCRIBE stream so that the subscriber does not take the track as complete.
		tw.CloseWithError(moqt.SubscribeErrorCodeInternal)
	}
	if primary {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}
}

func (p *publisher) write(tw *moqt.TrackWriter, primary bool) error {
	frame := moqt.NewFrame(p.o.size)
	var fixed []byte // -bench: the one payload of every frame
	if p.o.bench {
		fixed = payload(0, p.o.size)
	}
	for g := 0; g < p.o.groups; g++ {
		gw, err := tw.OpenGroup(tw.Context())
		if err != nil {
			return fmt.Errorf("open group %d: %w", g, err)
		}
		for f := 0; f < p.o.frames; f++ {
			body := fixed
			if body == nil {
				body = payload(uint64(g)*uint64(p.o.frames)+uint64(f), p.o.size)
			}
			frame.Reset()
			_, _ = frame.Write(body)
			if err := gw.WriteFrame(frame); err != nil {
				gw.CancelWrite(moqt.PublishAbortedErrorCode)
				return fmt.Errorf("group %d frame %d: %w", g, f, err)
			}
			if primary {
				p.mu.Lock()
				if !p.o.bench {
					p.h.Write(body)
				}
				p.res.Frames++
				p.res.Bytes += uint64(len(body))
				p.mu.Unlock()
			}
		}
		if err := gw.Close(); err != nil {
			return fmt.Errorf("close group %d: %w", g, err)
		}
		if primary {
			p.mu.Lock()
			p.res.Groups++
			p.mu.Unlock()
		}
		logf("wrote group %d (sequence %d)", g, gw.GroupSequence())
	}
	return nil
}

// snapshot returns what the first subscription has been sent so far.
func (p *publisher) snapshot() *result {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.res
	r.SHA256 = hex.EncodeToString(p.h.Sum(nil))
	return &r
}

// wait waits for the first subscription to be served.
func (p *publisher) wait(ctx context.Context, o options) (*result, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return p.snapshot(), timeoutError(o)
	}
	p.mu.Lock()
	err := p.err
	p.mu.Unlock()
	return p.snapshot(), err
}

// remoteCancel reports whether err was caused by the peer: a stream reset / STOP_SENDING or the
// closing of the session. (gomoqt's error types embed quic-go's errors without Unwrap.)
func remoteCancel(err error) bool {
	if e, ok := errors.AsType[*quic.StreamError](err); ok {
		return e.Remote
	}
	if e, ok := errors.AsType[*moqt.GroupError](err); ok && e.StreamError != nil {
		return e.Remote
	}
	if e, ok := errors.AsType[*quic.ApplicationError](err); ok {
		return e.Remote
	}
	if e, ok := errors.AsType[*moqt.SessionError](err); ok && e.ApplicationError != nil {
		return e.Remote
	}
	return false
}
