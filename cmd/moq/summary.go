package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/moqp2p/moqp2p/internal/pattern"
)

// subSummary is sub's last line: what it received, and how many groups it
// gave up (skipped on a live track, lost in a transfer that then failed).
type subSummary struct {
	pattern.Summary
	SkippedGroups uint64 `json:"skipped_groups"`
}

// pubSummary is pub's last line: what it produced, and how much of that
// its subscriber sessions were handed whole: groups (and their frames and
// bytes) written to a subscriber's connection and ended there, counted for
// the subscriber that got the fewest.
type pubSummary struct {
	pattern.Summary
	DeliveredGroups uint64 `json:"delivered_groups"`
	DeliveredFrames uint64 `json:"delivered_frames"`
	DeliveredBytes  uint64 `json:"delivered_bytes"`
	// subscribers is how many sessions were sent anything (not printed).
	subscribers int
}

// printSummary writes the one JSON line pub and sub end with:
// {"frames":N,"groups":G,"bytes":B,"sha256":"…",…}.
func printSummary(w io.Writer, s any) {
	line, _ := json.Marshal(s) // structs of numbers and strings cannot fail
	fmt.Fprintf(w, "%s\n", line)
}

// nodeSummary is node's last line: its sessions live at the end and the
// payload all its sessions carried.
type nodeSummary struct {
	Sessions       int    `json:"sessions"`
	FramesSent     uint64 `json:"frames_sent"`
	FramesReceived uint64 `json:"frames_received"`
	BytesSent      uint64 `json:"bytes_sent"`
	BytesReceived  uint64 `json:"bytes_received"`
}
