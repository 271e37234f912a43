package etcdtest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the etcd process when the test process
// dies, so that a test binary that crashes or is killed leaves no etcd
// behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
