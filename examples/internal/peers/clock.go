package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// RunClock writes the time on seconds as text, one single-frame group per
// second on the second, until ctx ends (nil) or the track fails. The clock,
// discovery and browser examples publish it as broadcast "clock", track
// "seconds".
func RunClock(ctx context.Context, seconds *broadcast.TrackProducer) error {
	for {
		now := time.Now()
		// WriteFrame makes a group holding this one frame and finishes it.
		if err := seconds.WriteFrame([]byte(now.Format(time.DateTime))); err != nil {
			return err
		}
		select {
		case <-time.After(time.Until(now.Truncate(time.Second).Add(time.Second))):
		case <-ctx.Done():
			return nil
		}
	}
}

// PrintTicks prints a clock track's ticks as "tick N: time": n of them, or
// until ctx ends (n = 0) or the clock stops.
func PrintTicks(ctx context.Context, ticks *broadcast.TrackConsumer, n int) error {
	for printed := 0; n == 0 || printed < n; {
		// NextGroup returns the newest group; a group that arrives late is
		// skipped, as live media does.
		g, err := ticks.NextGroup(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.EOF), errors.Is(err, broadcast.ErrNotFound):
			fmt.Println("the clock stopped")
			return nil
		case err != nil:
			return err
		}
		frame, err := g.ReadFrame(ctx)
		if err != nil {
			continue // a group that was cut short: wait for the next second
		}
		printed++
		fmt.Printf("tick %d: %s\n", printed, frame)
	}
	return nil
}
