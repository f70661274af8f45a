package impair

import (
	"context"
	"time"
)

// AwaitTraffic waits until traffic through a proxy (its Bytes count) has
// been seen to grow at two moments at least span apart, and returns nil;
// or ctx's error if it ends first. A test that checks an idle connection
// survives its idle timeout waits on this, not on a sleep: the connection
// is then known to have carried keep-alives across the whole span.
func AwaitTraffic(ctx context.Context, p interface{ Bytes() int64 }, span time.Duration) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := p.Bytes()
	var first time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			n := p.Bytes()
			if n == last {
				continue
			}
			last = n
			if first.IsZero() {
				first = now
			} else if now.Sub(first) >= span {
				return nil
			}
		}
	}
}
