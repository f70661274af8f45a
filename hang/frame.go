package hang

import (
	"errors"
	"fmt"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// ErrFrame is returned (wrapped) for a frame whose timestamp prefix does
// not parse.
var ErrFrame = errors.New("hang: bad frame")

// AppendFrame appends a legacy-container frame to dst: ts, the presentation
// timestamp in microseconds, as a QUIC varint, then payload.
func AppendFrame(dst []byte, ts uint64, payload []byte) []byte {
	dst = wire.AppendVarint(dst, ts)
	return append(dst, payload...)
}

// ParseFrame splits a legacy-container frame into its timestamp
// (microseconds) and payload, which aliases b. An empty payload is a marker
// (content stops at ts), not a sample.
func ParseFrame(b []byte) (ts uint64, payload []byte, err error) {
	ts, n, err := wire.ParseVarint(b)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: timestamp: %v", ErrFrame, err)
	}
	return ts, b[n:], nil
}
