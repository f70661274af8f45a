package moq

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Samples come every interval with rates over it, and a last one when the
// session ends.
func TestSamples(t *testing.T) {
	a, b := newNode(t), newNode(t)
	cam := publish(t, a, "cam")
	live(t, cam)
	s := b.connect(t, a)
	tc, err := s.Subscribe(testCtx(t), "cam", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	go func() { // keep reading, so that the subscription runs
		for {
			g, err := tc.NextGroup(context.Background())
			if err != nil {
				return
			}
			_, _ = g.ReadFrame(context.Background())
		}
	}()
	const every = 50 * time.Millisecond
	n := 0
	for sm := range s.Samples(testCtx(t), every) {
		n++
		if n > 3 { // the last one, as the session ended
			continue
		}
		if sm.Interval < every/2 || sm.Interval > 5*time.Second {
			t.Errorf("sample %d: interval %v", n, sm.Interval)
		}
		if n < 3 {
			continue
		}
		st := sm.Stats
		if sm.RecvRate <= 0 || sm.WireRecvRate <= 0 || st.Link.Transport != "p2pquic" || st.RTT <= 0 ||
			len(st.Subscriptions) != 1 || st.Subscriptions[0].Served || st.Subscriptions[0].Frames == 0 {
			t.Errorf("sample %d: %+v", n, sm)
		}
		if n == 3 {
			_ = s.Close(0, "done")
		}
	}
	if n < 3 {
		t.Fatalf("%d samples", n)
	}
	if n > 4 {
		t.Errorf("%d samples: the iteration went on after the session ended", n)
	}
}

// A node with metrics serves its sessions' series: scraped over HTTP on
// loopback, they say what happened.
func TestMetricsScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := newNode(t, WithMetrics(reg)), newNode(t, WithMetrics(reg)) // the second registration is a duplicate
	cam := publish(t, a, "cam")
	live(t, cam)
	s := b.connect(t, a)
	receive(t, s, "cam", 20)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	var text string
	eventually(t, "the publisher's groups in the scrape", func() bool {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		text = string(body)
		// The subscriber's counters too: a session counts frames just
		// after its readers see them, so receive can return first.
		return value(text, `moqp2p_groups_sent_total{dir="inbound",transport="p2pquic",version="moq-lite-05"}`) >= 20 &&
			value(text, `moqp2p_frames_received_total{dir="outbound",transport="p2pquic",version="moq-lite-05"}`) >= 20
	})
	for series, check := range map[string]func(float64) bool{
		`moqp2p_sessions{dir="inbound",transport="p2pquic",version="moq-lite-05"}`:                       func(v float64) bool { return v >= 1 },
		`moqp2p_sessions{dir="outbound",transport="p2pquic",version="moq-lite-05"}`:                      func(v float64) bool { return v >= 1 },
		`moqp2p_sessions_opened_total{dir="outbound",transport="p2pquic",version="moq-lite-05"}`:         func(v float64) bool { return v >= 1 },
		`moqp2p_frames_received_total{dir="outbound",transport="p2pquic",version="moq-lite-05"}`:         func(v float64) bool { return v >= 20 },
		`moqp2p_payload_bytes_received_total{dir="outbound",transport="p2pquic",version="moq-lite-05"}`:  func(v float64) bool { return v >= 20 },
		`moqp2p_frames_sent_total{dir="inbound",transport="p2pquic",version="moq-lite-05"}`:              func(v float64) bool { return v >= 20 },
		`moqp2p_link_bytes_sent_total{transport="p2pquic"}`:                                              func(v float64) bool { return v > 1000 },
		`moqp2p_link_packets_received_total{transport="p2pquic"}`:                                        func(v float64) bool { return v > 10 },
		`moqp2p_link_rtt_seconds_count{transport="p2pquic"}`:                                             func(v float64) bool { return v >= 2 },
		`moqp2p_link_rtt_seconds_bucket{transport="p2pquic",le="1"}`:                                     func(v float64) bool { return v >= 2 },
		`moqp2p_subscriptions{dir="inbound",side="publisher",transport="p2pquic",version="moq-lite-05"}`: func(v float64) bool { return v >= 0 },
	} {
		if v := value(text, series); !check(v) {
			t.Errorf("%s = %v", series, v)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

// value is a series' value in a Prometheus text exposition; -1 if absent.
func value(text, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}
