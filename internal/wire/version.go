package wire

import "strconv"

// Version is a moq-lite version code. On the wire (compat SETUP) it is a QUIC
// varint, eight bytes long for these values.
type Version uint64

// The moq-lite drafts this package implements. Version codes are
// 0xff0dad00 | draft number.
const (
	Lite01 Version = 0xff0dad01
	Lite02 Version = 0xff0dad02
	Lite03 Version = 0xff0dad03
	Lite04 Version = 0xff0dad04
	Lite05 Version = 0xff0dad05
)

// ALPN / WebTransport protocol strings that mean moq-lite.
const (
	ALPNLite03 = "moq-lite-03"
	ALPNLite04 = "moq-lite-04"
	ALPNLite05 = "moq-lite-05"
	// ALPNCompat selects no version by itself: the client sends
	// CLIENT_SETUP on the first bidi stream and the server picks a version
	// (in practice lite-02 or lite-01).
	ALPNCompat = "moql"
)

// String returns the draft name, e.g. "moq-lite-03", or the hex code for an
// unknown version.
func (v Version) String() string {
	if v.Known() {
		return "moq-lite-0" + strconv.Itoa(int(v-0xff0dad00))
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

// Known reports whether this package implements v.
func (v Version) Known() bool {
	switch v {
	case Lite01, Lite02, Lite03, Lite04, Lite05:
		return true
	}
	return false
}

// ALPN returns the protocol string under which v is negotiated: its own
// string for lite-03 and later, ALPNCompat for lite-01/02 (which are only
// reachable through SETUP), and "" for unknown versions.
func (v Version) ALPN() string {
	switch v {
	case Lite01, Lite02:
		return ALPNCompat
	case Lite03:
		return ALPNLite03
	case Lite04:
		return ALPNLite04
	case Lite05:
		return ALPNLite05
	}
	return ""
}

// VersionForALPN maps a negotiated ALPN / WebTransport protocol to the
// version it fixes. It returns false both for protocols that are not
// moq-lite and for ALPNCompat or "" — use NeedsSetup to tell those apart.
func VersionForALPN(alpn string) (Version, bool) {
	switch alpn {
	case ALPNLite03:
		return Lite03, true
	case ALPNLite04:
		return Lite04, true
	case ALPNLite05:
		return Lite05, true
	}
	return 0, false
}

// NeedsSetup reports whether the negotiated protocol leaves the version open,
// so that the compat SETUP exchange (ClientSetup / ServerSetup) must run.
// That is the case for ALPNCompat and for no protocol at all.
func NeedsSetup(alpn string) bool {
	return alpn == ALPNCompat || alpn == ""
}

// The predicates below are the only place where drafts differ; the codec
// asks them instead of comparing versions. Each answers for Known versions
// only, so a new draft starts with everything off until its cases are added.

// setupNegotiated: reached via CLIENT_SETUP, with a session stream that
// carries SESSION_UPDATE.
func (v Version) setupNegotiated() bool { return v == Lite01 || v == Lite02 }

// announceInit: the publisher first sends ANNOUNCE_INIT listing the active set.
func (v Version) announceInit() bool { return v == Lite01 || v == Lite02 }

// hasHopCount: ANNOUNCE carries a hop count (lite-03 sends only the count).
func (v Version) hasHopCount() bool { return v == Lite03 || v == Lite04 || v == Lite05 }

// hasHopList: the hop count is followed by the hop IDs.
func (v Version) hasHopList() bool { return v == Lite04 || v == Lite05 }

// hasExcludeHop: ANNOUNCE_PLEASE carries exclude_hop.
func (v Version) hasExcludeHop() bool { return v == Lite04 || v == Lite05 }

// announceOK: the publisher starts an announce stream with ANNOUNCE_OK (its
// hop ID and the size of the active set that follows), leaves its own hop
// ID out of every later hop list, and may repeat an `active` ANNOUNCE (or
// send status 2, restart) to replace the earlier one.
func (v Version) announceOK() bool { return v == Lite05 }

// subscribeExtended: SUBSCRIBE, SUBSCRIBE_OK and SUBSCRIBE_UPDATE carry
// ordered, max_latency, start and end after the priority.
func (v Version) subscribeExtended() bool { return v == Lite03 || v == Lite04 || v == Lite05 }

// typedSubscribeResponse: subscribe responses are prefixed by a type varint
// and SUBSCRIBE_DROP exists.
func (v Version) typedSubscribeResponse() bool { return v == Lite03 || v == Lite04 || v == Lite05 }

// subscribeRange: the responses are START, END and DROP (types 0, 1, 2)
// rather than SUBSCRIBE_OK and DROP (0, 1); SUBSCRIBE_OK is gone.
func (v Version) subscribeRange() bool { return v == Lite05 }

// hasSetupStream: each side opens one uni stream (UniSetup) carrying SETUP.
func (v Version) hasSetupStream() bool { return v == Lite05 }

// hasTrackStream: TRACK / TRACK_INFO exist, every track has a timescale,
// and every frame carries a zigzag timestamp delta before its size.
func (v Version) hasTrackStream() bool { return v == Lite05 }

// hasDatagrams: single-frame groups may travel as QUIC datagrams.
func (v Version) hasDatagrams() bool { return v == Lite05 }

// subscribeOKBody describes the SUBSCRIBE_OK body.
func (v Version) subscribeOKBody() okBody {
	switch v {
	case Lite01:
		return okPriority
	case Lite02:
		return okEmpty
	case Lite03, Lite04:
		return okFull
	}
	return okNone // also lite-05, which has no SUBSCRIBE_OK
}

type okBody int

const (
	okNone     okBody = iota // version unknown
	okPriority               // lite-01: publisher priority byte
	okEmpty                  // lite-02: empty body
	okFull                   // lite-03/04: priority, ordered, latency, start, end
)

// hasFetchProbe: FETCH and PROBE streams exist.
func (v Version) hasFetchProbe() bool { return v == Lite03 || v == Lite04 || v == Lite05 }

// probeRTT: PROBE carries rtt after the bitrate.
func (v Version) probeRTT() bool { return v == Lite04 || v == Lite05 }

// hasGoaway: the GOAWAY stream exists.
func (v Version) hasGoaway() bool { return v == Lite04 || v == Lite05 }

// HasSetupStream reports whether v opens a SETUP uni stream in each
// direction (lite-05).
func (v Version) HasSetupStream() bool { return v.hasSetupStream() }

// HasFrameTimestamps reports whether every frame of v carries a timestamp
// delta (lite-05), and tracks have a timescale (TRACK_INFO).
func (v Version) HasFrameTimestamps() bool { return v.hasTrackStream() }

// HasDatagrams reports whether v may deliver single-frame groups as QUIC
// datagrams (lite-05).
func (v Version) HasDatagrams() bool { return v.hasDatagrams() }

// HasAnnounceOK reports whether an announce stream starts with ANNOUNCE_OK
// and omits the publisher's own hop from later hop lists (lite-05).
func (v Version) HasAnnounceOK() bool { return v.announceOK() }

// HasSubscribeExtended reports whether SUBSCRIBE and SUBSCRIBE_UPDATE carry
// ordered, max latency, start and end (lite-03 on), not only a priority.
func (v Version) HasSubscribeExtended() bool { return v.subscribeExtended() }

// HasSubscribeRange reports whether subscribe responses are START, END and
// DROP (lite-05) rather than SUBSCRIBE_OK and DROP.
func (v Version) HasSubscribeRange() bool { return v.subscribeRange() }
