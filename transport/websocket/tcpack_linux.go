//go:build linux

package websocket

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// ackSlack covers the kernel's clock granularity (a jiffy, up to 10 ms)
// when telling whether an acknowledgement arrived since the last sample:
// a doubtful one is not counted.
const ackSlack = 25 * time.Millisecond

// peerAcks returns a counter that grows when the peer's TCP acknowledges
// our data while we have a backlog: at a sample that finds data in flight
// or not yet sent, it counts one if the bytes acknowledged grew since the
// previous sample, or an acknowledgement arrived since then (a duplicate
// ACK with SACK blocks, when a lost segment holds the cumulative ACK back).
// That is when a ping queues behind our own data, so its pong comes late
// from a live peer. Without a backlog a ping is not held up, and TCP's
// ACKs do not excuse its pong: a TCP-terminating proxy (or a test's)
// acknowledges our pings for a peer partitioned behind it. A partitioned
// peer acknowledges nothing, and one that stops reading stops once its
// receive window closes (the zero-window probes it answers find nothing in
// flight, and only an ACK of data in flight counts). It is for a single goroutine. Nil if tc is nil or its TCP_INFO
// cannot be read.
func peerAcks(tc *net.TCPConn) func() uint64 {
	if tc == nil {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	read := func() (info *unix.TCPInfo, err error) {
		if cerr := raw.Control(func(fd uintptr) {
			info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		}); cerr != nil {
			return nil, cerr
		}
		return info, err
	}
	info, err := read()
	if err != nil {
		return nil
	}
	var credits uint64
	acked, prev := info.Bytes_acked, time.Now()
	return func() uint64 {
		now := time.Now()
		info, err := read()
		if err != nil {
			return credits
		}
		backlog := info.Unacked > 0 || info.Notsent_bytes > 0
		age := time.Duration(info.Last_ack_recv) * time.Millisecond
		if backlog && (info.Bytes_acked != acked || info.Unacked > 0 && age+ackSlack < now.Sub(prev)) {
			credits++
		}
		acked, prev = info.Bytes_acked, now
		return credits
	}
}
