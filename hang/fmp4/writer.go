package fmp4

import (
	"bytes"
	"encoding/hex"
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
	pending  []hang.Frame // before the init segment, at most maxPendingAudio
	prev     *hang.Frame  // rebased; waiting for the next frame's timestamp
	lastDur  uint64       // in rate units
	frames   int
}

// maxPendingAudio bounds the audio frames Writer holds while it waits for
// the first video keyframe (about 10 s of 48 kHz AAC); older ones go.
const maxPendingAudio = 512

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

// AudioFrames returns how many audio frames were taken (written, or the
// last one waiting for the next).
func (w *Writer) AudioFrames() int {
	if w.audio == nil {
		return 0
	}
	return w.audio.frames
}

// WriteAudio adds an audio frame. Frames before the first video keyframe
// wait for it (the init segment needs it) and are written from its time
// on. Timestamps must not go backwards.
func (w *Writer) WriteAudio(f hang.Frame) error {
	a := w.audio
	if a == nil {
		return errors.New("fmp4: WriteAudio without AddAudio")
	}
	if !w.inited {
		if len(a.pending) == maxPendingAudio {
			a.pending = a.pending[1:]
		}
		a.pending = append(a.pending, hang.Frame{Timestamp: f.Timestamp, Payload: bytes.Clone(f.Payload)})
		return nil
	}
	if f.Timestamp < w.base {
		return nil // before the video starts
	}
	next := &hang.Frame{Timestamp: f.Timestamp - w.base, Keyframe: true, Payload: bytes.Clone(f.Payload)}
	if a.prev != nil {
		if next.Timestamp < a.prev.Timestamp {
			return fmt.Errorf("fmp4: audio timestamp %d µs after %d", next.Timestamp, a.prev.Timestamp)
		}
		if err := w.writeAudioSample(*a.prev, a.units(next.Timestamp)-a.units(a.prev.Timestamp)); err != nil {
			return err
		}
	}
	a.prev = next
	a.frames++
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

// flushPendingAudio writes the audio that came before the init segment,
// from the video's first timestamp on.
func (w *Writer) flushPendingAudio() error {
	if w.audio == nil {
		return nil
	}
	pending := w.audio.pending
	w.audio.pending = nil
	for _, f := range pending {
		if err := w.WriteAudio(f); err != nil {
			return err
		}
	}
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
