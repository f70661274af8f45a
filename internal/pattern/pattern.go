// Package pattern generates the deterministic test media that moqp2p's CLI,
// examples and interop peers agree on, and hashes what a subscriber received
// so that two runs (or two implementations) can be compared.
package pattern

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"slices"
	"sync"
)

// Payload returns frame i (counted from 0 across the whole track) of the
// given size: byte j is (i*131 + j*7 + 13) mod 256, and when size >= 8 the
// first eight bytes are i, big-endian, so a frame names its own index. The
// gomoqt interop peers generate the same bytes.
func Payload(i uint64, size int) []byte {
	p := make([]byte, size)
	for j := range p {
		p[j] = byte(i*131 + uint64(j)*7 + 13)
	}
	if size >= 8 {
		binary.BigEndian.PutUint64(p, i)
	}
	return p
}

// Summary is what a publisher sent or a subscriber received: the JSON line the
// CLI and the interop peers print.
type Summary struct {
	Frames uint64 `json:"frames"`
	Groups uint64 `json:"groups"`
	Bytes  uint64 `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Expect returns the Summary of groups×frames payloads of size bytes, as a
// subscriber that received all of them reports it.
func Expect(groups, frames, size int) Summary {
	var c Collector
	for g := range groups {
		for f := range frames {
			c.Add(uint64(g), Payload(uint64(g*frames+f), size))
		}
	}
	return c.Summary(0)
}

// Collector gathers received frames by group. Groups may arrive in any order
// (one stream each); Summary hashes them ordered by (group sequence, frame
// index), which is what the interop peers do. It is safe for concurrent use.
type Collector struct {
	mu     sync.Mutex
	groups map[uint64][][]byte
	frames uint64
}

// Add records the next frame of group seq.
func (c *Collector) Add(seq uint64, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups == nil {
		c.groups = map[uint64][][]byte{}
	}
	c.groups[seq] = append(c.groups[seq], payload)
	c.frames++
}

// Frames returns how many frames were added.
func (c *Collector) Frames() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// Summary hashes the frames in (group, frame) order; with limit > 0 only the
// first limit frames in that order count.
func (c *Collector) Summary(limit uint64) Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	seqs := make([]uint64, 0, len(c.groups))
	for s := range c.groups {
		seqs = append(seqs, s)
	}
	slices.SortFunc(seqs, cmp.Compare)
	h := sha256.New()
	var s Summary
	for _, seq := range seqs {
		counted := false
		for _, f := range c.groups[seq] {
			if limit > 0 && s.Frames == limit {
				break
			}
			h.Write(f)
			s.Frames++
			s.Bytes += uint64(len(f))
			counted = true
		}
		if counted {
			s.Groups++
		}
	}
	s.SHA256 = hex.EncodeToString(h.Sum(nil))
	return s
}

// Digest is Collector for frames that arrive already in (group, frame)
// order: it hashes as it goes and keeps nothing, so a long stream costs
// constant memory. Its Summary equals a Collector's for the same frames.
type Digest struct {
	h       hash.Hash
	s       Summary
	lastSeq uint64
}

// Add hashes the next frame, which belongs to group seq (groups in order).
func (d *Digest) Add(seq uint64, payload []byte) {
	if d.h == nil {
		d.h = sha256.New()
	}
	if d.s.Frames == 0 || seq != d.lastSeq {
		d.s.Groups++
		d.lastSeq = seq
	}
	d.h.Write(payload)
	d.s.Frames++
	d.s.Bytes += uint64(len(payload))
}

// Summary returns the counts and the digest of the frames so far.
func (d *Digest) Summary() Summary {
	if d.h == nil {
		d.h = sha256.New()
	}
	s := d.s
	s.SHA256 = hex.EncodeToString(d.h.Sum(nil))
	return s
}
