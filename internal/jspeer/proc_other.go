//go:build !unix

package jspeer

import (
	"os"
	"os/exec"
)

// tryLock cannot lock across processes here; Ensure's in-process mutex still
// serialises callers within one test binary.
func tryLock(*os.File) (bool, error) { return true, nil }

func unlockFile(*os.File) {}

func ownProcessGroup(*exec.Cmd) {}

func killProcess(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
