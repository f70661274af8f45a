package broadcast

import (
	"crypto/rand"
	"encoding/binary"
	"slices"
)

// MaxHops is the longest hop list moq-lite accepts (Rust rejects more than 32).
const MaxHops = 32

// MaxHopID bounds generated hop IDs: IDs are in [1, MaxHopID) so that
// JavaScript peers, which read them as 53-bit numbers, can decode them.
const MaxHopID = 1 << 53

// NewHopID returns a random hop ID in [1, 2^53).
func NewHopID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
		if id := binary.BigEndian.Uint64(b[:]) & (MaxHopID - 1); id != 0 {
			return id
		}
	}
}

// containsHop reports whether hops contains id.
func containsHop(hops []uint64, id uint64) bool { return id != 0 && slices.Contains(hops, id) }
