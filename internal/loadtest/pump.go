// Package loadtest moves frames through the media model as fast as a link
// allows, for benchmarks that compare one path with another in the same run.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Pump writes n frames of payload into tp, perGroup to a group, while
// reading them from tc, and returns when all n were read. The writer stays at
// most window groups ahead of the reader, so neither side's cache evicts
// anything and the measurement is of the path, not of the cache.
func Pump(ctx context.Context, tp *broadcast.TrackProducer, tc *broadcast.TrackConsumer, payload []byte, n, perGroup, window int) error {
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for written := 0; written < n; {
			select {
			case <-credit:
			case <-ctx.Done():
				return
			}
			if perGroup == 1 { // a one-frame group (audio, say) is written whole
				if tp.WriteFrame(payload) != nil {
					return
				}
				written++
				continue
			}
			g, err := tp.AppendGroup()
			if err != nil {
				return
			}
			for i := 0; i < perGroup && written < n; i++ {
				_ = g.WriteFrame(payload)
				written++
			}
			_ = g.Finish()
		}
	}()
	for read := 0; read < n; {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			return fmt.Errorf("after %d frames: %w", read, err)
		}
		for {
			f, err := g.ReadFrame(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("group %d after %d frames: %w", g.Sequence(), read, err)
			}
			if len(f) != len(payload) {
				return fmt.Errorf("frame of %d bytes, want %d", len(f), len(payload))
			}
			read++
		}
		credit <- struct{}{}
	}
	return nil
}
