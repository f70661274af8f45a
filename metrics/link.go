package metrics

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqp2p/moqp2p/transport"
)

// links collects the transports' counters when scraped: those of the live
// sessions, read then, plus what ended sessions had reached.
type links struct {
	mu    sync.Mutex
	live  map[*sessionTracer]struct{}
	ended map[string]*linkTotals // by transport
}

type linkTotals struct {
	bytesSent, bytesRecv, bytesLost       uint64
	packetsSent, packetsRecv, packetsLost uint64
}

func (t *linkTotals) add(s transport.Stats) {
	t.bytesSent += s.BytesSent
	t.bytesRecv += s.BytesReceived
	t.bytesLost += s.BytesLost
	t.packetsSent += s.PacketsSent
	t.packetsRecv += s.PacketsReceived
	t.packetsLost += s.PacketsLost
}

// rttBuckets (seconds) span loopback to intercontinental paths.
var rttBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

func linkDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "link", name), help, []string{"transport"}, nil)
}

var (
	descBytesSent   = linkDesc("bytes_sent_total", "Bytes sent on the wire (retransmissions included).")
	descBytesRecv   = linkDesc("bytes_received_total", "Bytes received on the wire.")
	descBytesLost   = linkDesc("bytes_lost_total", "Bytes declared lost.")
	descPacketsSent = linkDesc("packets_sent_total", "Packets sent.")
	descPacketsRecv = linkDesc("packets_received_total", "Packets received.")
	descPacketsLost = linkDesc("packets_lost_total", "Packets declared lost.")
	descRTT         = linkDesc("rtt_seconds", "Smoothed round-trip time of the live sessions that know one.")
)

func (l *links) add(s *sessionTracer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live[s] = struct{}{}
}

// remove moves an ending session's counters into the totals.
func (l *links) remove(s *sessionTracer) {
	st := s.link()
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.live, s)
	s.observe(st)
	l.totals(s.tport).add(s.last)
}

func (l *links) totals(tport string) *linkTotals {
	t := l.ended[tport]
	if t == nil {
		t = &linkTotals{}
		l.ended[tport] = t
	}
	return t
}

// observe keeps the highest value of each counter: quic-go takes back
// losses of packets that arrive late, and a counter must not go down.
func (s *sessionTracer) observe(st transport.Stats) {
	l := &s.last
	l.BytesSent = max(l.BytesSent, st.BytesSent)
	l.BytesReceived = max(l.BytesReceived, st.BytesReceived)
	l.BytesLost = max(l.BytesLost, st.BytesLost)
	l.PacketsSent = max(l.PacketsSent, st.PacketsSent)
	l.PacketsReceived = max(l.PacketsReceived, st.PacketsReceived)
	l.PacketsLost = max(l.PacketsLost, st.PacketsLost)
	l.RTT = st.RTT
}

// Describe implements prometheus.Collector.
func (l *links) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBytesSent, descBytesRecv, descBytesLost, descPacketsSent, descPacketsRecv, descPacketsLost, descRTT} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (l *links) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	live := make([]*sessionTracer, 0, len(l.live))
	for s := range l.live {
		live = append(live, s)
	}
	l.mu.Unlock()
	stats := make([]transport.Stats, len(live))
	for i, s := range live { // outside the lock: a connection's counters take its lock
		stats[i] = s.link()
	}

	type rtts struct {
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	sums := map[string]*linkTotals{}
	hist := map[string]*rtts{}
	l.mu.Lock()
	for tport, t := range l.ended {
		c := *t
		sums[tport] = &c
	}
	for i, s := range live {
		if _, ok := l.live[s]; !ok {
			continue // ended meanwhile: counted in the totals
		}
		s.observe(stats[i])
		t := sums[s.tport]
		if t == nil {
			t = &linkTotals{}
			sums[s.tport] = t
		}
		t.add(s.last)
		if rtt := stats[i].RTT; rtt > 0 {
			h := hist[s.tport]
			if h == nil {
				h = &rtts{buckets: map[float64]uint64{}}
				hist[s.tport] = h
			}
			secs := rtt.Seconds()
			h.count++
			h.sum += secs
			for _, b := range rttBuckets {
				if secs <= b {
					h.buckets[b]++
				}
			}
		}
	}
	l.mu.Unlock()

	tports := make([]string, 0, len(sums))
	for tport := range sums {
		tports = append(tports, tport)
	}
	sort.Strings(tports)
	for _, tport := range tports {
		t := sums[tport]
		for _, m := range []struct {
			d *prometheus.Desc
			v uint64
		}{
			{descBytesSent, t.bytesSent}, {descBytesRecv, t.bytesRecv}, {descBytesLost, t.bytesLost},
			{descPacketsSent, t.packetsSent}, {descPacketsRecv, t.packetsRecv}, {descPacketsLost, t.packetsLost},
		} {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v), tport)
		}
		h := hist[tport]
		if h == nil {
			h = &rtts{buckets: map[float64]uint64{}}
		}
		for _, b := range rttBuckets {
			h.buckets[b] += 0 // every bucket present
		}
		ch <- prometheus.MustNewConstHistogram(descRTT, h.count, h.sum, h.buckets, tport)
	}
}
