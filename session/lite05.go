// What moq-lite-05 adds to a session: the SETUP uni stream each side sends,
// the TRACK stream (a track's fixed properties), and frame timestamps.

package session

import (
	"bufio"
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// DefaultTimescale is the timescale (units per second) a lite-05 track is
// announced with in TRACK_INFO: milliseconds, moq-net's default.
const DefaultTimescale = 1000

// peerSetup is what the peer's lite-05 SETUP said; set once.
type peerSetup struct {
	seen atomic.Bool
	msg  atomic.Pointer[wire.Setup]
}

// PeerSetup returns the peer's lite-05 SETUP once it arrived (false before,
// and always on other versions).
func (s *Session) PeerSetup() (wire.Setup, bool) {
	if m := s.peerSetup.msg.Load(); m != nil {
		return *m, true
	}
	return wire.Setup{}, false
}

// sendSetup opens our SETUP uni stream, writes SETUP and FIN. Both sides
// send theirs at once and wait for nothing: moq-dev's Rust server reads
// the client's SETUP before it serves anything, so a client that waited
// for the server's would never start. We advertise no probe level (we
// report no bandwidth, so the peer opens no PROBE stream), no role (both)
// and our hop ID, as @moq/net does.
func (s *Session) sendSetup() {
	st, err := s.conn.OpenUniStream(s.ctx)
	if err != nil {
		return
	}
	b := wire.AppendUniStreamType(nil, wire.UniSetup)
	b, err = wire.AppendMessage(b, s.version, &wire.Setup{Origin: s.hop & wire.MaxVarint})
	if err == nil {
		_, err = st.Write(b)
	}
	if err != nil {
		st.CancelWrite(uint32(broadcast.CodeCancel))
		s.log.Debug("sending SETUP failed", "err", err)
		return
	}
	_ = st.Close()
}

// recvSetup reads the peer's SETUP stream (its type already read): one
// SETUP message, then FIN. A second SETUP stream, a malformed SETUP or
// bytes after it violate the protocol and close the session.
func (s *Session) recvSetup(rs transport.ReceiveStream, gr *groupReader) {
	if s.peerSetup.seen.Swap(true) {
		rs.CancelRead(uint32(broadcast.CodeProtocol))
		s.fail(broadcast.CodeProtocol, "a second SETUP stream")
		return
	}
	var m wire.Setup
	if err := wire.ReadMessage(gr.Reader, s.version, &m, s.lim.MaxMessageSize); err != nil {
		rs.CancelRead(uint32(codeOfWire(err)))
		if isWireErr(err) || errors.Is(err, io.EOF) {
			s.fail(codeOfWire(err), "setup: %v", err)
		}
		return
	}
	if !gr.headerRead() {
		return
	}
	if _, err := gr.ReadByte(); !errors.Is(err, io.EOF) {
		rs.CancelRead(uint32(broadcast.CodeProtocol))
		if err == nil {
			s.fail(broadcast.CodeProtocol, "setup: data after SETUP")
		}
		return
	}
	s.peerSetup.msg.Store(&m)
	s.log.Debug("peer SETUP", "probe", m.Probe, "role", m.Role, "path", m.Path)
}

// serveTrack answers the peer's TRACK with TRACK_INFO and FIN, or resets
// the stream with the code of the track's refusal (NotFound). Every track
// of ours has a millisecond timescale and the cache's max age as its max
// latency.
func (s *Session) serveTrack(st transport.Stream, r *bufio.Reader, hdr headerTimer) {
	var m wire.Track
	if err := wire.ReadMessage(r, s.version, &m, s.lim.MaxMessageSize); err != nil {
		reset(st, codeOfWire(err))
		return
	}
	if !hdr.done() {
		return
	}
	b := s.publish.Get(broadcast.CleanPath(m.Broadcast))
	if b == nil {
		reset(st, broadcast.CodeNotFound)
		return
	}
	// Not a subscription: a track's first subscriber is what starts a
	// publisher (and joins at the latest group), and TRACK precedes the
	// SUBSCRIBE that is one.
	tr, err := b.TrackInfo(m.Track)
	if err != nil {
		reset(st, broadcast.CodeOf(err))
		return
	}
	info := wire.TrackInfo{Priority: tr.Priority, MaxLatency: s.lim.Model.CacheMaxAge, Timescale: DefaultTimescale}
	if info.MaxLatency <= 0 {
		info.MaxLatency = broadcast.DefaultCacheMaxAge
	}
	buf, err := wire.AppendMessage(nil, s.version, &info)
	if err == nil {
		_, err = st.Write(buf)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return
	}
	st.CancelRead(0) // nothing more comes
	_ = st.Close()
}

// trackInfo asks the peer for a track's TRACK_INFO (lite-05), as moq-dev's
// subscribers do before SUBSCRIBE: a refusal (the broadcast is unknown)
// comes back as the stream's reset.
func (s *Session) trackInfo(ctx context.Context, path, track string) (wire.TrackInfo, error) {
	var info wire.TrackInfo
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		return info, remoteErr(err)
	}
	stop := context.AfterFunc(ctx, func() { reset(st, broadcast.CodeCancel) })
	defer stop()
	b := wire.AppendStreamType(nil, wire.StreamTrack)
	if b, err = wire.AppendMessage(b, s.version, &wire.Track{Broadcast: wirePath(path), Track: track}); err == nil {
		_, err = st.Write(b)
	}
	if err == nil {
		err = st.Close()
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return info, remoteErr(err)
	}
	r := getReader(st)
	defer putReader(r)
	if err := wire.ReadMessage(r, s.version, &info, s.lim.MaxMessageSize); err != nil {
		st.CancelRead(uint32(broadcast.CodeCancel))
		switch {
		case ctx.Err() != nil:
			return info, remoteErr(context.Cause(ctx))
		case isWireErr(err):
			return info, &broadcast.Error{Code: codeOfWire(err), Reason: "track info: " + err.Error()}
		case errors.Is(err, io.EOF):
			return info, &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "track stream ended before TRACK_INFO"}
		}
		return info, remoteErr(err)
	}
	st.CancelRead(0)
	return info, nil
}

// appendFrameHeader appends what precedes a frame's payload on a group
// stream: on lite-05 the timestamp delta (frames carry no timestamp in the
// model yet, so every frame says 0: a delta of 0), then the size.
func (s *Session) appendFrameHeader(b []byte, size int) []byte {
	if s.version.HasFrameTimestamps() {
		b = append(b, 0) // zigzag(0 - 0)
	}
	return wire.AppendFrameHeader(b, uint64(size))
}

// frameStart parses the header of the frame at the start of buf: the
// timestamp delta (lite-05; parsed and dropped, see appendFrameHeader)
// and the size. n is the header's length; ok is false if buf does not
// hold the whole header.
func (s *Session) frameStart(buf []byte) (size uint64, n int, ok bool) {
	if s.version.HasFrameTimestamps() {
		_, k, err := wire.ParseVarint(buf)
		if err != nil {
			return 0, 0, false
		}
		n = k
	}
	size, k, err := wire.ParseVarint(buf[n:])
	if err != nil {
		return 0, 0, false
	}
	return size, n + k, true
}

// readFrameStart reads the header of the next frame from r, as frameStart.
func (s *Session) readFrameStart(r io.ByteReader) (uint64, error) {
	if s.version.HasFrameTimestamps() {
		if _, err := wire.ReadVarint(r); err != nil {
			return 0, err
		}
	}
	return wire.ReadVarint(r)
}
