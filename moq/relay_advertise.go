package moq

import "github.com/moqp2p/moqp2p/discovery"

// DefaultMaxAdvertised is Forwarding.MaxAdvertised's default.
const DefaultMaxAdvertised = 1024

// advertiseForwarded provides, in p, the name of every broadcast the node
// forwards, up to max names at once, until the node shuts down, so that a
// name looked up in the DHT finds the relays that carry it next to its
// publisher. A name past the bound is not provided (until it is announced
// again while there is room); its broadcast is still forwarded.
func (m *Moq) advertiseForwarded(p *discovery.Provider, max int) {
	fo := m.a.Forwarded()
	if fo == nil {
		return
	}
	stops := map[string]func(){}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	for path, b := range fo.Announced(m.ctx, "") {
		stop, provided := stops[path]
		switch {
		case b == nil && provided: // the path ended
			stop()
			delete(stops, path)
		case b == nil, provided: // not provided, or a replacement of one that is
		case len(stops) >= max:
			m.log.Debug("forwarded broadcast not provided: MaxAdvertised reached", "broadcast", path, "max", max)
		default:
			stops[path] = p.Provide(m.ctx, path)
		}
	}
}
