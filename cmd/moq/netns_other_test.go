//go:build !linux

package main

import (
	"errors"
	"testing"
)

const binEnv = "MOQP2P_TEST_MOQ_BIN"

// inPrivateNetns: private network namespaces exist on Linux only.
func inPrivateNetns(*testing.T) (child bool, err error) {
	return false, errors.New("private network namespaces need Linux")
}
