package websocket

import (
	"net/http"
	"slices"
	"strings"
)

// Framing is a wire format for streams over WebSocket messages, named by
// the Sec-WebSocket-Protocol value (or its prefix) that selects it.
type Framing string

const (
	// FramingQmux is draft-ietf-quic-qmux-00 as @moq/qmux 0.0.6 speaks it:
	// QUIC frames with offsets and QUIC-style flow control.
	FramingQmux Framing = "qmux-00"
	// FramingQmux01 is draft-ietf-quic-qmux-01 over WebSocket, as @moq/qmux
	// 0.3 speaks it: qmux-00's frames, a message being one QMux record
	// (any number of frames), QX_PING keep-alives to answer, and a
	// max_record_size transport parameter (16382 at least). It is also the
	// framing of a bare application protocol ("moq-lite-05"), the binding
	// moq-lite-05 defines (moq-dev's draft-lcurley-qmux-websocket).
	FramingQmux01 Framing = "qmux-01"
	// FramingQmux02 is draft-ietf-quic-qmux-02: qmux-01, with
	// QX_TRANSPORT_PARAMETERS required as the first frame (we send ours
	// first anyway) and ping sequence numbers checked by the peer. We do
	// not advertise reset_stream_at, so RESET_STREAM_AT never comes.
	FramingQmux02 Framing = "qmux-02"
	// FramingLegacy is the `webtransport` format of
	// @moq/web-transport-ws: bare stream frames, no flow control.
	FramingLegacy Framing = "webtransport"
)

// allFramings are the framings this package speaks, newest first.
var allFramings = []Framing{FramingQmux02, FramingQmux01, FramingQmux, FramingLegacy}

// records reports whether f carries QMux records (several frames per
// message, QX_PING).
func (f Framing) records() bool { return f == FramingQmux01 || f == FramingQmux02 }

// offer is one parsed Sec-WebSocket-Protocol value: a framing, optionally
// followed by "." and an application protocol.
type offer struct {
	framing Framing
	app     string
}

func (o offer) String() string {
	if o.app == "" {
		return string(o.framing)
	}
	return string(o.framing) + "." + o.app
}

// parseOffer splits a subprotocol into framing and app protocol; ok is false
// for values that name no framing we know.
func parseOffer(s string) (offer, bool) {
	for _, f := range allFramings {
		if s == string(f) {
			return offer{framing: f}, true
		}
		if app, ok := strings.CutPrefix(s, string(f)+"."); ok && app != "" {
			return offer{framing: f, app: app}, true
		}
	}
	return offer{}, false
}

// bareApp reads a subprotocol that is an application protocol alone
// ("moq-lite-05"): QMux over WebSocket as moq-dev's draft binds it, with
// the record framing of qmux-01. ok is false if we do not speak the app or
// may not use that framing.
func bareApp(s string, framings []Framing, apps []string) (offer, bool) {
	if !slices.Contains(apps, s) || !slices.Contains(framings, FramingQmux01) {
		return offer{}, false
	}
	return offer{framing: FramingQmux01, app: s}, true
}

// offeredProtocols returns the client's subprotocols in its order, from
// every Sec-WebSocket-Protocol header, comma-separated or not.
func offeredProtocols(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// selectOffer picks the subprotocol to answer with, from the client's
// offers (in its order), the framings we allow (ours first is preferred)
// and the app protocols we speak:
//
//  1. the client's first offered app protocol that we speak, in whichever
//     allowed framing comes first in framings (an app protocol offered
//     bare counts as qmux-01);
//  2. otherwise a bare framing the client offered, in framings order, with
//     no app protocol (the session then runs the compat SETUP);
//  3. a client that offered nothing at all gets the legacy framing without
//     a Sec-WebSocket-Protocol header, as @moq/qmux reads that answer, if
//     the legacy framing is allowed.
//
// ok is false when nothing fits; header is the value to answer with ("" for
// none).
func selectOffer(offered []string, framings []Framing, apps []string) (o offer, header string, ok bool) {
	if len(offered) == 0 {
		return offer{framing: FramingLegacy}, "", slices.Contains(framings, FramingLegacy)
	}
	type cand struct {
		offer
		raw string // as the client spelled it
	}
	var cands []cand
	for _, s := range offered {
		if o, ok := parseOffer(s); ok && slices.Contains(framings, o.framing) {
			cands = append(cands, cand{o, s})
		} else if o, ok := bareApp(s, framings, apps); ok {
			cands = append(cands, cand{o, s})
		}
	}
	rank := func(f Framing) int { return slices.Index(framings, f) }
	// 1: the first app protocol in the client's order decides; among its
	// offers, our framing order.
	for _, c := range cands {
		if c.app == "" || !slices.Contains(apps, c.app) {
			continue
		}
		best := c
		for _, d := range cands {
			if d.app == c.app && rank(d.framing) < rank(best.framing) {
				best = d
			}
		}
		return best.offer, best.raw, true
	}
	// 2: bare framings, ours first.
	for _, f := range framings {
		for _, c := range cands {
			if c.app == "" && c.framing == f {
				return c.offer, c.raw, true
			}
		}
	}
	return offer{}, "", false
}

// clientOffers lists what Dial offers, in @moq/qmux's order: each bare
// framing, then framing.app for every app protocol, framings alternating.
func clientOffers(framings []Framing, apps []string) []string {
	var out []string
	for _, f := range framings {
		out = append(out, string(f))
	}
	for _, a := range apps {
		for _, f := range framings {
			out = append(out, string(f)+"."+a)
		}
	}
	return out
}
