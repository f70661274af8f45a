package websocket

// scheduler orders the streams that have data (or a FIN) to send: eight
// FIFO lists, one per urgency. The writer serves the lowest urgency that
// can send and moves a stream to the back of its list after each frame,
// so streams of one urgency take turns (RFC 9218 "incremental"), as
// rawquic configures quic-go. Lists are intrusive (stream.prev/next), so
// queueing, re-prioritising and removal cost O(1).
type scheduler struct {
	head, tail [8]*stream
}

func (q *scheduler) init() {
	*q = scheduler{}
}

// push appends s to the list of its urgency.
func (q *scheduler) push(s *stream) {
	u := s.urgency
	s.bucket = u
	s.next = nil
	s.prev = q.tail[u]
	if q.tail[u] != nil {
		q.tail[u].next = s
	} else {
		q.head[u] = s
	}
	q.tail[u] = s
}

// remove unlinks s from its list.
func (q *scheduler) remove(s *stream) {
	u := s.bucket
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		q.head[u] = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		q.tail[u] = s.prev
	}
	s.prev, s.next, s.bucket = nil, nil, -1
}

// rotate moves s to the back of its list, after it sent a frame.
func (q *scheduler) rotate(s *stream) {
	if q.tail[s.bucket] != s {
		q.remove(s)
		q.push(s)
	}
}

// scheduleLocked queues s for the writer if it has something to send and
// may send it.
func (c *Conn) scheduleLocked(s *stream) {
	if s.bucket >= 0 || s.blocked || s.writeErr != nil || s.finSent {
		return
	}
	if s.queued() == 0 && !s.finQueued {
		return
	}
	c.sched.push(s)
	c.writer.wake()
}

// controlLocked queues s for the writer's control pass (RESET_STREAM,
// STOP_SENDING, MAX_STREAM_DATA), which goes before any data.
func (c *Conn) controlLocked(s *stream) {
	if !s.inCtrl {
		s.inCtrl = true
		c.ctrlQ = append(c.ctrlQ, s)
	}
	c.writer.wake()
}
