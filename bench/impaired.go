package main

import (
	"cmp"
	"context"
	"fmt"
	"os"

	"github.com/moqp2p/moqp2p/internal/goodput"
	"github.com/moqp2p/moqp2p/internal/wire"
)

// F1: goodput over an impaired link (internal/goodput). A live stream of
// 1 KiB frames at 1000 frames/s (a group every 33 frames) crosses a UDP
// proxy on loopback that drops 10 % of the packets and delays each by
// 50 ms, in both directions; ours is moq-lite sessions on raw QUIC, raw is
// quic-go with one uni stream per group, the same bytes. Goodput is the
// payload the subscriber received during the stream's duration.
// -f1-duration 60s is the full profile; the default is shorter. The
// reduced profile runs in `go test ./internal/goodput`.

func runImpaired(ctx context.Context, cfg config) []*line {
	d := cfg.f1Duration
	logf("F1: %v of 1000 × 1 KiB frames/s over 10 %% loss + 50 ms", d)
	alpn := cmp.Or(os.Getenv(liteEnv), wire.ALPNLite05) // as the other rows: -alpn, else lite-05
	var ours, raw sample
	for run := range cfg.runs {
		if !skip(0) {
			quiesce()
			if b, err := goodput.Ours(ctx, d, alpn); err != nil {
				logf("F1 ours run %d: %v", run+1, err)
			} else {
				ours = append(ours, goodput.Mbits(b, d))
				logf("F1 ours run %d: %.2f Mbit/s", run+1, ours[len(ours)-1])
			}
		}
		if !skip(1) {
			quiesce()
			if b, err := goodput.Raw(ctx, d); err != nil {
				logf("F1 raw run %d: %v", run+1, err)
			} else {
				raw = append(raw, goodput.Mbits(b, d))
				logf("F1 raw run %d: %.2f Mbit/s", run+1, raw[len(raw)-1])
			}
		}
	}
	return []*line{{
		Row: "F1", Metric: "goodput at 10 % loss + 50 ms each way, Mbit/s",
		Note: fmt.Sprintf("1000 × 1 KiB frames/s offered (8.2 Mbit/s) for %v; both through the same impairing UDP proxy", d),
		Ours: ours, Raw: raw, Target: "≥ 0.9× raw", Check: atLeast((*line).vsRaw, 0.9),
	}}
}
