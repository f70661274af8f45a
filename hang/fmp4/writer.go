package fmp4

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
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

// Writer writes one hang video rendition (and, with AddAudio, an AAC one)
// as fragmented MP4: the init segment at the first video keyframe, then
// one fragment per frame (so a pipe reader such as ffplay sees each frame
// as soon as the next one tells its duration). It is not safe for
// concurrent use.
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
	audio   *audioOut // nil: video only
}

// audioOut is the AAC track of a Writer (track 2, timescale the sample
// rate, so AAC's 1024-sample frames have exact durations).
type audioOut struct {
	asc      []byte
	rate     uint64
	channels uint16
	pending  []hang.Frame // in timestamp order: waiting for the init segment or for reordering
	newest   uint64       // the latest timestamp taken (µs, not rebased)
	prev     *hang.Frame  // rebased; waiting for the next frame's timestamp
	lastDur  uint64       // in rate units
	frames   int
}

// maxPendingAudio bounds the audio frames Writer holds while it waits for
// the first video keyframe or for late frames (about 10 s of 48 kHz AAC);
// beyond it the oldest are written (or, before the video, dropped).
const maxPendingAudio = 512

// audioReorder is how long Writer holds audio frames for one that arrives
// late (group streams of one frame each arrive in any order): a frame
// goes out once one 500 ms newer came. A frame later than that is dropped.
const audioReorder = 500_000 // µs

// AddAudio adds an AAC rendition as a second track. Call it before the
// first frame.
func (w *Writer) AddAudio(cfg hang.AudioConfig) error {
	if w.inited || w.prev != nil {
		return errors.New("fmp4: AddAudio after the first frame")
	}
	if !strings.HasPrefix(cfg.Codec, "mp4a.40.") {
		return fmt.Errorf("%w: audio %q (AAC only)", ErrCodec, cfg.Codec)
	}
	asc, err := hex.DecodeString(cfg.Description)
	if err != nil || len(asc) < 2 || cfg.SampleRate == 0 || cfg.SampleRate > 1<<16-1 || cfg.NumberOfChannels == 0 || cfg.NumberOfChannels > 8 {
		return fmt.Errorf("%w: audio %q needs its AudioSpecificConfig, a sample rate and channels", ErrCodec, cfg.Codec)
	}
	w.audio = &audioOut{asc: asc, rate: cfg.SampleRate, channels: uint16(cfg.NumberOfChannels)}
	return nil
}

// AudioFrames returns how many audio frames were written out (or are
// waiting only for the next one's timestamp); frames held for reordering
// count once they are due, and all of them after Close.
func (w *Writer) AudioFrames() int {
	if w.audio == nil {
		return 0
	}
	return w.audio.frames
}

// WriteAudio adds an audio frame. Frames may come out of order by up to
// audioReorder; frames before the first video keyframe wait for it (the
// init segment needs it) and are written from its time on.
func (w *Writer) WriteAudio(f hang.Frame) error {
	a := w.audio
	if a == nil {
		return errors.New("fmp4: WriteAudio without AddAudio")
	}
	if a.prev != nil && f.Timestamp < w.base+a.prev.Timestamp {
		return nil // later than the reordering allows: its time is written
	}
	i := sort.Search(len(a.pending), func(i int) bool { return a.pending[i].Timestamp >= f.Timestamp })
	if i < len(a.pending) && a.pending[i].Timestamp == f.Timestamp {
		return nil // a duplicate
	}
	a.pending = slices.Insert(a.pending, i, hang.Frame{Timestamp: f.Timestamp, Keyframe: true, Payload: bytes.Clone(f.Payload)})
	a.newest = max(a.newest, f.Timestamp)
	if !w.inited {
		if len(a.pending) > maxPendingAudio {
			a.pending = a.pending[1:]
		}
		return nil
	}
	return w.flushAudio(false)
}

// flushAudio writes the pending audio frames that are due: those
// audioReorder older than the newest (all with all set, or over
// maxPendingAudio), skipping any before the video's first frame.
func (w *Writer) flushAudio(all bool) error {
	a := w.audio
	for len(a.pending) > 0 && (all || len(a.pending) > maxPendingAudio || a.pending[0].Timestamp+audioReorder <= a.newest) {
		f := a.pending[0]
		a.pending = a.pending[1:]
		if f.Timestamp < w.base {
			continue // before the video starts
		}
		next := &hang.Frame{Timestamp: f.Timestamp - w.base, Keyframe: true, Payload: f.Payload}
		if a.prev != nil {
			if err := w.writeAudioSample(*a.prev, a.units(next.Timestamp)-a.units(a.prev.Timestamp)); err != nil {
				return err
			}
		}
		a.prev = next
		a.frames++
	}
	return nil
}

// units converts microseconds to the audio track's timescale.
func (a *audioOut) units(us uint64) uint64 { return (us*a.rate + 500_000) / 1_000_000 }

// writeAudioSample writes one audio frame as a fragment of track 2.
func (w *Writer) writeAudioSample(f hang.Frame, dur uint64) error {
	w.seq++
	frag, err := mp4.CreateFragment(w.seq, 2)
	if err != nil {
		return err
	}
	frag.AddFullSample(mp4.FullSample{
		Sample:     mp4.NewSample(mp4.SyncSampleFlags, uint32(dur), uint32(len(f.Payload)), 0),
		DecodeTime: w.audio.units(f.Timestamp),
		Data:       f.Payload,
	})
	if err := frag.Encode(w.w); err != nil {
		return err
	}
	w.audio.lastDur = dur
	return nil
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
		if err := w.flushPendingAudio(); err != nil {
			return err
		}
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

// Close writes the last frames, each with the duration of the one before
// it. It does not close the underlying writer.
func (w *Writer) Close() error {
	if a := w.audio; a != nil && w.inited {
		if err := w.flushAudio(true); err != nil {
			return err
		}
	}
	if a := w.audio; a != nil && a.prev != nil {
		dur := a.lastDur
		if dur == 0 {
			dur = 1024 // an AAC frame
		}
		if err := w.writeAudioSample(*a.prev, dur); err != nil {
			return err
		}
		a.prev = nil
	}
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
//
// The avc1 entry is built from the configuration record as it is, never
// by parsing the SPS: the parameter sets come from the publisher, and
// mp4ff's SPS parser sizes its tables from the SPS's own fields (a
// hostile one made it allocate terabytes; FuzzWriter).
func (w *Writer) writeInit(f hang.Frame) error {
	var rec avc.DecConfRec
	if w.annexB {
		sps := avc.ExtractNalusOfTypeFromByteStream(avc.NALU_SPS, f.Payload, true)
		pps := avc.ExtractNalusOfTypeFromByteStream(avc.NALU_PPS, f.Payload, true)
		if len(sps) == 0 || len(pps) == 0 || len(sps[0]) < 4 {
			return fmt.Errorf("%w: no SPS/PPS at the first keyframe", ErrCodec)
		}
		rec = avc.DecConfRec{
			AVCProfileIndication: sps[0][1],
			ProfileCompatibility: sps[0][2],
			AVCLevelIndication:   sps[0][3],
			SPSnalus:             sps,
			PPSnalus:             pps,
			ChromaFormat:         1, // 4:2:0, 8 bits: what WebCodecs encoders make
			NoTrailingInfo:       !highProfile(sps[0][1]),
		}
	} else {
		desc, err := w.cfg.DescriptionBytes()
		if err != nil {
			return err
		}
		if rec, err = avc.DecodeAVCDecConfRec(desc); err != nil {
			return fmt.Errorf("%w: avcC description: %v", ErrCodec, err)
		}
		if len(rec.SPSnalus) == 0 || len(rec.PPSnalus) == 0 {
			return fmt.Errorf("%w: avcC description without SPS/PPS", ErrCodec)
		}
	}
	init := mp4.CreateEmptyInit()
	trak := init.AddEmptyTrack(writerTimescale, "video", "und")
	width, height := uint16(min(w.cfg.CodedWidth, 1<<16-1)), uint16(min(w.cfg.CodedHeight, 1<<16-1))
	trak.Tkhd.Width, trak.Tkhd.Height = mp4.Fixed32(uint32(width)<<16), mp4.Fixed32(uint32(height)<<16)
	trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateVisualSampleEntryBox("avc1", width, height, &mp4.AvcCBox{DecConfRec: rec}))
	if a := w.audio; a != nil {
		trak := init.AddEmptyTrack(uint32(a.rate), "audio", "und")
		trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateAudioSampleEntryBox("mp4a", a.channels, 16, uint16(a.rate), mp4.CreateEsdsBox(a.asc)))
	}
	if err := init.Encode(w.w); err != nil {
		return err
	}
	w.inited = true
	return nil
}

// flushPendingAudio writes the audio that came before the init segment
// and is due, from the video's first timestamp on.
func (w *Writer) flushPendingAudio() error {
	if w.audio == nil {
		return nil
	}
	return w.flushAudio(false)
}

// highProfile says whether an H.264 profile's configuration record carries
// the chroma and bit-depth fields (ISO/IEC 14496-15).
func highProfile(profile byte) bool {
	switch profile {
	case 100, 110, 122, 144:
		return true
	}
	return false
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
