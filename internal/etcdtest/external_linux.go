package etcdtest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the etcd process when the test process
// dies, so that a test binary that crashes or is killed leaves no etcd
// behind. The kernel ties the signal to the OS thread that started the
// process, and Go ends a thread only when a goroutine locked to it exits
// locked, which this package never does.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
