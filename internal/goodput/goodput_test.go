package goodput

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// durationEnv sets the stream's time per stack: the full profile is 60 s
// (MOQP2P_F1_DURATION=60s); CI runs 10 s.
const durationEnv = "MOQP2P_F1_DURATION"

// ratioFloor is the rule: ours keeps at least 0.9× raw quic-go's
// goodput over the same impaired link in the same run.
const ratioFloor = 0.9

// Row F1, reduced: each stack streams for the time set (10 s by default)
// in two halves, alternating ours, raw, ours, raw, so that a load on the
// machine that comes and goes weighs on both alike; ours must keep at
// least 0.9× raw's goodput, over the bytes of both halves.
//
// The tolerance of a short run: at 10 % loss both stacks' congestion
// controllers keep only about 0.6 of the 8.2 Mbit/s offered, and which
// packets the seeded loss hits depends on each stack's packet sequence, so
// one 5 s half's ratio spreads by ±0.1 or more (0.83 to 1.06 seen here)
// and a 10 s round's by about ±0.05. A round under the floor is therefore
// followed by one more, and the verdict is on the bytes of both (20 s per
// stack): a stack that really keeps less than 0.9× fails it as well.
func TestGoodputUnderLoss(t *testing.T) {
	per := 10 * time.Second
	if v := os.Getenv(durationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", durationEnv, err)
		}
		per = d
	}
	const halves, rounds = 2, 2
	d := per / halves
	ctx := context.Background()
	var ours, raw int64
	var ratios []float64
	var ratio float64
	for round := 1; round <= rounds; round++ {
		for i := range halves {
			o, err := Ours(ctx, d, wire.ALPNLite05)
			if err != nil {
				t.Fatalf("ours, round %d half %d: %v", round, i+1, err)
			}
			r, err := Raw(ctx, d)
			if err != nil {
				t.Fatalf("raw, round %d half %d: %v", round, i+1, err)
			}
			ours, raw = ours+o, raw+r
			ratios = append(ratios, float64(o)/float64(max(r, 1)))
			t.Logf("round %d half %d (%v each): ours %.3f Mbit/s, raw %.3f Mbit/s, %.2f×", round, i+1, d, Mbits(o, d), Mbits(r, d), ratios[len(ratios)-1])
		}
		total := time.Duration(round) * per
		ratio = float64(ours) / float64(max(raw, 1))
		sorted := slices.Sorted(slices.Values(ratios))
		t.Logf("%v per stack: ours %.3f Mbit/s, raw %.3f Mbit/s: %.2f× (halves %.2f–%.2f×)", total, Mbits(ours, total), Mbits(raw, total), ratio, sorted[0], sorted[len(sorted)-1])
		if ratio >= ratioFloor {
			return
		}
	}
	t.Errorf("ours kept %.2f× raw quic-go's goodput, want at least %.1f×", ratio, ratioFloor)
}
