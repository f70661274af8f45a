// Package metrics exports moqp2p's sessions as Prometheus metrics, in the
// shape go-libp2p gives its own: a tracer (session.MetricsTracer) made by
// NewTracer, collectors registered with a prometheus.Registerer (duplicate
// registrations tolerated, so several nodes of one process share them), and
// nothing allocated per frame.
//
// Every series is in the moqp2p namespace. Labels: transport (quic, p2pquic,
// p2pstream, webtransport, websocket; "" for a connection without
// counters), version (moq-lite-05 … moq-lite-01)
// and dir (outbound: this node opened the connection; inbound). Media
// counters count payload (frames' bytes); link counters are the
// transports' own, bytes and packets on the wire.
//
// Series:
//
//	moqp2p_sessions{transport,version,dir}                       live sessions
//	moqp2p_sessions_opened_total{transport,version,dir}          sessions started
//	moqp2p_subscriptions{transport,version,dir,side}             live subscriptions: side "subscriber" (ours), "publisher" (served)
//	moqp2p_{frames,groups,payload_bytes}_sent_total{transport,version,dir}
//	moqp2p_{frames,groups,payload_bytes}_received_total{transport,version,dir}
//	moqp2p_group_resets_total{transport,version,dir,side,code}   group streams ended early, by moq-lite code
//	moqp2p_link_{bytes,packets}_{sent,received}_total{transport} on the wire
//	moqp2p_link_{bytes,packets}_lost_total{transport}            declared lost
//	moqp2p_link_rtt_seconds{transport}                           smoothed RTT of the live sessions (histogram)
//
// The link series are read from the live sessions' connections when
// scraped (plus what ended sessions had reached); sessions sharing one
// connection (WebTransport sessions on one HTTP/3 connection, p2pstream
// sessions on one libp2p connection) each count it whole. The loss rate
// over a window is a query away:
//
//	rate(moqp2p_link_packets_lost_total[1m]) / rate(moqp2p_link_packets_sent_total[1m])
package metrics

import (
	"errors"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

const namespace = "moqp2p"

var sessionLabels = []string{"transport", "version", "dir"}

func counterVec(name, help string, extra ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help},
		append(append([]string(nil), sessionLabels...), extra...))
}

// The collectors are the package's, as go-libp2p's are: every tracer
// counts into them, and registering them twice with one registerer is
// harmless.
var (
	sessionsLive = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "sessions",
		Help: "Live moq-lite sessions."}, sessionLabels)
	sessionsOpened = counterVec("sessions_opened_total", "moq-lite sessions started.")
	subsLive       = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "subscriptions",
		Help: "Live subscriptions: side subscriber (ours) or publisher (the peer's, served)."}, append(append([]string(nil), sessionLabels...), "side"))
	framesSent    = counterVec("frames_sent_total", "Frames sent on served subscriptions.")
	framesRecv    = counterVec("frames_received_total", "Frames received on our subscriptions.")
	groupsSent    = counterVec("groups_sent_total", "Groups sent whole on served subscriptions.")
	groupsRecv    = counterVec("groups_received_total", "Groups received whole on our subscriptions.")
	bytesSent     = counterVec("payload_bytes_sent_total", "Frame payload bytes sent.")
	bytesRecv     = counterVec("payload_bytes_received_total", "Frame payload bytes received.")
	groupResets   = counterVec("group_resets_total", "Group streams ended early, by moq-lite error code.", "side", "code")
	linkCollector = &links{live: map[*sessionTracer]struct{}{}, ended: map[string]*linkTotals{}}

	collectors = []prometheus.Collector{sessionsLive, sessionsOpened, subsLive, framesSent, framesRecv,
		groupsSent, groupsRecv, bytesSent, bytesRecv, groupResets, linkCollector}
)

// Option configures NewTracer.
type Option func(*config)

type config struct{ reg prometheus.Registerer }

// WithRegisterer registers the metrics with reg (default
// prometheus.DefaultRegisterer).
func WithRegisterer(reg prometheus.Registerer) Option { return func(c *config) { c.reg = reg } }

// Tracer counts sessions into the package's Prometheus collectors. It
// implements session.MetricsTracer.
type Tracer struct{}

var _ session.MetricsTracer = (*Tracer)(nil)

// NewTracer registers the collectors (again, harmlessly, for a registerer
// that has them) and returns a tracer counting into them. It panics if
// registering fails for another reason than a duplicate, as
// prometheus.MustRegister does.
func NewTracer(opts ...Option) *Tracer {
	c := config{reg: prometheus.DefaultRegisterer}
	for _, o := range opts {
		o(&c)
	}
	if err := Register(c.reg); err != nil {
		panic(err)
	}
	return &Tracer{}
}

// Register registers the package's collectors with reg, ignoring those it
// has already.
func Register(reg prometheus.Registerer) error {
	for _, c := range collectors {
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return err
		}
	}
	return nil
}

func dirLabel(outbound bool) string {
	if outbound {
		return "outbound"
	}
	return "inbound"
}

// SessionStarted resolves the session's series once, so that its events
// are counter increments without label lookups or allocations.
func (t *Tracer) SessionStarted(info session.SessionInfo) session.SessionTracer {
	lv := []string{info.Transport, info.Version, dirLabel(info.Outbound)}
	st := &sessionTracer{
		labels: lv,
		live:   sessionsLive.WithLabelValues(lv...),
		link:   info.Link,
		tport:  info.Transport,
	}
	st.frames[session.Sent] = framesSent.WithLabelValues(lv...)
	st.frames[session.Received] = framesRecv.WithLabelValues(lv...)
	st.groups[session.Sent] = groupsSent.WithLabelValues(lv...)
	st.groups[session.Received] = groupsRecv.WithLabelValues(lv...)
	st.bytes[session.Sent] = bytesSent.WithLabelValues(lv...)
	st.bytes[session.Received] = bytesRecv.WithLabelValues(lv...)
	st.subs[session.Sent] = subsLive.WithLabelValues(info.Transport, info.Version, lv[2], sideLabel(session.Sent))
	st.subs[session.Received] = subsLive.WithLabelValues(info.Transport, info.Version, lv[2], sideLabel(session.Received))
	sessionsOpened.WithLabelValues(lv...).Inc()
	st.live.Inc()
	if st.link != nil {
		linkCollector.add(st)
	}
	return st
}

func sideLabel(d session.Direction) string {
	if d == session.Sent {
		return "publisher"
	}
	return "subscriber"
}

// sessionTracer holds one session's resolved series.
type sessionTracer struct {
	labels []string
	live   prometheus.Gauge
	frames [2]prometheus.Counter // by session.Direction
	groups [2]prometheus.Counter
	bytes  [2]prometheus.Counter
	subs   [2]prometheus.Gauge

	resetsMu sync.Mutex
	resets   map[resetKey]prometheus.Counter // resolved on first use

	link  func() transport.Stats
	tport string
	last  transport.Stats // the link counters reported so far (links.mu)
}

type resetKey struct {
	d    session.Direction
	code broadcast.Code
}

func (s *sessionTracer) Frames(d session.Direction, frames, bytes uint64) {
	s.frames[d].Add(float64(frames))
	s.bytes[d].Add(float64(bytes))
}

func (s *sessionTracer) Group(d session.Direction) { s.groups[d].Inc() }

func (s *sessionTracer) GroupReset(d session.Direction, code broadcast.Code) {
	k := resetKey{d, code}
	s.resetsMu.Lock()
	c, ok := s.resets[k]
	if !ok {
		if s.resets == nil {
			s.resets = map[resetKey]prometheus.Counter{}
		}
		c = groupResets.WithLabelValues(s.labels[0], s.labels[1], s.labels[2], sideLabel(d), strconv.FormatUint(uint64(code), 10))
		s.resets[k] = c
	}
	s.resetsMu.Unlock()
	c.Inc()
}

func (s *sessionTracer) Subscription(d session.Direction, delta int) { s.subs[d].Add(float64(delta)) }

func (s *sessionTracer) Closed() {
	s.live.Dec()
	if s.link != nil {
		linkCollector.remove(s)
	}
}
