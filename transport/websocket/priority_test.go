package websocket

import (
	"bytes"
	"context"
	"testing"

	"github.com/moqp2p/moqp2p/internal/testutil"
)

// bareConn is a Conn without a WebSocket or loops, for driving the
// scheduler by hand.
func bareConn(fr Framing) *Conn {
	cfg := (&Config{Logger: testutil.Logger()}).withDefaults()
	c := &Conn{framing: fr, cfg: cfg, log: cfg.log, streams: map[uint64]*stream{}}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	return c
}

// takeStreamFrames runs the writer's selection until it has nothing more,
// returning the STREAM frames in order.
func takeStreamFrames(t *testing.T, c *Conn) []frame {
	t.Helper()
	var out []frame
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		msg := c.nextMessageLocked(nil)
		if msg == nil {
			return out
		}
		f, err := decodeOne(c.framing, msg)
		if err != nil {
			t.Fatal(err)
		}
		if f.kind == kindStream {
			f.data = bytes.Clone(f.data)
			out = append(out, f)
		}
	}
}

// TestSchedulerUrgencyFirst: data queued on an urgency-0 stream goes out
// before data queued earlier on urgency-7 streams, which then take turns
// frame by frame; SetPriority moves a queued stream.
func TestSchedulerUrgencyFirst(t *testing.T) {
	c := bareConn(FramingLegacy)
	open := func(urgency int8, size int, fin bool) *stream {
		c.mu.Lock()
		s := c.newStreamLocked(streamID(c.nextLocal[1], false, true))
		c.nextLocal[1]++
		c.mu.Unlock()
		s.setPriority(urgency)
		if _, err := s.write(bytes.Repeat([]byte{byte(s.id)}, size)); err != nil {
			t.Fatal(err)
		}
		if fin {
			_ = s.closeSend()
		}
		return s
	}
	a := open(7, 40000, false)
	b := open(7, 40000, false)
	cc := open(7, 40000, false)
	d := open(0, 40000, true)
	e := open(5, 100, true)
	e.setPriority(1) // re-prioritised while queued: now ahead of the 7s
	var order []uint64
	for _, f := range takeStreamFrames(t, c) {
		order = append(order, f.id)
		if f.fin && f.id == d.id && len(f.data) != 40000-2*maxStreamPayload {
			t.Errorf("last frame of d: %d bytes", len(f.data))
		}
	}
	want := []uint64{d.id, d.id, d.id, e.id, a.id, b.id, cc.id, a.id, b.id, cc.id, a.id, b.id, cc.id}
	if len(order) != len(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
}

// TestPriorityOnTheWire: with the connection out of credit, a server queues
// 32 KiB on three urgency-7 streams and then on an urgency-0 stream. Once
// the receiver grants credit, all of the urgency-0 data arrives first.
func TestPriorityOnTheWire(t *testing.T) {
	ts := newTestServer(t, nil)
	rc := dialRaw(t, ts.url(), "qmux-00")
	s := ts.next(t)
	ctx := testCtx(t)
	if f, err := rc.recvQmux(ctx); err != nil || f.kind != kindTransportParams {
		t.Fatalf("first frame %+v, %v", f, err)
	}
	// Streams and stream credit, but no connection credit yet.
	rc.sendFrame(FramingQmux, frame{kind: kindTransportParams, params: transportParams{
		maxStreamDataUni: 1 << 20, maxStreamsUni: 10}})
	payload := bytes.Repeat([]byte("x"), 32<<10)
	var low []uint64
	for range 3 {
		st, err := s.OpenUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.SetPriority(7)
		mustWrite(t, st, payload)
		_ = st.Close()
		low = append(low, st.(*sendStream).s.id)
	}
	urgent, err := s.OpenUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	urgent.SetPriority(0)
	mustWrite(t, urgent, payload)
	_ = urgent.Close()
	uid := urgent.(*sendStream).s.id

	rc.sendFrame(FramingQmux, frame{kind: kindMaxData, max: 1 << 20})
	got := map[uint64]int{}
	var seq []uint64
	for fins := 0; fins < 4; {
		f, err := rc.recvQmux(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.kind != kindStream {
			continue
		}
		got[f.id] += len(f.data)
		seq = append(seq, f.id)
		if f.fin {
			fins++
		}
		if f.id != uid && got[uid] < len(payload) {
			t.Fatalf("urgency-7 stream %d sent before the urgency-0 one finished (%d of %d bytes); order %v", f.id, got[uid], len(payload), seq)
		}
	}
	for _, id := range append(low, uid) {
		if got[id] != len(payload) {
			t.Fatalf("stream %d: %d bytes", id, got[id])
		}
	}
	t.Logf("frame order: %v", seq)
}

// TestQmuxStreamOffsets: qmux-00 STREAM frames carry their offset as QUIC
// does: the first frame of a stream none (offset 0), every later one the
// number of bytes sent on that stream before it, streams interleaved.
func TestQmuxStreamOffsets(t *testing.T) {
	c := bareConn(FramingQmux)
	c.sendMaxData = 1 << 40
	var streams []*stream
	for range 2 {
		c.mu.Lock()
		s := c.newStreamLocked(streamID(c.nextLocal[1], false, true))
		c.nextLocal[1]++
		s.smax = 1 << 40
		c.mu.Unlock()
		if _, err := s.write(bytes.Repeat([]byte{byte(s.id)}, 3*maxStreamPayload+5)); err != nil {
			t.Fatal(err)
		}
		_ = s.closeSend()
		streams = append(streams, s)
	}
	sent := map[uint64]uint64{}
	frames := takeStreamFrames(t, c)
	if len(frames) != 8 {
		t.Fatalf("%d frames, want 8", len(frames))
	}
	for i, f := range frames {
		off := uint64(0)
		if f.hasOffset {
			off = f.offset
		}
		if off != sent[f.id] || (sent[f.id] > 0) != f.hasOffset {
			t.Fatalf("frame %d (stream %d): offset %d (OFF %v), want %d", i, f.id, off, f.hasOffset, sent[f.id])
		}
		sent[f.id] += uint64(len(f.data))
	}
	for _, s := range streams {
		if sent[s.id] != 3*maxStreamPayload+5 {
			t.Errorf("stream %d: %d bytes", s.id, sent[s.id])
		}
	}
}
