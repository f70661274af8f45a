package websocket

import (
	"bufio"
	"net"
	"net/http"
)

// tcpConnOf returns the TCP connection under c (through TLS), or nil.
func tcpConnOf(c net.Conn) *net.TCPConn {
	for {
		switch t := c.(type) {
		case *net.TCPConn:
			return t
		case interface{ NetConn() net.Conn }:
			c = t.NetConn()
		default:
			return nil
		}
	}
}

// hijackRecorder hands coder/websocket the request's connection and keeps
// it, so that the Conn can read the TCP state under it.
type hijackRecorder struct {
	http.ResponseWriter
	hj   http.Hijacker
	conn net.Conn
}

// recordHijack wraps w if coder/websocket could hijack it (it looks the
// same way), else returns nil.
func recordHijack(w http.ResponseWriter) *hijackRecorder {
	for rw := w; ; {
		switch t := rw.(type) {
		case http.Hijacker:
			return &hijackRecorder{ResponseWriter: w, hj: t}
		case interface{ Unwrap() http.ResponseWriter }:
			rw = t.Unwrap()
		default:
			return nil
		}
	}
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := h.hj.Hijack()
	if err == nil {
		h.conn = c
	}
	return c, brw, err
}

func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }
