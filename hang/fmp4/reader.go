package fmp4

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"

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

// VideoTrack is the hang track name Reader gives the first video track.
const VideoTrack = "video"

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
}

// Reader reads fragmented MP4 progressively: the init segment at
// NewReader, then one fragment at a time.
type Reader struct {
	r       io.Reader
	pos     uint64
	catalog *hang.Catalog
	video   *track
	moof    *mp4.MoofBox
	pending []Sample
	base    int64 // first presentation time (track timescale), subtracted from all
	based   bool
}

// NewReader reads the init segment (ftyp, moov) from r and describes its
// first H.264 video track in a catalog. Other tracks are ignored.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: r}
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
		}
	}
	return rd, nil
}

// Catalog returns the hang catalog describing the input.
func (rd *Reader) Catalog() *hang.Catalog { return rd.catalog }

// init finds the video track in moov.
func (rd *Reader) init(moov *mp4.MoovBox) error {
	for _, trak := range moov.Traks {
		if trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Hdlr.HandlerType != "vide" {
			continue
		}
		stsd := trak.Mdia.Minf.Stbl.Stsd
		if stsd == nil || stsd.AvcX == nil || stsd.AvcX.AvcC == nil {
			return fmt.Errorf("%w: video track %d is not H.264", ErrFormat, trak.Tkhd.TrackID)
		}
		avcx := stsd.AvcX
		var rec bytes.Buffer
		if err := avcx.AvcC.DecConfRec.Encode(&rec); err != nil {
			return fmt.Errorf("%w: avcC: %v", ErrFormat, err)
		}
		d := avcx.AvcC.DecConfRec
		t := &track{name: VideoTrack, id: trak.Tkhd.TrackID, timescale: trak.Mdia.Mdhd.Timescale}
		if t.timescale == 0 {
			return fmt.Errorf("%w: video timescale 0", ErrFormat)
		}
		if moov.Mvex != nil {
			t.trex, _ = moov.Mvex.GetTrex(t.id)
		}
		latency := true
		rd.video = t
		rd.catalog = &hang.Catalog{Video: &hang.Video{Renditions: map[string]hang.VideoConfig{
			VideoTrack: {
				// avc1 with the record out of band, as MP4 stores it.
				Codec:              fmt.Sprintf("avc1.%02x%02x%02x", d.AVCProfileIndication, d.ProfileCompatibility, d.AVCLevelIndication),
				Container:          hang.Legacy,
				Description:        hex.EncodeToString(rec.Bytes()),
				CodedWidth:         uint64(avcx.Width),
				CodedHeight:        uint64(avcx.Height),
				OptimizeForLatency: &latency,
			},
		}}}
		return nil
	}
	return fmt.Errorf("%w: no video track", ErrFormat)
}

// Next returns the next sample of the video track in decode order, and
// io.EOF at the end of the input.
func (rd *Reader) Next() (Sample, error) {
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

// fragment turns one moof+mdat into samples.
func (rd *Reader) fragment(moof *mp4.MoofBox, mdat *mp4.MdatBox) error {
	t := rd.video
	f := mp4.Fragment{Moof: moof, Mdat: mdat}
	trex := t.trex
	if trex == nil {
		trex = &mp4.TrexBox{TrackID: t.id}
	}
	full, err := f.GetFullSamples(trex)
	if err != nil {
		return fmt.Errorf("%w: fragment: %v", ErrFormat, err)
	}
	for i := range full {
		fs := &full[i]
		pts := fs.PresentationTime()
		if !rd.based {
			rd.base, rd.based = pts, true
		}
		rel := max(pts-rd.base, 0)
		rd.pending = append(rd.pending, Sample{
			Track:     t.name,
			Timestamp: scale(uint64(rel), t.timescale),
			Duration:  scale(uint64(fs.Dur), t.timescale),
			Keyframe:  !mp4.DecodeSampleFlags(fs.Flags).SampleIsNonSync,
			Data:      fs.Data,
		})
	}
	return nil
}

// scale converts v in timescale units to microseconds, rounding to nearest.
func scale(v uint64, timescale uint32) uint64 {
	ts := uint64(timescale)
	if v > math.MaxUint64/1_000_000 {
		return v / ts * 1_000_000
	}
	return (v*1_000_000 + ts/2) / ts
}

// box reads one top-level box, at most MaxBoxBytes.
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
	switch size {
	case 1:
		if _, err := io.ReadFull(rd.r, hdr[8:16]); err != nil {
			return nil, fmt.Errorf("%w: box header: %v", ErrFormat, err)
		}
		size, hlen = binary.BigEndian.Uint64(hdr[8:16]), 16
	case 0:
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
