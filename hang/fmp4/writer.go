package fmp4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/moqp2p/moqp2p/hang"
)

// ErrCodec is returned (wrapped) for a rendition Writer cannot put in MP4.
var ErrCodec = errors.New("fmp4: unsupported codec")

// writerTimescale is the MP4 timescale Writer uses: hang's microseconds,
// so no timestamp is rounded.
const writerTimescale = 1_000_000

// Writer writes one hang video rendition as fragmented MP4: the init
// segment at the first keyframe, then one fragment per frame (so a pipe
// reader such as ffplay sees each frame as soon as the next one tells its
// duration).
type Writer struct {
	w       io.Writer
	cfg     hang.VideoConfig
	annexB  bool // payloads are Annex B and become length-prefixed
	inited  bool
	seq     uint32
	prev    *hang.Frame // waiting for the next frame to know its duration
	lastDur uint64
	base    uint64
	frames  int
}

// NewWriter writes the rendition cfg to w. Only H.264 (avc1/avc3) is
// supported: with a description (avcC, length-prefixed samples) or without
// (Annex B samples carrying their parameter sets at keyframes).
func NewWriter(w io.Writer, cfg hang.VideoConfig) (*Writer, error) {
	if !strings.HasPrefix(cfg.Codec, "avc1.") && !strings.HasPrefix(cfg.Codec, "avc3.") {
		return nil, fmt.Errorf("%w: %q (H.264 only)", ErrCodec, cfg.Codec)
	}
	if cfg.Container.Kind != "" && cfg.Container != hang.Legacy {
		return nil, fmt.Errorf("%w: container %q", ErrCodec, cfg.Container.Kind)
	}
	return &Writer{w: w, cfg: cfg, annexB: cfg.Description == ""}, nil
}

// Frames returns how many frames were taken: written out, or (the last
// one) waiting for the next frame's timestamp or Close.
func (w *Writer) Frames() int { return w.frames }

// WriteFrame adds a frame. Frames before the first keyframe are dropped (a
// decoder cannot start there). Timestamps must not go backwards.
func (w *Writer) WriteFrame(f hang.Frame) error {
	if !w.inited {
		if !f.Keyframe {
			return nil
		}
		if err := w.writeInit(f); err != nil {
			return err
		}
		w.base = f.Timestamp
	}
	if f.Timestamp < w.base {
		return fmt.Errorf("fmp4: timestamp %d µs before the first frame's %d", f.Timestamp, w.base)
	}
	data := f.Payload
	if w.annexB {
		data = avc.ConvertByteStreamToNaluSample(data)
	} else {
		data = bytes.Clone(data)
	}
	next := &hang.Frame{Timestamp: f.Timestamp - w.base, Keyframe: f.Keyframe, Payload: data}
	if w.prev != nil {
		if next.Timestamp < w.prev.Timestamp {
			return fmt.Errorf("fmp4: timestamp %d µs after %d (B-frames are not supported)", next.Timestamp, w.prev.Timestamp)
		}
		if err := w.writeSample(*w.prev, next.Timestamp-w.prev.Timestamp); err != nil {
			return err
		}
	}
	w.prev = next
	w.frames++
	return nil
}

// Close writes the last frame, with the duration of the one before it.
// It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.prev == nil {
		return nil
	}
	dur := w.lastDur
	if dur == 0 {
		dur = 33_333
	}
	err := w.writeSample(*w.prev, dur)
	w.prev = nil
	return err
}

// writeInit writes ftyp+moov for the rendition.
func (w *Writer) writeInit(f hang.Frame) error {
	var sps, pps [][]byte
	if w.annexB {
		sps = avc.ExtractNalusOfTypeFromByteStream(avc.NALU_SPS, f.Payload, true)
		pps = avc.ExtractNalusOfTypeFromByteStream(avc.NALU_PPS, f.Payload, true)
	} else {
		desc, err := w.cfg.DescriptionBytes()
		if err != nil {
			return err
		}
		rec, err := avc.DecodeAVCDecConfRec(desc)
		if err != nil {
			return fmt.Errorf("%w: avcC description: %v", ErrCodec, err)
		}
		sps, pps = rec.SPSnalus, rec.PPSnalus
	}
	if len(sps) == 0 || len(pps) == 0 {
		return fmt.Errorf("%w: no SPS/PPS at the first keyframe", ErrCodec)
	}
	init := mp4.CreateEmptyInit()
	trak := init.AddEmptyTrack(writerTimescale, "video", "und")
	if err := trak.SetAVCDescriptor("avc1", sps, pps, true); err != nil {
		return fmt.Errorf("%w: %v", ErrCodec, err)
	}
	if err := init.Encode(w.w); err != nil {
		return err
	}
	w.inited = true
	return nil
}

// writeSample writes one frame as a fragment.
func (w *Writer) writeSample(f hang.Frame, dur uint64) error {
	if dur > 1<<31 {
		return fmt.Errorf("fmp4: a frame lasting %d µs", dur)
	}
	w.seq++
	frag, err := mp4.CreateFragment(w.seq, 1)
	if err != nil {
		return err
	}
	flags := mp4.NonSyncSampleFlags | mp4.SampleDependsOn1
	if f.Keyframe {
		flags = mp4.SyncSampleFlags
	}
	frag.AddFullSample(mp4.FullSample{
		Sample:     mp4.NewSample(flags, uint32(dur), uint32(len(f.Payload)), 0),
		DecodeTime: f.Timestamp,
		Data:       f.Payload,
	})
	if err := frag.Encode(w.w); err != nil {
		return err
	}
	w.lastDur = dur
	return nil
}
