package moq

import (
	"context"
	"sync"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
)

// Publication is a broadcast published to every session (and, with a DHT,
// provided under its name); Unpublish withdraws it.
type Publication struct {
	p    *actor.Publication
	m    *Moq
	stop func() // stops re-providing; never nil
	once sync.Once
}

// Name is the path the broadcast is published at (cleaned).
func (p *Publication) Name() string { return p.p.Name() }

// Unpublish withdraws the publication from every session, stops
// re-providing it in the DHT (its record there expires after the DHT's
// record lifetime; subscribers skip such stale records) and frees its name.
// The broadcast itself goes on. Safe to call more than once and after
// Shutdown.
func (p *Publication) Unpublish() {
	p.once.Do(func() {
		p.stop()
		p.p.Unpublish()
	})
}

// Ticket is a ticket for the publication with the host's current
// addresses; Ticket().Short() leaves them out.
func (p *Publication) Ticket() Ticket { return p.m.Ticket(p.Name()) }

// publish publishes through the actor, then provides the name in the DHT
// until the publication is unpublished, its broadcast ends or the node
// shuts down.
func (m *Moq) publish(ctx context.Context, name string, b *broadcast.Consumer) (*Publication, error) {
	ap, err := m.a.Publish(ctx, name, b)
	if err != nil {
		return nil, err
	}
	pub := &Publication{p: ap, m: m, stop: func() {}}
	if m.disc.provider == nil {
		return pub, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil { // shutting down
		return pub, nil
	}
	pctx, cancel := context.WithCancel(m.ctx)
	stop := m.disc.provider.Provide(pctx, ap.Name())
	m.wg.Go(func() { // the broadcast's end stops providing too
		select {
		case <-b.Done():
		case <-pctx.Done():
		}
		cancel()
	})
	pub.stop = func() { cancel(); stop() }
	return pub, nil
}
