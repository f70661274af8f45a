package session

import (
	"testing"
	"unsafe"
)

// An idle session is mostly its Session struct, allocated in the 768-byte
// size class; the runtime puts an 8-byte header on an object of more than
// 512 bytes that holds pointers, so 760 is the most the struct may take
// before it moves to the 896-byte class.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 760 {
		t.Errorf("Session is %d bytes; more than 760 puts it in the 896-byte size class (see the struct's comment)", n)
	}
}
