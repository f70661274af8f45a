package main

import (
	"sync/atomic"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
)

// totals counts the media of every session of the node, as the sessions'
// metrics tracer: sessions that began and ended between two ticks of the
// live line count too (a relay that carried a whole transfer in under a
// tick summarised it as nothing when it summed the live sessions' figures).
// It passes every event on to inner (--metrics' Prometheus tracer), if set.
type totals struct {
	inner                 session.MetricsTracer
	frames, bytes, groups [2]atomic.Uint64 // by session.Direction
}

// SessionStarted implements session.MetricsTracer.
func (t *totals) SessionStarted(info session.SessionInfo) session.SessionTracer {
	st := &sessionTotals{t: t}
	if t.inner != nil {
		st.inner = t.inner.SessionStarted(info)
	}
	return st
}

// read returns the totals so far in one direction.
func (t *totals) read(d session.Direction) (frames, bytes, groups uint64) {
	return t.frames[d].Load(), t.bytes[d].Load(), t.groups[d].Load()
}

type sessionTotals struct {
	t     *totals
	inner session.SessionTracer
}

func (s *sessionTotals) Frames(d session.Direction, frames, bytes uint64) {
	s.t.frames[d].Add(frames)
	s.t.bytes[d].Add(bytes)
	if s.inner != nil {
		s.inner.Frames(d, frames, bytes)
	}
}

func (s *sessionTotals) Group(d session.Direction) {
	s.t.groups[d].Add(1)
	if s.inner != nil {
		s.inner.Group(d)
	}
}

func (s *sessionTotals) GroupReset(d session.Direction, code broadcast.Code) {
	if s.inner != nil {
		s.inner.GroupReset(d, code)
	}
}

func (s *sessionTotals) Subscription(d session.Direction, delta int) {
	if s.inner != nil {
		s.inner.Subscription(d, delta)
	}
}

func (s *sessionTotals) Closed() {
	if s.inner != nil {
		s.inner.Closed()
	}
}
