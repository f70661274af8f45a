package broadcast

import (
	"context"
	"errors"
	"io"
)

// CopyGroup writes src's frames, from frame skip on, into dst as they
// arrive, with their timestamps, in batches of what has arrived; the
// payloads are shared, not copied. It neither finishes nor aborts dst: it
// returns how many frames it wrote and why it stopped, readErr nil when src
// ended cleanly, else src's error, or dst's write error. A relay, a
// resilient track and a moving subscription all copy groups this way (skip
// lets a group resumed from another source keep the frames it has).
func CopyGroup(ctx context.Context, dst *GroupProducer, src *GroupConsumer, skip int) (n int, readErr, writeErr error) {
	const batch = 64
	buf, tbuf := make([][]byte, 0, batch), make([]uint64, 0, batch)
	seen := 0 // src's frames read so far
	for {
		frames, ts, err := src.TryReadFramesAt(buf[:0], tbuf[:0], batch)
		if len(frames) == 0 && err == nil { // nothing yet: wait for one
			var f []byte
			var t uint64
			if f, t, err = src.ReadFrameAt(ctx); err == nil {
				frames, ts = append(buf[:0], f), append(tbuf[:0], t)
			}
		}
		if len(frames) == 0 {
			if errors.Is(err, io.EOF) {
				return n, nil, nil
			}
			return n, err, nil
		}
		if k := min(max(skip-seen, 0), len(frames)); k > 0 {
			seen += k
			frames, ts = frames[k:], ts[k:]
		}
		seen += len(frames)
		if len(frames) > 0 {
			if err := dst.WriteFramesAt(ts, frames...); err != nil {
				return n, nil, err
			}
			n += len(frames)
		}
	}
}
