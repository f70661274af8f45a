package keepalive

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A ping that never comes back is fatal once the bound since the last
// answer has passed; answered pings keep the connection; a peer without
// the ping service ends Run quietly.
func TestRun(t *testing.T) {
	const bound = 300 * time.Millisecond
	answers := 3
	dead := make(chan error, 1)
	start := time.Now()
	var last time.Time
	Run(context.Background(), bound, func(ctx context.Context) error {
		if answers > 0 {
			answers--
			last = time.Now()
			return nil
		}
		<-ctx.Done() // the peer went silent
		return ctx.Err()
	}, nil, func(err error) { dead <- err })
	select {
	case err := <-dead:
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("dead with %v", err)
		}
		if d := time.Since(last); d < bound || d > bound+Period(bound)+100*time.Millisecond {
			t.Errorf("declared dead %v after the last answer, bound %v", d, bound)
		}
	default:
		t.Fatalf("Run returned after %v without declaring the peer dead", time.Since(start))
	}

	Run(context.Background(), bound, func(context.Context) error { return errors.ErrUnsupported }, nil,
		func(err error) { t.Errorf("a peer without pings declared dead: %v", err) })

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Run(ctx, bound, func(context.Context) error { return errors.New("x") }, nil, func(err error) { t.Errorf("dead after ctx ended: %v", err) })
	if Resolve(0) != DefaultTimeout || Resolve(-1) != 0 || Resolve(time.Second) != time.Second {
		t.Error("Resolve")
	}
}

// A peer whose pongs are stuck behind its own traffic is alive while the
// traffic flows, and declared dead within the bound once it stops.
func TestRunTrafficIsLife(t *testing.T) {
	const bound = time.Second
	var traffic atomic.Uint64
	stop := make(chan struct{})
	talking := make(chan struct{})
	go func() { // the peer sends for 3 bounds, then goes silent
		defer close(talking)
		end := time.Now().Add(3 * bound)
		for time.Now().Before(end) {
			traffic.Add(1)
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	defer close(stop)
	start := time.Now()
	var err error
	Run(context.Background(), bound, func(ctx context.Context) error {
		<-ctx.Done() // no pong ever gets through
		return ctx.Err()
	}, traffic.Load, func(e error) { err = e })
	silent := time.Since(start) - 3*bound // when Run gave the peer up
	<-talking
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Run ended with %v, want ErrTimeout", err)
	}
	if silent < 0 {
		t.Fatalf("declared dead %v before the peer went silent", -silent)
	}
	if silent > bound+Period(bound)+time.Second {
		t.Errorf("declared dead %v after the peer went silent, bound %v", silent, bound)
	}
}

// A peer that talks all along is alive though no pong gets through: when
// this side sees each ping's deadline late (a loaded machine schedules the
// pinger late: the lateness is not the peer's silence), and when the ping
// reports running out of time its own way (a libp2p stream's "i/o deadline
// reached", not context.DeadlineExceeded).
func TestRunTalkingPeerIsAlive(t *testing.T) {
	const bound = 300 * time.Millisecond
	for name, tc := range map[string]struct {
		late time.Duration // how late this side wakes after the deadline
		err  error         // what the ping returns
	}{
		"late pinger":     {bound, context.DeadlineExceeded},
		"stream deadline": {0, errors.New("i/o deadline reached")},
	} {
		var traffic atomic.Uint64
		ctx, cancel := context.WithCancel(context.Background())
		pings := 0
		var err error
		Run(ctx, bound, func(pctx context.Context) error {
			if pings++; pings == 5 {
				cancel() // enough rounds
			}
			<-pctx.Done()  // no pong ever gets through
			traffic.Add(1) // the peer talked meanwhile
			time.Sleep(tc.late)
			return tc.err
		}, traffic.Load, func(e error) { err = e })
		cancel()
		if err != nil {
			t.Errorf("%s: a talking peer given up after %d pings: %v", name, pings, err)
		}
	}
}
