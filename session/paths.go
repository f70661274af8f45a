package session

import "github.com/moqp2p/moqp2p/broadcast"

// moq-dev strips leading and trailing slashes from paths, while gomoqt requires
// a leading one on every path and prefixes that end in one. Sending rooted
// forms and cleaning whatever arrives satisfies both (docs/wire.md#paths).

// wirePath is how a clean broadcast path is sent.
func wirePath(p string) string { return "/" + p }

// wirePrefix is how a clean announce prefix is sent: "/" for everything.
func wirePrefix(p string) string {
	if p == "" {
		return "/"
	}
	return "/" + p + "/"
}

// sendHops is the hop list to announce for a broadcast: its own hops plus this
// node's. Unknown hop IDs (zeros, learned over lite-03) are left out because
// lite-04 cannot carry them. ok is false when the list would exceed MaxHops.
func sendHops(hops []uint64, own uint64) (out []uint64, ok bool) {
	out = make([]uint64, 0, len(hops)+1)
	for _, h := range hops {
		if h != 0 {
			out = append(out, h)
		}
	}
	out = append(out, own)
	return out, len(out) <= broadcast.MaxHops
}
