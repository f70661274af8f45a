package fmp4

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/Eyevinn/mp4ff/mp4"
)

// MaxSamples bounds the samples Reader indexes in a progressive file (a
// day of 25 fps video with 48 kHz AAC is well under it).
const MaxSamples = 1 << 23

// remux is the advice for input only a file's random access can read.
const remux = "remux it to fragmented MP4: ffmpeg -i IN.mp4 -c copy -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof OUT.mp4"

// errNotStreamable is returned for progressive MP4 read from a pipe.
var errNotStreamable = fmt.Errorf("%w: a progressive (non-fragmented) MP4 can only be read from a file, not a pipe; %s", ErrFormat, remux)

// indexed is one sample of a progressive file: where it is and when.
type indexed struct {
	t        *track
	off      uint64
	size     uint32
	dts, pts uint64 // µs; pts not rebased
	dur      uint64 // µs
	key      bool
}

// progressive reports whether moov indexes its media itself (a
// progressive file) rather than announcing fragments: no mvex, or sample
// tables with samples in them.
func progressive(moov *mp4.MoovBox) bool {
	if moov.Mvex == nil {
		return true
	}
	for _, trak := range moov.Traks {
		if trak.Mdia != nil && trak.Mdia.Minf != nil && trak.Mdia.Minf.Stbl != nil &&
			trak.Mdia.Minf.Stbl.Stsz != nil && trak.Mdia.Minf.Stbl.Stsz.SampleNumber > 0 {
			return true
		}
	}
	return false
}

// index builds the sample list of a progressive file from its tracks'
// sample tables, merged in decode order (video first on ties).
func (rd *Reader) index() error {
	var all []indexed
	for _, t := range rd.tracks {
		samples, err := trackSamples(t, MaxSamples-len(all), uint64(rd.size))
		if err != nil {
			return err
		}
		all = append(all, samples...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].dts < all[j].dts })
	for _, s := range all {
		if !rd.based || s.pts < rd.base {
			rd.base, rd.based = s.pts, true
		}
	}
	rd.indexed = all
	return nil
}

// trackSamples walks t's sample tables: chunks (stco/co64) of samples
// (stsc), their sizes (stsz), decode times (stts), composition offsets
// (ctts) and sync samples (stss, all sync without one).
//
// Every sample must lie within the file's size bytes.
func trackSamples(t *track, limit int, size uint64) ([]indexed, error) {
	st := t.stbl
	if st.Stsz == nil || st.Stsc == nil || st.Stts == nil || (st.Stco == nil && st.Co64 == nil) {
		return nil, fmt.Errorf("%w: track %d has no sample tables", ErrFormat, t.id)
	}
	n := int(st.Stsz.SampleNumber)
	if n > limit {
		return nil, fmt.Errorf("%w: track %d has %d samples (limit %d)", ErrFormat, t.id, n, MaxSamples)
	}
	if st.Stsz.SampleUniformSize == 0 && len(st.Stsz.SampleSize) < n {
		return nil, fmt.Errorf("%w: track %d: stsz", ErrFormat, t.id)
	}
	var offsets []uint64
	if st.Co64 != nil {
		offsets = st.Co64.ChunkOffset
	} else {
		for _, o := range st.Stco.ChunkOffset {
			offsets = append(offsets, uint64(o))
		}
	}
	var out []indexed
	// stts runs: entry e covers SampleCount[e] samples of SampleTimeDelta[e].
	var dts uint64
	e, left := 0, uint32(0)
	if len(st.Stts.SampleCount) > 0 {
		left = st.Stts.SampleCount[0]
	}
	var ctts *mp4.CttsBox
	if c := st.Ctts; c != nil && len(c.SampleOffset) > 0 && len(c.EndSampleNr) == len(c.SampleOffset)+1 {
		ctts = c
	}
	entries := st.Stsc.Entries
	se := -1 // the stsc entry for the chunk: the last whose FirstChunk ≤ it
	for c := 0; c < len(offsets) && len(out) < n; c++ {
		chunk := uint32(c + 1)
		for se+1 < len(entries) && entries[se+1].FirstChunk <= chunk {
			se++
		}
		if se < 0 {
			return nil, fmt.Errorf("%w: track %d: stsc has no entry for chunk %d", ErrFormat, t.id, chunk)
		}
		off := offsets[c]
		for k := uint32(0); k < entries[se].SamplesPerChunk && len(out) < n; k++ {
			i := len(out)
			sz := st.Stsz.SampleUniformSize
			if sz == 0 {
				sz = st.Stsz.SampleSize[i]
			}
			if sz > MaxBoxBytes {
				return nil, fmt.Errorf("%w: track %d: a sample of %d bytes (limit %d)", ErrFormat, t.id, sz, MaxBoxBytes)
			}
			if off+uint64(sz) > size {
				return nil, fmt.Errorf("%w: track %d: sample %d at %d runs past the end of the file", ErrFormat, t.id, i+1, off)
			}
			for left == 0 {
				if e++; e >= len(st.Stts.SampleCount) {
					return nil, fmt.Errorf("%w: track %d: stts covers %d of %d samples", ErrFormat, t.id, i, n)
				}
				left = st.Stts.SampleCount[e]
			}
			left--
			dur := uint64(st.Stts.SampleTimeDelta[e])
			pts := int64(dts)
			if ctts != nil && uint32(i+1) <= ctts.EndSampleNr[len(ctts.EndSampleNr)-1] {
				pts += int64(ctts.GetCompositionTimeOffset(uint32(i + 1)))
			}
			out = append(out, indexed{
				t: t, off: off, size: sz,
				dts: scale(dts, t.timescale), pts: scale(uint64(max(pts, 0)), t.timescale),
				dur: scale(dur, t.timescale),
				key: st.Stss == nil || st.Stss.IsSyncSample(uint32(i+1)),
			})
			off += uint64(sz)
			dts += dur
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("%w: track %d: its chunks hold %d of %d samples", ErrFormat, t.id, len(out), n)
	}
	return out, nil
}

// nextIndexed reads the next sample of a progressive file.
func (rd *Reader) nextIndexed() (Sample, error) {
	if len(rd.indexed) == 0 {
		return Sample{}, io.EOF
	}
	s := rd.indexed[0]
	rd.indexed = rd.indexed[1:]
	data := make([]byte, s.size)
	if _, err := rd.seeker.Seek(int64(s.off), io.SeekStart); err != nil {
		return Sample{}, err
	}
	if _, err := io.ReadFull(rd.seeker, data); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Sample{}, fmt.Errorf("%w: a sample at %d runs past the end of the file", ErrFormat, s.off)
		}
		return Sample{}, err
	}
	return Sample{
		Track:     s.t.name,
		Timestamp: s.pts - min(rd.base, s.pts),
		Duration:  s.dur,
		Keyframe:  s.key,
		Data:      data,
	}, nil
}
