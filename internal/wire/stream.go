package wire

import (
	"io"
	"strconv"
)

// StreamType is the varint that opens a bidirectional stream.
type StreamType uint64

// Bidirectional stream types. The opener is the subscriber side of the
// transaction, whichever QUIC endpoint that is.
const (
	// StreamSession is reserved: drafts 01/02 describe it but neither
	// implementation accepts it, so it is allowed in no version.
	StreamSession   StreamType = 0x00
	StreamAnnounce  StreamType = 0x01
	StreamSubscribe StreamType = 0x02
	StreamFetch     StreamType = 0x03 // lite-03+
	StreamProbe     StreamType = 0x04 // lite-03+
	StreamGoaway    StreamType = 0x05 // lite-04+
	StreamTrack     StreamType = 0x06 // lite-05+: TRACK, answered by TRACK_INFO
	// StreamClientCompat starts the compat SETUP stream; it doubles as the
	// CLIENT_SETUP message type and is consumed by ReadClientSetup.
	StreamClientCompat StreamType = 0x20
	// StreamServerCompat is the SERVER_SETUP message type written back on
	// the compat stream; no stream is opened with it.
	StreamServerCompat StreamType = 0x21
)

// String returns a short name such as "subscribe".
func (t StreamType) String() string {
	switch t {
	case StreamSession:
		return "session"
	case StreamAnnounce:
		return "announce"
	case StreamSubscribe:
		return "subscribe"
	case StreamFetch:
		return "fetch"
	case StreamProbe:
		return "probe"
	case StreamGoaway:
		return "goaway"
	case StreamTrack:
		return "track"
	case StreamClientCompat:
		return "client-compat"
	case StreamServerCompat:
		return "server-compat"
	}
	return "stream(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// AllowedIn reports whether a peer speaking v may open a bidi stream of
// type t once the session is established. The compat setup stream is not
// included: it precedes the version and is read with ReadClientSetup.
func (t StreamType) AllowedIn(v Version) bool {
	switch t {
	case StreamAnnounce, StreamSubscribe:
		return v.Known()
	case StreamFetch, StreamProbe:
		return v.hasFetchProbe()
	case StreamGoaway:
		return v.hasGoaway()
	case StreamTrack:
		return v.hasTrackStream()
	}
	return false
}

// known reports whether some version defines t.
func (t StreamType) known() bool {
	switch t {
	case StreamSession, StreamAnnounce, StreamSubscribe, StreamFetch,
		StreamProbe, StreamGoaway, StreamTrack, StreamClientCompat, StreamServerCompat:
		return true
	}
	return false
}

// UniStreamType is the varint that opens a unidirectional stream.
type UniStreamType uint64

// Unidirectional stream types.
const (
	// UniGroup carries one Group header followed by frames, then FIN.
	UniGroup UniStreamType = 0x00
	// UniSetup (lite-05) carries one Setup message, then FIN; each side
	// opens exactly one.
	UniSetup UniStreamType = 0x01
)

// String returns a short name such as "group".
func (t UniStreamType) String() string {
	switch t {
	case UniGroup:
		return "group"
	case UniSetup:
		return "setup"
	}
	return "uni(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// AllowedIn reports whether a peer speaking v may open a uni stream of
// type t.
func (t UniStreamType) AllowedIn(v Version) bool {
	switch t {
	case UniGroup:
		return v.Known()
	case UniSetup:
		return v.hasSetupStream()
	}
	return false
}

// AppendStreamType appends a bidi stream type.
func AppendStreamType(b []byte, t StreamType) []byte {
	return AppendVarint(b, uint64(t))
}

// AppendUniStreamType appends a uni stream type.
func AppendUniStreamType(b []byte, t UniStreamType) []byte {
	return AppendVarint(b, uint64(t))
}

// ReadStreamType reads the type that opens a bidi stream and checks it
// against v. The type is returned even on error so the caller can decide how
// to refuse the stream: the error wraps ErrUnknownStream for a type no
// version defines, ErrUnsupported for one that v does not allow, or is io.EOF
// if the stream ended before any byte. Rust 0.16 closes the whole session on
// an unknown type while JS resets just the stream; that policy belongs to
// the caller.
func ReadStreamType(r io.ByteReader, v Version) (StreamType, error) {
	x, err := ReadVarint(r)
	if err != nil {
		return 0, err
	}
	t := StreamType(x)
	switch {
	case t.AllowedIn(v):
		return t, nil
	case t.known():
		return t, wrap(t.String()+" stream", ErrUnsupported)
	default:
		return t, wrap(t.String(), ErrUnknownStream)
	}
}

// ReadUniStreamType reads the type that opens a uni stream and checks it
// against v, with the same error conventions as ReadStreamType.
func ReadUniStreamType(r io.ByteReader, v Version) (UniStreamType, error) {
	x, err := ReadVarint(r)
	if err != nil {
		return 0, err
	}
	t := UniStreamType(x)
	switch {
	case t.AllowedIn(v):
		return t, nil
	case t == UniGroup || t == UniSetup:
		return t, wrap(t.String()+" stream", ErrUnsupported)
	default:
		return t, wrap(t.String(), ErrUnknownStream)
	}
}
