package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/transport/cert"
)

const statsUsage = `
usage: moq stats [--json] [--fingerprint HEX | --insecure] ADDR

Prints the sessions of a running moq command (node, relay, pub, sub): one
line per session with its peer, transport, moq-lite version, RTT, bytes on
the wire each way, packets lost, and its subscriptions (ours, and the
peer's we serve) with groups, frames and payload delivered, groups skipped
and reset. The document is JSON (--json prints it as is); ADDR says where
to read it:

  host:port, http://host:port    what --metrics was given (or the plain HTTP
                                 port of an https:// or ws:// --listen)
  /ip4/…/tcp/PORT                the same, as a multiaddr
  https://host:port/             an https:// --listen, over HTTP/3: pin its
                                 certificate with --fingerprint HEX (the
                                 "fingerprint:" it printed) or give --insecure
  /ip4/…/udp/PORT/quic-v1/p2p/ID a node's libp2p address, if it was started
                                 with --serve-stats (protocol /moqp2p/stats/1)

Examples:
  moq stats 127.0.0.1:9464
  moq stats --fingerprint 5e2a…9c01 https://relay.example:4443/
  moq stats /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW…
`

// runStats is `moq stats`.
func runStats(ctx context.Context, std stdio, args []string) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	setUsage(fs, statsUsage)
	raw := fs.Bool("json", false, "print the JSON document as served")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after `D`")
	fingerprint := fs.String("fingerprint", "", "https:// ADDR: accept the server certificate with this SHA-256 `HEX`")
	insecure := fs.Bool("insecure", false, "https:// ADDR: accept any server certificate")
	addr := ""
	if len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-") {
		addr, args = args[len(args)-1], args[:len(args)-1]
	}
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	if addr == "" {
		return usagef("stats: give the ADDR of a node's --metrics, https:// --listen or libp2p address (see moq stats -h)")
	}
	var tc *tls.Config
	switch {
	case *fingerprint != "" && *insecure:
		return usagef("stats: --fingerprint and --insecure exclude each other")
	case *fingerprint != "":
		fp, err := cert.ParseFingerprint(*fingerprint)
		if err != nil {
			return usagef("stats: --fingerprint: must be 64 hex digits (a SHA-256)")
		}
		tc = cert.PinnedConfig(fp)
	case *insecure:
		tc = &tls.Config{InsecureSkipVerify: true}
	}
	where, err := statsSource(addr)
	if err != nil {
		return usagef("stats: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var body []byte
	if where.p2p != nil {
		if body, err = fetchStatsP2P(ctx, where.p2p); err != nil {
			return fmt.Errorf("stats: %w", err)
		}
	} else if body, err = fetchStatsHTTP(ctx, where.url, tc, *timeout); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if *raw {
		_, err := std.stdout.Write(body)
		return err
	}
	var doc server.NodeStats
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("stats: %s: %w", addr, err)
	}
	printStats(std.stdout, doc)
	return nil
}

// statsSrc is where moq stats reads: a /stats URL, or a libp2p peer.
type statsSrc struct {
	url string
	p2p ma.Multiaddr // with /p2p/ID
}

// statsSource turns ADDR into where to read.
func statsSource(addr string) (statsSrc, error) {
	switch {
	case strings.HasPrefix(addr, "/"):
		m, err := ma.NewMultiaddr(addr)
		if err != nil {
			return statsSrc{}, err
		}
		if _, err := m.ValueForProtocol(ma.P_P2P); err == nil {
			return statsSrc{p2p: m}, nil
		}
		na, err := manet.ToNetAddr(m)
		if err != nil || na.Network() != "tcp" {
			return statsSrc{}, fmt.Errorf("%s: want a TCP multiaddr (/ip4/…/tcp/PORT) of --metrics, or a libp2p address with /p2p/ID", addr)
		}
		return statsSrc{url: "http://" + na.String() + "/stats"}, nil
	case strings.HasPrefix(addr, "http://"), strings.HasPrefix(addr, "https://"):
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" {
			return statsSrc{}, fmt.Errorf("%s: not a URL with a host", addr)
		}
		u.Path, u.RawPath, u.RawQuery, u.Fragment = "/stats", "", "", ""
		return statsSrc{url: u.String()}, nil
	}
	return statsSrc{url: "http://" + addr + "/stats"}, nil
}

// fetchStatsHTTP reads u: over HTTP/3 if it is https:// (the listener's
// QUIC port, trusting tc's certificates, the system's if nil), else HTTP.
func fetchStatsHTTP(ctx context.Context, u string, tc *tls.Config, timeout time.Duration) ([]byte, error) {
	client := http.DefaultClient
	secure := strings.HasPrefix(u, "https://")
	if secure {
		if tc == nil {
			tc = &tls.Config{}
		}
		tr := &http3.Transport{TLSClientConfig: tc, QUICConfig: &quic.Config{HandshakeIdleTimeout: timeout}}
		defer tr.Close()
		client = &http.Client{Transport: tr}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	switch {
	case err != nil && strings.Contains(err.Error(), "x509:"):
		return nil, fmt.Errorf("%w (pin the server with --fingerprint HEX, the SHA-256 its listener printed as \"fingerprint: HEX\", or skip the check with --insecure)", err)
	case errors.Is(err, syscall.ECONNREFUSED):
		host := strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/stats")
		return nil, fmt.Errorf("nothing listens on %s: is a moq command running with --metrics %s?", host, host)
	case err != nil && secure && errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("%w (is an https:// --listen of moq on that UDP port? A firewall may drop UDP)", err)
	case err != nil:
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", u, resp.Status)
	}
	return body, nil
}

func printStats(w io.Writer, doc server.NodeStats) {
	if doc.Peer != "" {
		fmt.Fprintf(w, "node %s: %d sessions\n", doc.Peer, len(doc.Sessions))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tTRANSPORT\tVERSION\tRTT\tSENT\tRECEIVED\tLOST\tUP")
	for _, s := range doc.Sessions {
		tport := s.Link.Transport
		if tport == "" {
			tport = s.Via
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fms\t%s\t%s\t%d pkts\t%s\n", s.Peer, tport, s.Version, s.RTTMillis,
			mib(s.Link.BytesSent), mib(s.Link.BytesReceived), s.Link.PacketsLost, (time.Duration(s.Seconds) * time.Second).String())
	}
	_ = tw.Flush()
	for _, s := range doc.Sessions {
		for _, sub := range s.Subscriptions {
			side := "subscribed to"
			if sub.Served {
				side = "serving"
			}
			resets := uint64(0)
			for _, n := range sub.Resets {
				resets += n
			}
			fmt.Fprintf(w, "%s: %s %s/%s (#%d): %d groups, %d frames, %s, %d skipped, %d reset\n",
				s.Peer, side, sub.Broadcast, sub.Track, sub.ID, sub.Groups, sub.Frames, mib(sub.Bytes), sub.Skipped, resets)
		}
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }
