package main

import (
	"testing"
	"time"
)

// Each command's live line shows its own figures: pub and sub their frames
// and groups, node and relay their peers, subscribers and payload rates
// both ways (a relay counts no frames of its own, so the pub/sub format
// would show zeros).
func TestProgressLine(t *testing.T) {
	st := status{groups: 7, skipped: 1, rtt: 1234567 * time.Nanosecond, peers: 2, subscribers: 3,
		sent: 3 << 20, received: 5 << 20}
	for _, tc := range []struct {
		verb string
		want string
	}{
		{"sent", "sent 100 frames, 7 groups, 1.0 MiB in 4s: 25 frames/s, 0.25 MiB/s, 1 skipped, 2 peers, 3 subscribers, rtt 1.23ms"},
		{"received", "received 100 frames, 7 groups, 1.0 MiB in 4s: 25 frames/s, 0.25 MiB/s, 1 skipped, 2 peers, 3 subscribers, rtt 1.23ms"},
		{"node", "node: 2 peers, 3 subscribers, sent 3.0 MiB (0.75 MiB/s), received 5.0 MiB (1.25 MiB/s), up 4s, rtt 1.23ms"},
		{"relay", "relay: 2 peers, 3 subscribers, sent 3.0 MiB (0.75 MiB/s), received 5.0 MiB (1.25 MiB/s), up 4s, rtt 1.23ms"},
	} {
		p := &progress{verb: tc.verb}
		if got := p.line(st, 100, 1<<20, 4500*time.Millisecond, 25, 0.25, 0.75, 1.25); got != tc.want {
			t.Errorf("%s line:\n got %s\nwant %s", tc.verb, got, tc.want)
		}
	}
	// A subscriber's line without subscribers to show, before any RTT.
	p := &progress{verb: "received"}
	if got, want := p.line(status{subscribers: -1}, 0, 0, 0, 0, 0, 0, 0),
		"received 0 frames, 0 groups, 0.0 MiB in 0s: 0 frames/s, 0.00 MiB/s, 0 skipped, 0 peers"; got != want {
		t.Errorf("line:\n got %s\nwant %s", got, want)
	}
}
