package session

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
)

// fuzzMaxFrame is the frame size limit of FuzzGroupFrames: above chunkMax,
// so that frames with memory of their own are reachable too.
const fuzzMaxFrame = 2*chunkMax + 100

// FuzzGroupFrames feeds the bytes that follow a GROUP header to the group
// stream parser, both ways a stream is read: in pieces of any size
// (readFrames, chunk by chunk) and, when it fits one read buffer, arrived
// whole with its FIN (recvWhole, falling back to readFrames). Either way
// the frames the group gets, with their timestamps (lite-05), are those of
// an independent decode of the bytes, up to the first bad frame; the group
// fails exactly when the bytes are not whole, valid frames; and the receive
// budget holds nothing once the track is gone.
func FuzzGroupFrames(f *testing.F) {
	// The frames of docs/wire.md's GROUP vectors (the header left out).
	for _, h := range []struct {
		stamped bool
		hex     string
	}{
		{true, "47d0 02 6630 3c 02 6631 13 02 6632 4042 02 6633"}, // timestamps 1000, 1030, 1020, 1053
		{true, "00 00"}, // timestamp 0, empty payload
		{false, "02 6630 00 03 616263"},
		{false, ""},
		{false, "05 6162"},   // cut short
		{true, "47"},         // a timestamp cut short
		{false, "7fff 00"},   // over the size limit
		{false, "8000 4100"}, // a frame of memory of its own, cut short
	} {
		for _, piece := range []uint16{1, 3, 1300, 0} {
			f.Add(h.stamped, piece, unhex(f, h.hex))
		}
	}
	f.Fuzz(func(t *testing.T, stamped bool, piece uint16, data []byte) {
		want, wantTS, ok := refFrames(data, stamped)
		n := int(piece)
		if n == 0 {
			n = len(data) + 1
		}
		got, gotTS, err := fuzzRead(t, data, stamped, func(s *Session, gr *groupReader, tp *broadcast.TrackProducer, ts *frameStamps) error {
			g, _ := tp.CreateGroup(0)
			c := gr.startChunks()
			err := s.readFrames(c, g, nil, ts)
			if err != nil {
				g.Abort(err)
			} else {
				_ = g.Finish()
			}
			return err
		}, &pieceStream{rest: data, piece: n})
		check(t, "in pieces", got, gotTS, err, want, wantTS, ok)
		if len(data) > 16<<10 { // more than one read buffer: never arrives whole
			return
		}
		got, gotTS, err = fuzzRead(t, data, stamped, func(s *Session, gr *groupReader, tp *broadcast.TrackProducer, ts *frameStamps) error {
			if !gr.arrived() {
				t.Fatal("a stream read whole in one go did not count as arrived")
			}
			sub := &subscription{track: tp}
			gr.hdr = wire.Group{}
			s.recvInto(gr.src.rs, gr, sub)
			gc, err := tp.Consume().RecvGroup(t.Context())
			if err != nil {
				return err
			}
			for { // the group's end: its error, if any
				if _, err := gc.ReadFrame(t.Context()); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
			}
		}, &chunkStream{chunks: []chunk{{string(data), io.EOF}}})
		check(t, "whole", got, gotTS, err, want, wantTS, ok)
	})
}

// fuzzRead runs read over a group reader on st and returns the frames and
// timestamps group 0 of the track got, and read's error.
func fuzzRead(t *testing.T, data []byte, stamped bool, read func(*Session, *groupReader, *broadcast.TrackProducer, *frameStamps) error, st interface {
	Read([]byte) (int, error)
	CancelRead(uint32)
}) ([]string, []uint64, error) {
	budget := broadcast.NewBudget(1<<22, nil)
	// A group may hold every frame the bytes make (at least one byte each):
	// past the model's GroupMaxFrames a group drops its oldest frames,
	// which the reference decode does not model.
	model := broadcast.Limits{Budget: budget, GroupMaxFrames: len(data) + 1}
	s := &Session{log: slog.New(slog.DiscardHandler), lim: Limits{MaxFrameSize: fuzzMaxFrame, Model: model}.withDefaults()}
	if stamped {
		s.version = wire.Lite05
	} else {
		s.version = wire.Lite04
	}
	tp := broadcast.NewTrack(broadcast.Track{Name: "t"}, model)
	gr := getGroupReader(st)
	_, _ = gr.Peek(1) // as the header's read leaves it: some bytes buffered
	ts := &frameStamps{on: stamped, mul: 1, div: 1}
	ts.batch = ts.arr[:0]
	err := read(s, gr, tp, ts)
	putGroupReader(gr)
	var frames []string
	var stamps []uint64
	if gc, gerr := tp.Consume().RecvGroup(t.Context()); gerr == nil {
		for {
			f, ts, ok, err := gc.TryReadFrameAt()
			if !ok || err != nil {
				break
			}
			frames = append(frames, string(f))
			stamps = append(stamps, ts)
		}
	}
	tp.Abort(nil)
	if used := budget.Used(); used != 0 {
		t.Fatalf("budget holds %d bytes after the track ended", used)
	}
	return frames, stamps, err
}

func check(t *testing.T, how string, got []string, gotTS []uint64, err error, want []string, wantTS []uint64, ok bool) {
	t.Helper()
	if (err == nil) != ok {
		t.Fatalf("%s: error %v, want failure %v", how, err, !ok)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: %d frames %q, want %d %q", how, len(got), got, len(want), want)
	}
	if wantTS != nil && !slices.Equal(gotTS, wantTS) {
		t.Fatalf("%s: timestamps %v, want %v", how, gotTS, wantTS)
	}
}

// refFrames decodes frames one by one, plainly: the frames up to the first
// bad one, their timestamps (stamped only) and whether all of data was
// whole, valid frames.
func refFrames(data []byte, stamped bool) (frames []string, stamps []uint64, ok bool) {
	var prev uint64
	for len(data) > 0 {
		var ts uint64
		if stamped {
			var n int
			var err error
			if ts, n, err = wire.ParseTimestamp(data, prev); err != nil {
				return frames, stamps, false
			}
			prev, data = ts, data[n:]
		}
		size, n, err := wire.ParseVarint(data)
		if err != nil || size > fuzzMaxFrame || size > uint64(len(data)-n) {
			return frames, stamps, false
		}
		data = data[n:]
		frames = append(frames, string(data[:size]))
		if stamped {
			stamps = append(stamps, ts)
		}
		data = data[size:]
	}
	return frames, stamps, true
}
