package moq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/goodput"
)

// Row F1 between two nodes over libp2p QUIC: ours is a Connect session
// (moq-lite on QUIC over the hosts' sockets) through an impairing UDP
// proxy in front of the publisher, raw is plain quic-go through a proxy of
// the same profile (10 % loss and 50 ms each way), alternating in the same
// run; ours must keep 0.9× raw's goodput (goodput.Compare: 10 s per stack,
// MOQP2P_F1_DURATION=60s for the full profile).
func TestGoodputUnderLossP2PQUIC(t *testing.T) {
	ctx := context.Background()
	run := 0
	goodput.Compare(t, goodput.Floor,
		func(d time.Duration) (got int64, err error) {
			run++
			err = fmt.Errorf("half %d did not run", run)
			t.Run(fmt.Sprintf("ours-%d", run), func(t *testing.T) {
				got, err = goodputP2PQUIC(t, ctx, d)
			})
			return got, err
		},
		func(d time.Duration) (int64, error) { return goodput.Raw(ctx, d) })
}

// goodputP2PQUIC streams for d from one new node to another through an
// impaired link and returns the payload bytes the subscriber received.
func goodputP2PQUIC(t *testing.T, ctx context.Context, d time.Duration) (int64, error) {
	pub, sub := newNode(t), newNode(t)
	info, link := linkTo(t, pub, true)
	link.Set(goodput.Link())
	s, err := sub.Connect(testCtx(t), info)
	if err != nil {
		return 0, err
	}
	if got := s.Stats().Link.Transport; got != "p2pquic" {
		return 0, fmt.Errorf("session over %s, want p2pquic", got)
	}
	m := publish(t, pub, "f1")
	tc, err := s.Subscribe(testCtx(t), "f1", "video")
	if err != nil {
		return 0, err
	}
	defer tc.Close()
	return goodput.Stream(ctx, d, m.track, tc), nil
}
