package goodput

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Row F1, reduced: moq-lite sessions on raw QUIC next to raw quic-go, each
// through its own impairing UDP proxy of the same profile (Compare: 10 s
// per stack by default, DurationEnv for the full profile).
func TestGoodputUnderLoss(t *testing.T) {
	ctx := context.Background()
	Compare(t, Floor,
		func(d time.Duration) (int64, error) { return Ours(ctx, d, wire.ALPNLite05) },
		func(d time.Duration) (int64, error) { return Raw(ctx, d) })
}
