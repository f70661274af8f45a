//go:build unix

package main

import "syscall"

// raiseFileLimit lifts the soft limit on open files to the hard one: P11
// holds thousands of connections (one socket each would not fit the usual
// 1024; ours share a few, but the baseline's peers must not fail on it).
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur >= l.Max {
		return
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		logf("raising the open-file limit: %v", err)
	}
}
