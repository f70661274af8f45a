//go:build !linux

package discovery_test

import (
	"errors"
	"testing"
)

// inPrivateNetns: private network namespaces exist on Linux only.
func inPrivateNetns(*testing.T) (child bool, err error) {
	return false, errors.New("private network namespaces need Linux")
}
