package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/transport"
)

const relayUsage = `usage: moq relay --listen URL... [--connect URL[?cost=N]...] [flags]

Forward broadcasts between every session: what a publisher announces on one
session is offered to every other session, with one upstream subscription per
track however many subscribers it has. Sessions may be moql://, https://
(WebTransport), ws:// (WebSocket) and libp2p, in any mix, and other relays
(--connect, repeatable; each link is kept up, redialed with backoff).
A route's cost is 1 unless ?cost=N says otherwise (10 is the convention for a
link through a relay); the cheapest live route wins, then the shortest.

As moq-relay does, a client's URL path scopes its session (a client at
/room sees room/clock as clock), and the relay answers plain HTTP on its
ws:// ports (and on --http): GET /announced/PREFIX lists the broadcasts
under PREFIX (JSON), GET /fetch/BROADCAST/TRACK returns the track's latest
group (its frames, concatenated): 404 for a broadcast or track the
publisher does not have, 504 if no group came within 5 s, 503 while 32
fetches run (429 while 4 of the client's address); a client has 10 s to
read the group.

With --auth-key, clients authenticate with moq-relay's tokens: ?jwt=TOKEN on
the URL, signed with that key (a JWK file, as moq-token writes them: HMAC,
ECDSA, Ed25519 or RSA), whose claims root, put (may publish under), get (may
subscribe under) and exp (enforced for the whole session) are honoured. A
client without a token may use the --public prefixes only; libp2p peers may
use everything if --trust-peer or --connect names them, the --public
prefixes otherwise.
Refusals carry the Unauthorized code (6).

It prints how to reach it on stdout ("peer: <peer-id>", "fingerprint: <hex>",
"listening: <url>" for each listener, "http:", "metrics:"), and when
interrupted a JSON line of its sessions and the payload it carried.

Two relays on one machine, a live publisher on one and a subscriber on the
other (the second relay's --connect takes the first's libp2p "listening:"
line, which ends in /p2p/<peer-id>):
  moq relay --listen moql://127.0.0.1:4443 --listen /ip4/127.0.0.1/udp/4001/quic-v1
  moq relay --listen moql://127.0.0.1:4444 --connect /ip4/127.0.0.1/udp/4001/quic-v1/p2p/<peer-id>
  moq pub --broadcast demo --connect moql://127.0.0.1:4443 --insecure --frames 0
  moq sub --broadcast demo --connect moql://127.0.0.1:4444 --insecure`

func runRelay(ctx context.Context, std stdio, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	setUsage(fs, relayUsage)
	var nf netFlags
	nf.register(fs)
	var public, trust stringList
	authKey := fs.String("auth-key", "", "verify client tokens (?jwt=) with the JWK in `FILE`")
	fs.Var(&public, "public", "`PREFIX` anyone may publish and subscribe under without a token (repeatable; \"\" is everything)")
	fs.Var(&trust, "trust-peer", "libp2p `PEER-ID` allowed everything with --auth-key (repeatable; peers named in --connect are too)")
	httpAddr := fs.String("http", "", "also serve /announced and /fetch over plain HTTP on `HOST:PORT`")
	linger := fs.Duration("linger", 2*time.Second, "keep an upstream subscription `D` after its last subscriber left")
	advertise := fs.Bool("advertise", false, "record this relay in the DHT (provider of the relay key "+discovery.RelayKeyName+"), so nodes find it; runs the DHT as a server, joined through --bootstrap if given")
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	if len(nf.listen) == 0 {
		return usagef("relay: give at least one --listen (see moq relay -h)")
	}
	costs := make([]int, len(nf.connect))
	for i, s := range nf.connect {
		raw, cost, err := splitCost(s)
		if err != nil {
			return usagef("--connect %s: %v", s, err)
		}
		nf.connect[i], costs[i] = raw, cost
	}
	listens, connects, err := nf.endpoints(-1)
	if err != nil {
		return err
	}
	for i := range connects {
		connects[i].cost = costs[i]
	}
	log := nf.logger(std.stderr)
	auth := newRelayAuth()
	for _, p := range public {
		auth.public = append(auth.public, broadcast.CleanPath(p))
	}
	for _, s := range trust {
		id, err := peer.Decode(s)
		if err != nil {
			return usagef("--trust-peer %s: %v", s, err)
		}
		auth.trusted[id] = true
	}
	if *authKey != "" {
		if auth.key, err = loadKey(*authKey); err != nil {
			return usagef("--auth-key %s: %v", *authKey, err)
		}
	}
	for _, e := range connects {
		if e.kind != kindP2P {
			continue
		}
		// A peer we link to is trusted whichever side dials: when two
		// relays --connect each other, the session either one opens
		// first is the link (the other adopts it), and libp2p has
		// authenticated the peer ID.
		auth.trusted[e.peer] = true
		if e.cost > 0 {
			auth.peerCost[e.peer] = e.cost
		}
	}
	var node *node
	fetch := newFetcher()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveRelayHTTP(node.p2p.m, auth, fetch, w, r) })
	opts := []moq.Option{moq.WithForwarding(moq.Forwarding{
		Linger: *linger,
		Accept: func(s *moq.Session, path string) bool { p := auth.perms(s); return p.may(p.put, path) },
		Offer:  func(s *moq.Session, path string) bool { p := auth.perms(s); return p.may(p.get, path) },
		Cost:   auth.cost,

		Advertise: *advertise,
	})}
	if auth.key != nil {
		opts = append(opts, moq.WithAdmission(auth.admitPeer))
	}
	node, err = newNode(ctx, nodeConfig{listens: listens, connects: connects, net: &nf, log: log,
		moqOpts: opts, route: auth.route, handler: handler, dhtServer: *advertise})
	if err != nil {
		return err
	}
	defer node.close()
	if slices.ContainsFunc(listens, func(e endpoint) bool { return e.kind == kindP2P }) {
		fmt.Fprintf(std.stdout, "peer: %s\n", node.p2p.h.ID())
	}
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("--http: %w", err)
		}
		// Nothing here streams: /announced answers at once and /fetch
		// sets its own, shorter, write deadline.
		hs := &http.Server{Handler: handler, ReadHeaderTimeout: server.DefaultReadHeaderTimeout,
			IdleTimeout: server.DefaultIdleTimeout, WriteTimeout: fetchWait + fetchWriteTimeout + 5*time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer func() { _ = hs.Close() }()
		fmt.Fprintf(std.stdout, "http: http://%s\n", listenAddr(*httpAddr, ln.Addr()))
	}
	node.printListening(std.stdout)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, e := range connects {
		wg.Go(func() { keepLinked(ctx, node, e, log) })
	}
	if auth.key != nil {
		wg.Go(func() { auth.enforce(ctx, node.p2p.m) })
	}
	t := newTally(node)
	prog := startNodeLine(ctx, std, nf.quiet, "relay", t)
	defer prog.close()
	<-ctx.Done()
	endNodeLine(std, prog, t)
	return nil
}

// splitCost takes ?cost=N (or &cost=N) off a --connect value; cost 0 means
// the default.
func splitCost(s string) (string, int, error) {
	base, query, ok := strings.Cut(s, "?")
	if !ok {
		return s, 0, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", 0, err
	}
	cost := 0
	if v := q.Get("cost"); v != "" {
		if cost, err = strconv.Atoi(v); err != nil || cost < 1 {
			return "", 0, errors.New("cost must be a positive integer")
		}
		q.Del("cost")
	}
	if len(q) > 0 {
		base += "?" + q.Encode()
	}
	return base, cost, nil
}

// keepLinked keeps a session to e on one of the node's kept links
// (moq.Keep for a multiaddr, moq.KeepOpen for a URL: redialed with
// backoff whenever the session is lost), logging its changes, until ctx
// ends. Its sessions are ones this node dialed (Session.Dialed), so
// relayAuth never holds them to a client's token.
func keepLinked(ctx context.Context, n *node, e endpoint, log *slog.Logger) {
	l := n.keepLink(e, nil)
	defer l.Detach()
	followLink(ctx, l, e, log, nil, nil)
}

// followLink logs the kept link l's changes (to e), calling connected, if
// set, with each session it brings, until ctx ends or l is detached. If
// refused is set, a session the peer closed as Unauthorized ends the
// following instead (refused gets the error): redialing with the same
// credentials would be refused again.
func followLink(ctx context.Context, l *moq.Link, e endpoint, log *slog.Logger, connected func(*moq.Session), refused func(error)) {
	prev := moq.LinkConnecting
	failing := false // an attempt failed since the last session: further failures log at debug
	warned := false  // a loss or failure was logged as a warning since the last session
	for c := range l.Changes(ctx) {
		if refused != nil && c.Err != nil && isRefusal(c.Err) {
			refused(c.Err)
			return
		}
		switch {
		case c.State == moq.LinkConnected:
			failing = false
			if warned {
				// At the warning's level, so that whoever saw the link go
				// sees it come back.
				log.Warn("link restored", "peer", e.String(), "version", c.Session.Version())
			} else {
				log.Info("linked", "peer", e.String(), "version", c.Session.Version())
			}
			warned = false
			if connected != nil {
				connected(c.Session)
			}
		case c.State == moq.LinkReconnecting && prev == moq.LinkConnected:
			warned = true
			log.Warn("link lost; redialing", "peer", e.String(), "err", c.Err)
		case c.Err != nil && !failing && c.State != moq.LinkDetached:
			failing, warned = true, true
			log.Warn("link failed; redialing", "peer", e.String(), "err", c.Err)
		case c.Err != nil && c.State != moq.LinkDetached:
			log.Debug("link failed; redialing", "peer", e.String(), "err", c.Err)
		}
		prev = c.State
	}
}

// keepLink starts the kept link to e; each attempt is bounded by
// --timeout. first, if not nil, is a connection to e already dialed: the
// link's first attempt takes it (its failures were reported by whoever
// dialed it), later ones dial afresh.
func (n *node) keepLink(e endpoint, first transport.Conn) *moq.Link {
	opts := moq.KeepOptions{AttemptTimeout: n.cfg.net.timeout, Open: moq.OpenOptions{Cost: e.cost}}
	if e.kind == kindP2P {
		return n.p2p.m.Keep(e.addrInfo(), opts)
	}
	var mu sync.Mutex
	return n.p2p.m.KeepOpen(func(ctx context.Context) (transport.Conn, error) {
		mu.Lock()
		c := first
		first = nil
		mu.Unlock()
		if c != nil {
			return c, nil
		}
		c, _, err := n.dialConn(ctx, e)
		return c, err
	}, opts)
}

// relayAuth holds the relay's authorization: the token key, the public
// prefixes, and what each client that presented a token may do.
type relayAuth struct {
	key      *verifier // nil: no authorization, everything allowed
	public   []string
	trusted  map[peer.ID]bool
	peerCost map[peer.ID]int // libp2p links' costs (--connect ...?cost=N)

	mu     sync.Mutex
	byAddr map[string]addrPerms // by the client's remote address, set by route
	perIP  addrCounts           // byAddr's entries by server.ClientAddr
}

// maxGrants bounds the clients whose token grants the relay remembers:
// one per session, plus requests admitted in the last minute that did not
// become sessions. Worst case about 200 B each. maxGrantsPerIP bounds one
// address's share, so that one address (new source port per request)
// cannot fill the table and lock every other client out: filling it takes
// maxGrants/maxGrantsPerIP addresses. It is well above a server's
// sessions per address (32 by default), for clients that reconnect.
const (
	maxGrants      = 16384
	maxGrantsPerIP = 128
)

func newRelayAuth() *relayAuth {
	return &relayAuth{byAddr: map[string]addrPerms{}, perIP: addrCounts{}, trusted: map[peer.ID]bool{}, peerCost: map[peer.ID]int{}}
}

type addrPerms struct {
	perms
	at time.Time
}

func (a *relayAuth) publicPerms() perms { return perms{put: a.public, get: a.public} }

// route admits a WebTransport or WebSocket client, or a raw QUIC one by its
// lite-05 SETUP path (server.Server.Route): its session is scoped
// to its URL path, and its token (if any) says what it may do.
func (a *relayAuth) route(r *http.Request) (string, error) {
	path := broadcast.CleanPath(r.URL.Path)
	if a.key == nil {
		return path, nil
	}
	var p perms
	if tok := r.URL.Query().Get("jwt"); tok != "" {
		var err error
		if p, err = a.key.verify(tok, path); err != nil {
			return "", err
		}
	} else {
		if !slices.ContainsFunc(a.public, func(pre string) bool {
			return broadcast.HasPrefix(path, pre) || broadcast.HasPrefix(pre, path)
		}) {
			return "", unauthorized("no token (?jwt=) and %q is not public", path)
		}
		p = a.publicPerms()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.byAddr[r.RemoteAddr]; !ok {
		// Requests that passed here but never became sessions (refused
		// later, or a flood of upgrades) are forgotten after a minute.
		ip := server.ClientAddr(r.RemoteAddr)
		if a.perIP[ip] >= maxGrantsPerIP {
			return "", &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "too many clients from this address being admitted"}
		}
		if len(a.byAddr) >= maxGrants {
			return "", &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "too many clients being admitted"}
		}
		a.perIP.add(ip)
	}
	a.byAddr[r.RemoteAddr] = addrPerms{perms: p, at: time.Now()}
	return path, nil
}

// perms is what a session may do.
func (a *relayAuth) perms(s *moq.Session) perms {
	switch {
	case a.key == nil, s.Dialed():
		return perms{all: true} // no authorization, or a link we opened
	case s.RemotePeer() != "":
		if a.trusted[s.RemotePeer()] {
			return perms{all: true}
		}
		return a.publicPerms()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.byAddr[s.RemoteAddr().String()]; ok {
		return p.perms
	}
	return a.publicPerms() // raw QUIC clients that sent no SETUP path carry no token
}

// admitPeer admits libp2p peers: trusted ones, and anyone while something
// is public.
func (a *relayAuth) admitPeer(_ context.Context, p peer.ID) error {
	if p == "" || a.trusted[p] || len(a.public) > 0 {
		return nil
	}
	return unauthorized("peer %s is not trusted", p)
}

func (a *relayAuth) cost(s *moq.Session) int {
	if c := a.peerCost[s.RemotePeer()]; c > 0 {
		return c
	}
	return 0 // the session's own (OpenOptions.Cost), or the default
}

// enforce closes sessions whose token expired, with Unauthorized, and
// forgets the grants of clients that are gone.
func (a *relayAuth) enforce(ctx context.Context, m *moq.Moq) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		now := time.Now()
		live := map[string]bool{}
		sessions, _ := m.Sessions(ctx)
		for _, s := range sessions {
			if s.Dialed() || s.RemotePeer() != "" {
				continue
			}
			addr := s.RemoteAddr().String()
			live[addr] = true
			if a.perms(s).expired(now) {
				_ = s.Close(broadcast.CodeUnauthorized, "token expired")
			}
		}
		a.mu.Lock()
		for addr, p := range a.byAddr {
			if !live[addr] && now.Sub(p.at) > time.Minute {
				a.forget(addr)
			}
		}
		a.mu.Unlock()
	}
}

// forget drops addr's grant; the caller holds mu.
func (a *relayAuth) forget(addr string) {
	if _, ok := a.byAddr[addr]; !ok {
		return
	}
	delete(a.byAddr, addr)
	a.perIP.remove(server.ClientAddr(addr))
}

// addrCounts counts what each client address holds (grants, fetches).
type addrCounts map[netip.Addr]int

func (c addrCounts) add(ip netip.Addr) { c[ip]++ }

// remove takes one off ip's count, forgetting an address that holds none.
func (c addrCounts) remove(ip netip.Addr) {
	if c[ip]--; c[ip] <= 0 {
		delete(c, ip)
	}
}

// serveRelayHTTP answers moq-relay's HTTP endpoints.
func serveRelayHTTP(m *moq.Moq, auth *relayAuth, fetch *fetcher, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	get := func(path string) bool {
		if auth.key == nil {
			return true
		}
		p := auth.publicPerms()
		if tok := r.URL.Query().Get("jwt"); tok != "" {
			var err error
			if p, err = auth.key.verify(tok, path); err != nil {
				return false
			}
		}
		return p.may(p.get, path)
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	switch {
	case strings.HasPrefix(r.URL.Path, "/announced"):
		prefix := broadcast.CleanPath(strings.TrimPrefix(r.URL.Path, "/announced"))
		list := []string{}
		if fo := m.Forwarded(); fo != nil {
			for path := range fo.Active(prefix) {
				if get(path) {
					list = append(list, path)
				}
			}
		}
		slices.Sort(list)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	case strings.HasPrefix(r.URL.Path, "/fetch/"):
		full := broadcast.CleanPath(strings.TrimPrefix(r.URL.Path, "/fetch/"))
		i := strings.LastIndexByte(full, '/')
		if i <= 0 {
			http.Error(w, "want /fetch/BROADCAST/TRACK", http.StatusBadRequest)
			return
		}
		name, track := full[:i], full[i+1:]
		if !get(name) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var b *broadcast.Consumer
		if fo := m.Forwarded(); fo != nil {
			b = fo.Get(name)
		}
		if b == nil {
			http.NotFound(w, r)
			return
		}
		fetch.latest(r, b, track, w)
	default:
		http.NotFound(w, r)
	}
}

// Bounds of GET /fetch: how long it waits for a group to arrive and
// finish, how long the client may take to read it, and how many fetches
// run at once (more are answered 503), of which one address runs at most
// maxFetchesPerIP (more are answered 429), so that one client cannot take
// every slot. A fetch holds the group's frames,
// shared with the track's cache rather than copied: beyond the cache, it
// costs memory only for a group evicted meanwhile, at worst maxFetches
// groups for fetchWait+fetchWriteTimeout.
const (
	fetchWait         = 5 * time.Second
	fetchWriteTimeout = 10 * time.Second
	maxFetches        = 32
	maxFetchesPerIP   = 4
)

// fetcher serves GET /fetch within its bounds.
type fetcher struct {
	wait, writeTimeout time.Duration
	perIP, max         int // running fetches: of one address, in all

	mu      sync.Mutex
	running int
	byIP    addrCounts // running fetches by server.ClientAddr
}

func newFetcher() *fetcher {
	return &fetcher{wait: fetchWait, writeTimeout: fetchWriteTimeout, perIP: maxFetchesPerIP,
		max: maxFetches, byIP: addrCounts{}}
}

// take counts a fetch of the client at remote ("host:port"), or returns
// the status refusing it.
func (f *fetcher) take(remote string) (done func(), status int) {
	ip := server.ClientAddr(remote)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byIP[ip] >= f.perIP {
		return nil, http.StatusTooManyRequests
	}
	if f.running >= f.max {
		return nil, http.StatusServiceUnavailable
	}
	f.running++
	f.byIP.add(ip)
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.byIP.remove(ip)
		f.running--
	}, 0
}

// runs is how many fetches are running.
func (f *fetcher) runs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

// latest writes the latest group of a track, waiting up to f.wait for one.
func (f *fetcher) latest(r *http.Request, b *broadcast.Consumer, track string, w http.ResponseWriter) {
	done, status := f.take(r.RemoteAddr)
	if done == nil {
		http.Error(w, "too many fetches at once", status)
		return
	}
	defer done()
	ctx, cancel := context.WithTimeout(r.Context(), f.wait)
	defer cancel()
	tc, err := b.SubscribeTrack(broadcast.Track{Name: track})
	if err != nil {
		http.Error(w, err.Error(), fetchStatus(err))
		return
	}
	defer tc.Close()
	g, err := tc.NextGroup(ctx)
	if err != nil {
		http.Error(w, err.Error(), fetchStatus(err))
		return
	}
	// The whole group before the first byte, so that a failure still gets
	// its status; the frames are the cache's, not copies.
	var frames [][]byte
	size := 0
	for {
		fr, err := g.ReadFrame(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			http.Error(w, err.Error(), fetchStatus(err))
			return
		}
		frames = append(frames, fr)
		size += len(fr)
	}
	// A client that stops reading must not hold the frames (and a fetch
	// slot) for ever.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(f.writeTimeout))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(size))
	w.Header().Set("X-Group", strconv.FormatUint(g.Sequence(), 10))
	for _, fr := range frames {
		if _, err := w.Write(fr); err != nil {
			return
		}
	}
}

// fetchStatus is the HTTP status for why a fetch got no group: 404 for a
// broadcast or track the publisher does not have (the relay's upstream
// refused it), 504 when none came in time, 502 for any other upstream
// failure.
func fetchStatus(err error) int {
	switch {
	case errors.Is(err, broadcast.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}
