package session

import (
	"bufio"
	"context"
	"errors"
	"io"
	"slices"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// setupOffer is what a client offers in CLIENT_SETUP, as moq-dev's clients
// do: the Rust server selects only lite-02/01 this way.
var setupOffer = []wire.Version{wire.Lite02, wire.Lite01}

// implementation names us in CLIENT_SETUP.
const implementation = "moqp2p"

// runSetup negotiates the version with the compat SETUP on the first bidi
// stream, starts the session, then holds that stream open as the session
// stream: the peer ending it ends the session, as in moq-dev's Rust.
func (s *Session) runSetup(metrics MetricsTracer) {
	ctx, cancel := context.WithTimeoutCause(s.ctx, s.lim.SetupTimeout,
		&broadcast.Error{Code: broadcast.CodeTimeout, Reason: "compat SETUP timed out"})
	defer cancel()
	var (
		st  transport.Stream
		r   *bufio.Reader
		err error
	)
	if s.client {
		st, r, err = s.clientSetup(ctx)
	} else {
		st, r, err = s.serverSetup(ctx)
	}
	if r != nil {
		defer putReader(r)
	}
	if err != nil {
		if s.ctx.Err() == nil {
			code := broadcast.CodeOf(err)
			if isWireErr(err) {
				code = codeOfWire(err)
			}
			s.fail(code, "setup: %v", err)
		}
		return
	}
	cancel()
	s.log.Debug("compat SETUP done", "version", s.version.String())
	s.start(metrics, "") // lite-01/02: no SETUP stream

	stop := context.AfterFunc(s.ctx, func() { reset(st, broadcast.CodeCancel) })
	defer stop()
	for { // SESSION_UPDATE carries a bitrate nobody sends; read and drop
		var m wire.SessionUpdate
		if err := wire.ReadMessage(r, s.version, &m, s.lim.MaxMessageSize); err != nil {
			switch {
			case s.ctx.Err() != nil, errors.As(err, new(*transport.ConnError)):
				// the session or connection is ending anyway, with its own reason
			case isWireErr(err):
				s.fail(codeOfWire(err), "session stream: %v", err)
			default: // finished or reset by the peer: the session is over
				s.log.Debug("peer ended the session stream", "err", err)
				s.end(broadcast.CodeCancel, "session stream ended")
			}
			return
		}
	}
}

// clientSetup opens the session stream, offers setupOffer and checks the
// server's choice.
func (s *Session) clientSetup(ctx context.Context) (transport.Stream, *bufio.Reader, error) {
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		return nil, nil, setupErr(ctx, err)
	}
	offer := wire.ClientSetup{Versions: setupOffer, Params: wire.Params{
		Bytes: map[uint64][]byte{wire.ParamImplementation: []byte(implementation)},
	}}
	buf, err := wire.AppendClientSetup(nil, &offer)
	if err == nil {
		_, err = st.Write(buf)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return nil, nil, setupErr(ctx, err)
	}
	r := getReader(st)
	var reply wire.ServerSetup
	if err := s.readSetup(ctx, st, func() error { return wire.ReadServerSetup(r, &reply) }); err != nil {
		return nil, r, err
	}
	if !slices.Contains(setupOffer, reply.Version) {
		reset(st, broadcast.CodeVersion)
		return nil, r, &broadcast.Error{Code: broadcast.CodeVersion, Reason: "server selected " + reply.Version.String() + ", which was not offered"}
	}
	s.version = reply.Version
	return st, r, nil
}

// serverSetup reads CLIENT_SETUP from the client's first bidi stream and
// selects the first offered version we speak (the client's preference wins,
// as in both moq-dev servers).
func (s *Session) serverSetup(ctx context.Context) (transport.Stream, *bufio.Reader, error) {
	st, err := s.conn.AcceptStream(ctx)
	if err != nil {
		return nil, nil, setupErr(ctx, err)
	}
	r := getReader(st)
	var offer wire.ClientSetup
	if err := s.readSetup(ctx, st, func() error { return wire.ReadClientSetup(r, &offer) }); err != nil {
		return nil, r, err
	}
	i := slices.IndexFunc(offer.Versions, wire.Version.Known)
	if i < 0 {
		reset(st, broadcast.CodeVersion)
		return nil, r, &broadcast.Error{Code: broadcast.CodeVersion, Reason: "no offered version is supported"}
	}
	v := offer.Versions[i]
	buf, err := wire.AppendServerSetup(nil, &wire.ServerSetup{Version: v}) // no parameters, as Rust
	if err == nil {
		_, err = st.Write(buf)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return nil, r, setupErr(ctx, err)
	}
	s.version = v
	return st, r, nil
}

// readSetup runs read, abandoning the stream if ctx ends first.
func (s *Session) readSetup(ctx context.Context, st transport.Stream, read func() error) error {
	stop := context.AfterFunc(ctx, func() { reset(st, broadcast.CodeTimeout) })
	err := read()
	fired := !stop()
	switch {
	case err == nil:
		return nil
	case fired:
		return setupErr(ctx, err)
	case errors.Is(err, io.EOF):
		reset(st, broadcast.CodeProtocol)
		return &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "setup stream ended before the SETUP message"}
	case isWireErr(err):
		reset(st, codeOfWire(err))
		return err
	}
	return remoteErr(err)
}

// setupErr prefers ctx's cause (a timeout) over the error it provoked.
func setupErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return remoteErr(err)
}
