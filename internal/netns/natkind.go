package netns

// NATKind is how a lab NAT maps a host's UDP flows to its public address.
type NATKind int

const (
	// EndpointIndependent (iptables MASQUERADE) keeps one public port per
	// private socket whatever the destination, and admits from outside only
	// replies to flows the host opened (address- and port-dependent
	// filtering): the home-router NAT that hole punching gets through.
	EndpointIndependent NATKind = iota
	// Symmetric (MASQUERADE --random) gives each destination its own random
	// public port, so the port a relay observes is useless to anyone else:
	// hole punching fails.
	Symmetric
)

func (k NATKind) String() string {
	if k == Symmetric {
		return "symmetric"
	}
	return "endpoint-independent"
}

// NATSide is one host behind one NAT in a NATLab.
type NATSide struct {
	// Host is the namespace of the host behind the NAT, Addr its private
	// address; Router is the NAT's namespace and Public its address on
	// the WAN (where the host's flows appear to come from).
	Host, Router string
	Addr, Public string
	Kind         NATKind
}

// NATLab is a simulated internet inside one private network namespace (the
// WAN, where the test process itself runs), with two hosts each behind a
// NAT of its own. WAN is the address of the WAN namespace itself, where a
// relay or bootstrap node can listen. The WAN addresses are in
// 192.0.0.128/25, a block IANA reserves for protocol assignments and no
// router forwards, which go-multiaddr nevertheless counts as public (libp2p
// hole-punches only from public addresses); the lab's namespaces have no
// route out, so nothing sent to them can leave.
type NATLab struct {
	WAN   string
	Sides [2]NATSide
	// Others are more addresses of the WAN namespace, for more public
	// nodes: go-libp2p trusts an address of its own that it learned from
	// observers only once 4 distinct IPs have seen it.
	Others []string
}
