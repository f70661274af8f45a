package actor

import (
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
)

// A session whose peer sent GOAWAY is closed by the node once no
// subscription uses it (either way), or goawayGrace after the GOAWAY at the
// latest: the peer (a server shutting down) waits for its clients to leave,
// and the node's kept links and resilient tracks redial when the session
// ends. The grace lets a subscription in progress take what the peer still
// sends before it goes.
const goawayGrace = 2 * time.Second

// leave closes s, whose peer sent GOAWAY, as soon as nothing uses it,
// goawayGrace later at the latest.
func leave(s *session.Session) {
	t := time.NewTimer(goawayGrace)
	defer t.Stop()
	select {
	case <-s.Idle():
	case <-t.C:
	case <-s.Done():
		return
	}
	_ = s.Close(broadcast.CodeCancel, "peer sent GOAWAY")
}
