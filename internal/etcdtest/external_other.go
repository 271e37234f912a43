//go:build !linux

package etcdtest

import "os/exec"

// setDeathSignal does nothing where the kernel cannot kill a child with its
// parent; Close and CheckProcesses still end every process.
func setDeathSignal(*exec.Cmd) {}
