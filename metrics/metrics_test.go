package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The media path's calls allocate nothing: the session's series are
// resolved when it starts, and a reset code's on its first use.
func TestNoAllocMetrics(t *testing.T) {
	tr := NewTracer(WithRegisterer(prometheus.NewRegistry()))
	st := tr.SessionStarted(session.SessionInfo{Transport: "quic", Version: "moq-lite-04", Outbound: true,
		Link: func() transport.Stats { return transport.Stats{Transport: "quic"} }})
	defer st.Closed()
	st.GroupReset(session.Sent, broadcast.CodeOld) // resolves the series
	for name, f := range map[string]func(){
		"Frames":       func() { st.Frames(session.Sent, 3, 3000); st.Frames(session.Received, 1, 10) },
		"Group":        func() { st.Group(session.Sent); st.Group(session.Received) },
		"GroupReset":   func() { st.GroupReset(session.Sent, broadcast.CodeOld) },
		"Subscription": func() { st.Subscription(session.Received, 1); st.Subscription(session.Received, -1) },
	} {
		if n := testing.AllocsPerRun(1000, f); n > 0 {
			t.Errorf("%s: %.1f allocations per call, want 0", name, n)
		}
	}
}

// Registering twice with one registerer is harmless; a registerer holding
// a different collector under one of our names is an error.
func TestRegisterDuplicates(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewTracer(WithRegisterer(reg))
	NewTracer(WithRegisterer(reg))
	if err := Register(reg); err != nil {
		t.Fatalf("registering again: %v", err)
	}
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "moqp2p_sessions", Help: "not ours"}))
	if err := Register(clash); err == nil {
		t.Fatal("a clashing collector was accepted")
	}
}

// A session's events move its series; its link counters are read at
// scrape time and kept when it ends.
func TestSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr := NewTracer(WithRegisterer(reg))
	link := transport.Stats{Transport: "websocket", BytesSent: 5000, BytesReceived: 700, PacketsSent: 7}
	info := session.SessionInfo{Transport: "websocket", Version: "moq-lite-03", Link: func() transport.Stats { return link }}
	lv := []string{"websocket", "moq-lite-03", "inbound"}
	before := value(framesSent.WithLabelValues(lv...))
	st := tr.SessionStarted(info)
	st.Frames(session.Sent, 4, 400)
	st.GroupReset(session.Received, broadcast.CodeDropped)
	if got := value(framesSent.WithLabelValues(lv...)) - before; got != 4 {
		t.Errorf("frames sent moved by %v, want 4", got)
	}
	if got := value(sessionsLive.WithLabelValues(lv...)); got != 1 {
		t.Errorf("live sessions %v, want 1", got)
	}
	if got := value(groupResets.WithLabelValues("websocket", "moq-lite-03", "inbound", "subscriber", "24")); got != 1 {
		t.Errorf("resets %v, want 1", got)
	}
	if got := scrape(reg); !strings.Contains(got, `moqp2p_link_bytes_sent_total{transport="websocket"} 5000`+"\n") {
		t.Errorf("link bytes before the end:\n%s", got)
	}
	link.BytesSent = 6000
	st.Closed()
	link.BytesSent = 0 // a connection's counters after its end do not matter
	if got := value(sessionsLive.WithLabelValues(lv...)); got != 0 {
		t.Errorf("live sessions %v after Closed, want 0", got)
	}
	if got := scrape(reg); !strings.Contains(got, `moqp2p_link_bytes_sent_total{transport="websocket"} 6000`+"\n") {
		t.Errorf("link bytes after the end:\n%s", got)
	}
}

// value reads a counter's or gauge's value.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// scrape returns reg's text exposition, as an HTTP scrape gets it.
func scrape(reg *prometheus.Registry) string {
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// BenchmarkGroup is what metrics add to one group on the media path: a
// batch of frames and the group's end, on each side.
func BenchmarkGroup(b *testing.B) {
	tr := NewTracer(WithRegisterer(prometheus.NewRegistry()))
	st := tr.SessionStarted(session.SessionInfo{Transport: "quic", Version: "moq-lite-04"})
	defer st.Closed()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			st.Frames(session.Sent, 100, 102400)
			st.Group(session.Sent)
			st.Frames(session.Received, 100, 102400)
			st.Group(session.Received)
		}
	})
}
