package moq

import (
	"context"
	"iter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqp2p/moqp2p/metrics"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

// Sample is a session's Stats at one moment, with rates over the Interval
// since the previous sample.
type Sample struct {
	At       time.Time
	Stats    Stats
	Interval time.Duration
	// SendRate and RecvRate are the payload bit rates over Interval;
	// WireSendRate and WireRecvRate the link's (0 where the transport has
	// no byte counters).
	SendRate, RecvRate         float64
	WireSendRate, WireRecvRate float64
	// LossRate is the share of packets sent during Interval that were
	// declared lost (see transport.LossRate); 0 without packet counters.
	LossRate float64
}

// DefaultSampleInterval is Samples' interval when given none.
const DefaultSampleInterval = time.Second

// Samples yields the session's statistics every interval (at most
// DefaultSampleInterval when interval is not positive) until ctx ends, the
// loop breaks or the session ends, which yields one last sample. The first
// sample comes one interval after the iteration starts; its rates are over
// that interval.
func (s *Session) Samples(ctx context.Context, interval time.Duration) iter.Seq[Sample] {
	if interval <= 0 {
		interval = DefaultSampleInterval
	}
	return func(yield func(Sample) bool) {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		prev, prevAt := s.Stats(), time.Now()
		for {
			ended := false
			select {
			case <-ctx.Done():
				return
			case <-s.Closed():
				ended = true
			case <-tick.C:
			}
			now := time.Now()
			cur := s.Stats()
			if !yield(sampleOf(prev, cur, prevAt, now)) || ended {
				return
			}
			prev, prevAt = cur, now
		}
	}
}

func sampleOf(prev, cur Stats, prevAt, now time.Time) Sample {
	sm := Sample{At: now, Stats: cur, Interval: now.Sub(prevAt), LossRate: transport.LossRate(prev.Link, cur.Link)}
	if secs := sm.Interval.Seconds(); secs > 0 {
		rate := func(a, b uint64) float64 {
			if b < a {
				return 0
			}
			return float64(b-a) * 8 / secs
		}
		sm.SendRate = rate(prev.Media.BytesSent, cur.Media.BytesSent)
		sm.RecvRate = rate(prev.Media.BytesReceived, cur.Media.BytesReceived)
		sm.WireSendRate = rate(prev.Link.BytesSent, cur.Link.BytesSent)
		sm.WireRecvRate = rate(prev.Link.BytesReceived, cur.Link.BytesReceived)
	}
	return sm
}

// WithMetrics exports the node's sessions as Prometheus metrics (namespace
// moqp2p_, see package metrics) registered with reg, or with
// prometheus.DefaultRegisterer when reg is nil. Registering with a
// registerer that has them already (a second node of the process) is
// harmless: the nodes count into the same series; a registerer holding a
// different collector under one of the moqp2p_ names makes New panic, as
// prometheus.MustRegister would. Without it nothing is exported and
// sessions count only their own Stats.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(o *options) {
		if reg == nil {
			reg = prometheus.DefaultRegisterer
		}
		o.metrics = metrics.NewTracer(metrics.WithRegisterer(reg))
	}
}

// WithMetricsTracer has the node's sessions report to t (nil: none), for
// metrics other than Prometheus; WithMetrics is this with package metrics'
// tracer.
func WithMetricsTracer(t session.MetricsTracer) Option {
	return func(o *options) { o.metrics = t }
}
