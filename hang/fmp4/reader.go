package fmp4

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/moqp2p/moqp2p/hang"
)

// ErrFormat is returned (wrapped) for input that is not fragmented MP4
// this package can read.
var ErrFormat = errors.New("fmp4: unsupported input")

// MaxBoxBytes bounds one top-level box (a fragment's mdat, typically one
// group of pictures): the reader holds at most one such box and its
// parsed samples at a time.
const MaxBoxBytes = 64 << 20

// Track names Reader gives the input's first H.264 video track and first
// AAC audio track.
const (
	VideoTrack = "video"
	AudioTrack = "audio"
)

// Sample is one media sample of the input, in presentation-time
// microseconds.
type Sample struct {
	// Track is the hang track the sample belongs to.
	Track string
	// Timestamp is the presentation time in microseconds from the
	// stream's start.
	Timestamp uint64
	// Duration is the sample's duration in microseconds.
	Duration uint64
	// Keyframe is true for sync samples.
	Keyframe bool
	// Data is the codec bitstream, as stored in MP4.
	Data []byte
}

// track is an input track Reader turns into a hang rendition.
type track struct {
	name      string
	id        uint32
	timescale uint32
	trex      *mp4.TrexBox
	stbl      *mp4.StblBox
}

// Reader reads fragmented MP4 progressively: the init segment at
// NewReader, then one fragment at a time. Given a file (an io.ReadSeeker
// that can seek), it also reads progressive MP4, what ffmpeg writes
// without -movflags and what phones record: the moov's sample tables
// index the samples, read one at a time wherever they are.
type Reader struct {
	r       io.Reader
	seeker  io.ReadSeeker // r, if it can seek
	size    int64         // the file's size, with seeker
	indexed []indexed     // a progressive file's samples still to read
	// progressive is true for a progressive file, read from indexed.
	progressive bool
	pos         uint64
	catalog     *hang.Catalog
	tracks      []*track // video first, then audio if any
	moof        *mp4.MoofBox
	pending     []Sample
	base        uint64 // the first fragment's earliest presentation time (µs), subtracted from all
	based       bool
}

// NewReader reads the init segment (ftyp, moov) from r and describes its
// first H.264 video track (required) and first AAC audio track (if any)
// in a catalog. Other tracks are ignored. A progressive MP4 is read only
// if r is an io.ReadSeeker that can seek (a file, not a pipe).
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: r}
	if s, ok := r.(io.ReadSeeker); ok {
		if pos, err := s.Seek(0, io.SeekCurrent); err == nil {
			if end, err := s.Seek(0, io.SeekEnd); err == nil {
				if _, err := s.Seek(pos, io.SeekStart); err == nil {
					rd.seeker, rd.size, rd.pos = s, end, uint64(pos)
				}
			}
		}
	}
	for rd.catalog == nil {
		box, err := rd.box()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: no moov box", ErrFormat)
			}
			return nil, err
		}
		if moov, ok := box.(*mp4.MoovBox); ok {
			if err := rd.init(moov); err != nil {
				return nil, err
			}
			if progressive(moov) {
				if rd.seeker == nil {
					return nil, errNotStreamable
				}
				if err := rd.index(); err != nil {
					return nil, err
				}
				rd.progressive = true
			}
		}
	}
	return rd, nil
}

// Catalog returns the hang catalog describing the input.
func (rd *Reader) Catalog() *hang.Catalog { return rd.catalog }

// init finds the video (and audio) track in moov.
func (rd *Reader) init(moov *mp4.MoovBox) error {
	cat := &hang.Catalog{}
	var audio *track
	for _, trak := range moov.Traks {
		if trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil {
			continue
		}
		if trak.Tkhd == nil || trak.Mdia.Mdhd == nil {
			continue
		}
		t := &track{id: trak.Tkhd.TrackID, timescale: trak.Mdia.Mdhd.Timescale, stbl: trak.Mdia.Minf.Stbl}
		if t.timescale == 0 {
			continue
		}
		if moov.Mvex != nil {
			t.trex, _ = moov.Mvex.GetTrex(t.id)
		}
		stsd := trak.Mdia.Minf.Stbl.Stsd
		switch trak.Mdia.Hdlr.HandlerType {
		case "vide":
			if cat.Video != nil {
				continue
			}
			if stsd.AvcX == nil || stsd.AvcX.AvcC == nil {
				return fmt.Errorf("%w: video track %d is not H.264", ErrFormat, t.id)
			}
			cfg, err := videoConfig(stsd.AvcX)
			if err != nil {
				return err
			}
			t.name = VideoTrack
			rd.tracks = append([]*track{t}, rd.tracks...)
			cat.Video = &hang.Video{Renditions: map[string]hang.VideoConfig{VideoTrack: cfg}}
		case "soun":
			if audio != nil || stsd.Mp4a == nil {
				continue // not AAC: left out
			}
			cfg, ok := audioConfig(stsd.Mp4a, t.timescale)
			if !ok {
				continue
			}
			t.name, audio = AudioTrack, t
			rd.tracks = append(rd.tracks, t)
			cat.Audio = &hang.Audio{Renditions: map[string]hang.AudioConfig{AudioTrack: cfg}}
		}
	}
	if cat.Video == nil {
		return fmt.Errorf("%w: no video track", ErrFormat)
	}
	rd.catalog = cat
	return nil
}

// videoConfig describes an H.264 sample entry: avc1 with the record out
// of band, as MP4 stores it.
func videoConfig(avcx *mp4.VisualSampleEntryBox) (hang.VideoConfig, error) {
	var rec bytes.Buffer
	if err := avcx.AvcC.DecConfRec.Encode(&rec); err != nil {
		return hang.VideoConfig{}, fmt.Errorf("%w: avcC: %v", ErrFormat, err)
	}
	d := avcx.AvcC.DecConfRec
	latency := true
	return hang.VideoConfig{
		Codec:              fmt.Sprintf("avc1.%02x%02x%02x", d.AVCProfileIndication, d.ProfileCompatibility, d.AVCLevelIndication),
		Container:          hang.Legacy,
		Description:        hex.EncodeToString(rec.Bytes()),
		CodedWidth:         uint64(avcx.Width),
		CodedHeight:        uint64(avcx.Height),
		OptimizeForLatency: &latency,
	}, nil
}

// audioConfig describes an AAC sample entry (mp4a with an
// AudioSpecificConfig), as @moq/publish describes AAC: the config in hex as
// the description; false if it is not AAC.
func audioConfig(mp4a *mp4.AudioSampleEntryBox, timescale uint32) (hang.AudioConfig, bool) {
	if mp4a.Esds == nil || mp4a.Esds.DecConfigDescriptor == nil || mp4a.Esds.DecConfigDescriptor.DecSpecificInfo == nil ||
		mp4a.Esds.DecConfigDescriptor.ObjectType != 0x40 { // MPEG-4 audio
		return hang.AudioConfig{}, false
	}
	asc := mp4a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig
	if len(asc) < 2 {
		return hang.AudioConfig{}, false
	}
	// The AudioSpecificConfig is what the decoder goes by (the sample
	// entry's channel count says 2 for mono AAC from ffmpeg, for one).
	rate, channels := uint64(mp4a.SampleRate), uint64(mp4a.ChannelCount)
	if rate == 0 {
		rate = uint64(timescale)
	}
	if r, c, ok := parseASC(asc); ok {
		rate, channels = r, c
	}
	return hang.AudioConfig{
		Codec:            fmt.Sprintf("mp4a.40.%d", asc[0]>>3), // the audio object type
		Container:        hang.Legacy,
		Description:      hex.EncodeToString(asc),
		SampleRate:       rate,
		NumberOfChannels: channels,
	}, true
}

// aacRates are the sampling frequencies an AudioSpecificConfig indexes
// (ISO/IEC 14496-3).
var aacRates = [...]uint64{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// parseASC reads the sample rate and channel configuration from an
// AudioSpecificConfig with a 5-bit object type; false if it holds an
// explicit frequency, a reserved index or no channel configuration.
func parseASC(asc []byte) (rate, channels uint64, ok bool) {
	i := (asc[0]&7)<<1 | asc[1]>>7
	ch := uint64(asc[1]>>3) & 0xf
	if asc[0]>>3 == 31 || int(i) >= len(aacRates) || ch == 0 || ch > 7 {
		return 0, 0, false
	}
	if ch == 7 {
		ch = 8 // configuration 7 is 7.1
	}
	return aacRates[i], ch, true
}

// Next returns the next sample, of the video or the audio track (Sample.Track
// says which), in decode order, and io.EOF at the end of the input.
func (rd *Reader) Next() (Sample, error) {
	if rd.progressive {
		return rd.nextIndexed()
	}
	for len(rd.pending) == 0 {
		box, err := rd.box()
		if err != nil {
			return Sample{}, err
		}
		switch b := box.(type) {
		case *mp4.MoofBox:
			rd.moof = b
		case *mp4.MdatBox:
			if rd.moof == nil {
				continue // an mdat before any moof carries nothing we index
			}
			if err := rd.fragment(rd.moof, b); err != nil {
				return Sample{}, err
			}
			rd.moof = nil
		}
	}
	s := rd.pending[0]
	rd.pending = rd.pending[1:]
	return s, nil
}

// fragment turns one moof+mdat into samples of every track, merged in
// decode order (video first on ties).
func (rd *Reader) fragment(moof *mp4.MoofBox, mdat *mp4.MdatBox) error {
	f := mp4.Fragment{Moof: moof, Mdat: mdat}
	type stamped struct {
		t   *track
		pts uint64 // µs, not rebased
		dts uint64 // µs: the merge order, which keeps each track's decode order
		fs  *mp4.FullSample
	}
	var all []stamped
	for _, t := range rd.tracks {
		trex := t.trex
		if trex == nil {
			trex = &mp4.TrexBox{TrackID: t.id}
		}
		if !fits(moof, mdat, trex) {
			return fmt.Errorf("%w: fragment: a sample of track %d lies outside its mdat", ErrFormat, trex.TrackID)
		}
		full, err := f.GetFullSamples(trex)
		if err != nil {
			return fmt.Errorf("%w: fragment: %v", ErrFormat, err)
		}
		for i := range full {
			all = append(all, stamped{t, scale(uint64(max(full[i].PresentationTime(), 0)), t.timescale), scale(full[i].DecodeTime, t.timescale), &full[i]})
		}
	}
	if len(all) == 0 {
		return nil
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].dts < all[j].dts })
	if !rd.based {
		rd.base = all[0].pts
		for _, s := range all {
			rd.base = min(rd.base, s.pts)
		}
		rd.based = true
	}
	for _, s := range all {
		rd.pending = append(rd.pending, Sample{
			Track:     s.t.name,
			Timestamp: s.pts - min(rd.base, s.pts),
			Duration:  scale(uint64(s.fs.Dur), s.t.timescale),
			Keyframe:  !mp4.DecodeSampleFlags(s.fs.Flags).SampleIsNonSync,
			Data:      s.fs.Data,
		})
	}
	return nil
}

// fits reports whether every sample of the track's runs in moof lies within
// mdat. mp4ff checks where a run starts, not where its samples end: it
// slices mdat by the sample sizes as given, and panics on a size past the
// end (or a run whose sizes wrap around 32 bits). The offsets are worked
// out as mp4ff does (ISO/IEC 14496-12 8.8.7.1: a run's data offset is
// relative to the tfhd's base data offset, else to the moof's start).
func fits(moof *mp4.MoofBox, mdat *mp4.MdatBox, trex *mp4.TrexBox) bool {
	size := uint64(len(mdat.Data))
	for _, traf := range moof.Trafs {
		tfhd := traf.Tfhd
		if tfhd == nil || tfhd.TrackID != trex.TrackID {
			continue
		}
		for _, trun := range traf.Truns {
			trun.AddSampleDefaultValues(tfhd, trex) // what GetFullSamples does first
			base := moof.StartPos
			if tfhd.HasBaseDataOffset() {
				base = tfhd.BaseDataOffset
			}
			if trun.HasDataOffset() {
				base = uint64(int64(trun.DataOffset) + int64(base))
			}
			var off uint64
			if base > 0 {
				off = base - mdat.PayloadAbsoluteOffset() // wraps if before it: caught below
			}
			end := off
			for _, smp := range trun.Samples {
				end += uint64(smp.Size)
				if end > size || end > math.MaxUint32 {
					return false
				}
			}
			if off > size {
				return false
			}
		}
	}
	return true
}

// scale converts v in timescale units to microseconds, rounding to nearest.
func scale(v uint64, timescale uint32) uint64 {
	ts := uint64(timescale)
	if v > math.MaxUint64/1_000_000 {
		return v / ts * 1_000_000
	}
	return (v*1_000_000 + ts/2) / ts
}

// skip seeks past the rest of a box of size bytes (0: to the end of the
// file) whose hlen-byte header was read.
func (rd *Reader) skip(size uint64, hlen int) error {
	if rd.seeker == nil {
		return errNotStreamable
	}
	if size != 0 && size < uint64(hlen) {
		return fmt.Errorf("%w: mdat box of %d bytes", ErrFormat, size)
	}
	next := uint64(rd.size)
	if size != 0 {
		next = min(rd.pos+size, next)
	}
	if _, err := rd.seeker.Seek(int64(next), io.SeekStart); err != nil {
		return err
	}
	rd.pos = next
	return nil
}

// box reads one top-level box, at most MaxBoxBytes; nil for one skipped.
func (rd *Reader) box() (mp4.Box, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(rd.r, hdr[:8]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: box header: %v", ErrFormat, err)
	}
	size := uint64(binary.BigEndian.Uint32(hdr[:4]))
	hlen := 8
	if size == 1 {
		if _, err := io.ReadFull(rd.r, hdr[8:16]); err != nil {
			return nil, fmt.Errorf("%w: box header: %v", ErrFormat, err)
		}
		size, hlen = binary.BigEndian.Uint64(hdr[8:16]), 16
	}
	if string(hdr[4:8]) == "mdat" && rd.catalog == nil {
		// Media before its moov: a progressive file, whose moov
		// indexes it. Skipped here, read sample by sample later.
		return nil, rd.skip(size, hlen)
	}
	if size == 0 {
		return nil, fmt.Errorf("%w: a box running to the end of the input (%q) cannot be streamed", ErrFormat, hdr[4:8])
	}
	if size < uint64(hlen) || size > MaxBoxBytes {
		return nil, fmt.Errorf("%w: %q box of %d bytes (limit %d)", ErrFormat, hdr[4:8], size, MaxBoxBytes)
	}
	buf := make([]byte, size)
	copy(buf, hdr[:hlen])
	if _, err := io.ReadFull(rd.r, buf[hlen:]); err != nil {
		return nil, fmt.Errorf("%w: %q box: %v", ErrFormat, hdr[4:8], err)
	}
	box, err := mp4.DecodeBox(rd.pos, bytes.NewReader(buf))
	if err != nil {
		return nil, fmt.Errorf("%w: %q box: %v", ErrFormat, hdr[4:8], err)
	}
	rd.pos += size
	return box, nil
}
