package main

import (
	"os/exec"
	"strconv"
	"syscall"
)

// setDeathSignal has the kernel kill the etcd child if this process dies.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// fileLimit is the soft limit on open files, which the Go runtime raises
// to the hard limit at start.
func fileLimit() string {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return "unknown"
	}
	return strconv.FormatUint(l.Cur, 10)
}
