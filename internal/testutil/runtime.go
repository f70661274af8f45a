package testutil

import (
	"runtime"
	"strings"
)

// HeapAlloc is the live heap after two full collections: the first only
// moves what sync.Pools hold to their victim caches (and queues
// finalizers), the second frees it, so pooled buffers do not count as held.
// Tests compare two readings against a documented budget.
func HeapAlloc() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// Goroutines counts the goroutines with fn (a qualified name as a stack
// trace prints it, such as "moq.(*Session).waitAnnounced") on their stack.
// With parkedOnly it counts only those blocked in a select or on a channel:
// a test waits for a call to park before it checks what must not happen.
func Goroutines(fn string, parkedOnly bool) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		parked := strings.Contains(header, "[select") || strings.Contains(header, "[chan ")
		if (parked || !parkedOnly) && strings.Contains(g, fn+"(") {
			count++
		}
	}
	return count
}
