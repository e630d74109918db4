//go:build unix

package child

import (
	"errors"
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group, so that killProcess
// reaches any children it starts, and (on Linux) sets its parent-death
// signal (see the package documentation).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(cmd.SysProcAttr)
}

// killProcess sends SIGKILL to the child's process group.
func killProcess(cmd *exec.Cmd) error {
	pid := cmd.Process.Pid
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	if err != nil {
		// Fall back to the process itself.
		if err2 := cmd.Process.Kill(); err2 == nil {
			return nil
		}
	}
	return err
}
