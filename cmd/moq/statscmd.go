package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/moqp2p/moqp2p/moq/server"
)

const statsUsage = `
usage: moq stats [--json] ADDR

Prints the sessions of a running moq node, pub, sub (or any command started
with --metrics ADDR): one line per session with its peer, transport,
moq-lite version, RTT, bytes on the wire each way, packets lost, and its
subscriptions (ours, and the peer's we serve) with groups, frames
and payload delivered, groups skipped and reset. ADDR is what --metrics was
given: host:port, http://host:port, or a multiaddr /ip4/…/tcp/PORT. It reads
http://ADDR/stats, a JSON document (--json prints it as is).
`

// runStats is `moq stats`.
func runStats(ctx context.Context, std stdio, args []string) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	setUsage(fs, statsUsage)
	raw := fs.Bool("json", false, "print the JSON document as served")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after `D`")
	addr := ""
	if len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-") {
		addr, args = args[len(args)-1], args[:len(args)-1]
	}
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	if addr == "" {
		return usagef("stats: give the ADDR of a node's --metrics (see moq stats -h)")
	}
	u, err := statsURL(addr)
	if err != nil {
		return usagef("stats: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("stats: nothing listens on %s: is a moq command running with --metrics %s?", addr, addr)
	case err != nil:
		return fmt.Errorf("stats: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stats: %s answered %s", u, resp.Status)
	}
	if *raw {
		_, err := std.stdout.Write(body)
		return err
	}
	var doc server.NodeStats
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("stats: %s: %w", u, err)
	}
	printStats(std.stdout, doc)
	return nil
}

// statsURL turns ADDR into the /stats URL.
func statsURL(addr string) (string, error) {
	switch {
	case strings.HasPrefix(addr, "/"):
		m, err := ma.NewMultiaddr(addr)
		if err != nil {
			return "", err
		}
		na, err := manet.ToNetAddr(m)
		if err != nil || na.Network() != "tcp" {
			return "", fmt.Errorf("%s: want a TCP multiaddr (/ip4/…/tcp/PORT)", addr)
		}
		return "http://" + na.String() + "/stats", nil
	case strings.HasPrefix(addr, "http://"), strings.HasPrefix(addr, "https://"):
		return strings.TrimSuffix(strings.TrimSuffix(addr, "/"), "/metrics") + "/stats", nil
	}
	return "http://" + addr + "/stats", nil
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
