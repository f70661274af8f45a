package discovery

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Provide defaults.
const (
	// DefaultProvideInterval is how often a live broadcast is re-provided. It
	// must stay well below the record lifetime of the peers holding the
	// records (DefaultRecordTTL on DHTs made by NewDHT).
	DefaultProvideInterval = 5 * time.Minute
	// DefaultProvideTimeout bounds one provide (a DHT lookup and the puts).
	DefaultProvideTimeout = time.Minute
)

// ProviderConfig configures a Provider. Zero values take the defaults.
type ProviderConfig struct {
	// Interval between provides of a name (DefaultProvideInterval), with
	// ±10% jitter. A failed provide is retried sooner, backing off from one
	// second (or Interval, if shorter) up to Interval.
	Interval time.Duration
	// Timeout bounds one provide (DefaultProvideTimeout). It is not tied to
	// Interval: a provide that takes longer just delays the next one. (A
	// tight bound makes kad-dht store the record at whichever peers it has
	// found by then, which may not be the closest.)
	Timeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Provider keeps broadcast names provided in a content router (a DHT) for
// as long as they are published. It is safe for concurrent use.
type Provider struct {
	r   routing.ContentRouting
	cfg ProviderConfig

	mu     sync.Mutex
	closed bool
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewProvider returns a Provider that provides names in r.
func NewProvider(r routing.ContentRouting, cfg ProviderConfig) *Provider {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultProvideInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultProvideTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Provider{r: r, cfg: cfg}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// Provide provides name now and then every interval until stop is called,
// ctx ends or the Provider is closed. Nothing withdraws the record: it
// expires on the peers holding it once it is no longer refreshed. stop
// waits for a provide in progress to be abandoned; it is idempotent.
func (p *Provider) Provide(ctx context.Context, name string) (stop func()) {
	name = broadcast.CleanPath(name)
	return p.provideKey(ctx, Key(name), name)
}

// provideKey provides key until stop, ctx or Close; what names the record
// in the logs.
func (p *Provider) provideKey(ctx context.Context, key cid.Cid, what string) (stop func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(p.ctx, cancel)
	done := make(chan struct{})
	p.wg.Go(func() {
		defer close(done)
		defer unhook()
		p.loop(ctx, key, what)
	})
	return func() { cancel(); <-done }
}

// Close stops providing every name and waits for the loops to end.
// Provide after Close does nothing.
func (p *Provider) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

func (p *Provider) loop(ctx context.Context, key cid.Cid, what string) {
	log := p.cfg.Logger.With("broadcast", what, "key", key.String())
	first := min(time.Second, p.cfg.Interval)
	retry, failures := first, 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		start := time.Now()
		err := p.r.Provide(pctx, key, true)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			level := slog.LevelDebug // expected before the DHT has peers
			if failures >= 3 {
				level = slog.LevelWarn
			}
			log.Log(ctx, level, "provide failed", "err", err, "failures", failures, "retry", retry)
			timer.Reset(retry)
			retry = min(2*retry, p.cfg.Interval)
		default:
			log.Debug("provided", "took", time.Since(start))
			retry, failures = first, 0
			timer.Reset(jitter(p.cfg.Interval))
		}
	}
}

// jitter spreads d by ±10%, so nodes that started together do not re-provide
// in lockstep.
func jitter(d time.Duration) time.Duration {
	spread := int64(d) / 10
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
}
