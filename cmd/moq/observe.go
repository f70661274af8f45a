package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/session"
)

// Observability of the CLI's node: --metrics serves Prometheus metrics and
// a JSON list of the node's sessions over HTTP; --quiet turns the live
// status line off. Every command that builds its node with newNode from
// netFlags gets both (a relay command too: register netFlags, call newNode,
// and --metrics works; its live line is startNodeLine's, as node's).
// --serve-stats answers moq stats over libp2p too (statsp2p.go).

func (f *netFlags) registerObserve(fs *flag.FlagSet) {
	fs.BoolVar(&f.quiet, "quiet", false, "no live status line on a terminal (the final JSON line only)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics on http://`ADDR`/metrics (host:port, e.g. 127.0.0.1:9464)\nand the node's sessions as JSON on /stats (see moq stats)")
	fs.BoolVar(&f.serveStats, "serve-stats", false, "answer moq stats over libp2p (protocol /moqp2p/stats/1) from any peer that can reach\nthe node's multiaddr: they see its sessions, with its peers' IDs and its clients' addresses")
}

// newRegistry is a --metrics registry: the node's moqp2p_ series (added by
// the metrics tracer newNode installs) and the process's.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// observeServer serves --metrics.
type observeServer struct {
	addr string // bound host:port
	srv  *http.Server
	done chan struct{}
}

// startObserve serves n's metrics and sessions on --metrics, if given.
func startObserve(n *node) (*observeServer, error) {
	if n.cfg.net.metrics == "" || n.p2p == nil || n.p2p.reg == nil {
		return nil, nil
	}
	ln, err := net.Listen("tcp", n.cfg.net.metrics)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.p2p.reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /stats", server.StatsHandler(n.p2p.m))
	o := &observeServer{addr: ln.Addr().String(), done: make(chan struct{}),
		// /metrics and /stats answer at once: a client that idles or
		// stops reading is dropped.
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout: server.DefaultIdleTimeout, WriteTimeout: 30 * time.Second}}
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Warn("--metrics server stopped", "err", err)
		}
	}()
	return o, nil
}

func (o *observeServer) close() {
	if o == nil {
		return
	}
	_ = o.srv.Close()
	<-o.done
}

// liveTotals is the node-wide state the live status line shows.
type liveTotals struct {
	peers, subscribers    int // sessions; subscriptions we serve
	groups, skipped       uint64
	bytesSent, bytesRecv  uint64 // payload, counting sessions that ended
	rtt                   time.Duration
	framesSent, framesRcv uint64
}

// tally sums the node's sessions for the live line: the media totals of
// every session, ended ones too (the node's totals tracer), and the live
// sessions' peers, subscriptions and skips.
type tally struct{ n *node }

func newTally(n *node) *tally { return &tally{n: n} }

// startNodeLine starts the live line of a node or relay (verb): round
// trip, peers, subscribers and rates, from t.
func startNodeLine(ctx context.Context, std stdio, quiet bool, verb string, t *tally) *progress {
	return startProgress(std.stderr, quiet, verb, func(uint64) status {
		lt := t.read(ctx, true)
		return status{rtt: lt.rtt, peers: lt.peers, subscribers: lt.subscribers, sent: lt.bytesSent, received: lt.bytesRecv}
	})
}

// endNodeLine closes the live line and prints t's totals as the node's
// summary.
func endNodeLine(std stdio, prog *progress, t *tally) {
	prog.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	lt := t.read(ctx, true)
	printSummary(std.stdout, nodeSummary{Sessions: lt.peers, FramesSent: lt.framesSent, FramesReceived: lt.framesRcv,
		BytesSent: lt.bytesSent, BytesReceived: lt.bytesRecv})
}

// read sums the sessions now: served subscriptions' groups and skips for
// a publisher (served true), our subscriptions' for a subscriber.
func (t *tally) read(ctx context.Context, served bool) liveTotals {
	var lt liveTotals
	if t.n.p2p == nil {
		return lt
	}
	list, _ := t.n.p2p.m.Sessions(ctx)
	for _, s := range list {
		st := s.Stats()
		lt.peers++
		lt.rtt = max(lt.rtt, st.RTT)
		for _, sub := range st.Subscriptions {
			if sub.Served {
				lt.subscribers++
			}
			if sub.Served == served {
				lt.skipped += sub.Skipped
				for _, n := range sub.Resets {
					lt.skipped += n
				}
			}
		}
	}
	var sentGroups, rcvGroups uint64
	lt.framesSent, lt.bytesSent, sentGroups = t.n.p2p.tot.read(session.Sent)
	lt.framesRcv, lt.bytesRecv, rcvGroups = t.n.p2p.tot.read(session.Received)
	lt.groups = rcvGroups
	if served {
		lt.groups = sentGroups
	}
	return lt
}
