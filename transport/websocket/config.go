package websocket

import (
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// Config configures Accept and Dial. The zero value (and nil) is usable.
type Config struct {
	// Protocols are the application protocols spoken, most preferred
	// first. Nil means moq-lite-05, moq-lite-04, moq-lite-03 and moql; an empty non-nil
	// slice means none, so only bare framings are offered or accepted (the
	// session then runs the compat SETUP), as @moq/lite does by default.
	Protocols []string
	// Framings are the wire formats allowed, most preferred first. Nil means
	// qmux-02, qmux-01, qmux-00, then legacy.
	Framings []Framing
	// CheckOrigin decides whether Accept takes a request. Nil allows
	// requests without an Origin header (non-browser clients) and requests
	// whose Origin host equals the Host header, as coder/websocket does.
	CheckOrigin func(r *http.Request) bool

	// ConnWindow is the connection-wide receive credit (qmux-00 MAX_DATA
	// window); with the legacy framing it bounds the bytes buffered for
	// all streams. Default 16 MiB.
	ConnWindow int
	// StreamWindow is the per-stream receive credit (qmux-00
	// MAX_STREAM_DATA window); with the legacy framing it bounds each
	// stream's receive buffer. Default 1 MiB.
	StreamWindow int
	// MaxIncomingStreams and MaxIncomingUniStreams bound the peer's
	// unfinished streams of each kind (qmux-00 MAX_STREAMS). Default 1000:
	// moq-lite opens a unidirectional stream per group. On the legacy
	// framing, which has no stream credit, they also bound the streams we
	// open: Open waits while that many of ours are unfinished.
	MaxIncomingStreams    int
	MaxIncomingUniStreams int
	// SendBuffer bounds the bytes queued on one stream for sending; Write
	// blocks beyond it. With the stream limits it bounds what a slow peer
	// can make us hold. Default 64 KiB.
	SendBuffer int
	// MaxMessageSize bounds one received WebSocket message; a larger one
	// closes the connection. Peers send at most one 16 KiB frame per
	// message. Default 20 KiB.
	MaxMessageSize int

	// DeadPeerTimeout bounds how long the peer may leave a WebSocket ping
	// unanswered: pings go out every third of it, and a connection whose
	// ping is still unanswered that long after the last answer ends with a
	// cause matching ErrConnLost and keepalive's timeout. Zero means 3 s; a
	// negative value sends no pings (then a silent peer is noticed only by
	// TCP, which can take many minutes). Costs a ping and a pong, 6 bytes
	// each plus framing, per period. A ping that goes unanswered while our
	// own read loop waited for buffer room (the legacy framing stops
	// reading the socket when its buffers are full), or while the peer's
	// messages kept arriving, or (on Linux) while the peer's TCP kept
	// acknowledging data we had queued ahead of the ping, does not count. A
	// peer whose read loop so waits does not answer our pings either, so
	// on the legacy framing a peer that stops reading is given up this
	// long after its TCP stops taking our data.
	DeadPeerTimeout time.Duration

	// CongestionControl names the TCP congestion control set on the
	// connection's socket (Linux only; elsewhere the system's stays).
	// Empty means "bbr": a loss-based algorithm such as Linux's default
	// Cubic reads every lost packet as congestion, so on a path that drops
	// packets at random it sends at a fraction of what the path carries,
	// and live media falls behind (BENCHMARKS.md, Faults: about half of
	// quic-go's goodput at 10 % loss, against 0.9× and more with BBR).
	// BBR paces by the measured bottleneck rate instead. It can take more
	// than a fair share from loss-based flows on a shared bottleneck. When
	// the kernel does not offer the algorithm (its module absent, or
	// missing from net.ipv4.tcp_allowed_congestion_control for an
	// unprivileged process), the system's stays and a debug log says so.
	// CongestionSystem keeps the system's without trying.
	CongestionControl string

	// HTTPClient performs Dial's handshake (TLS settings, proxies). Nil
	// means http.DefaultClient.
	HTTPClient *http.Client
	// HTTPHeader is added to Dial's handshake request.
	HTTPHeader http.Header

	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
}

// CongestionSystem is the Config.CongestionControl that leaves the socket's
// congestion control as the system set it.
const CongestionSystem = "system"

// DefaultCongestionControl is the congestion control of an empty
// Config.CongestionControl.
const DefaultCongestionControl = "bbr"

// DefaultProtocols are the application protocols of a nil Config.Protocols.
// (Accept takes the client's order among them, as rawquic.ALPNs explains.)
var DefaultProtocols = []string{wire.ALPNLite05, wire.ALPNLite04, wire.ALPNLite03, wire.ALPNCompat}

// config is a Config with the defaults applied.
type config struct {
	Config
	protocols []string
	framings  []Framing
	log       *slog.Logger
}

func (c *Config) withDefaults() *config {
	var cc config
	if c != nil {
		cc.Config = *c
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cc.ConnWindow, 16<<20)
	def(&cc.StreamWindow, 1<<20)
	def(&cc.MaxIncomingStreams, 1000)
	def(&cc.MaxIncomingUniStreams, 1000)
	def(&cc.SendBuffer, 64<<10)
	def(&cc.MaxMessageSize, 20<<10)
	cc.protocols = cc.Protocols
	if cc.protocols == nil {
		cc.protocols = DefaultProtocols
	}
	cc.framings = cc.Framings
	if cc.framings == nil {
		cc.framings = allFramings
	}
	// Unknown framings would be offered but could never be spoken.
	cc.framings = slices.DeleteFunc(slices.Clone(cc.framings), func(f Framing) bool {
		return !slices.Contains(allFramings, f)
	})
	if cc.CongestionControl == "" {
		cc.CongestionControl = DefaultCongestionControl
	}
	cc.log = cc.Logger
	if cc.log == nil {
		cc.log = slog.Default()
	}
	return &cc
}
