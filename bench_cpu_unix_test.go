//go:build unix

package etcdgw_test

import "syscall"

// processCPU is the CPU time this process has used, in nanoseconds: the
// client's alone, since the benchmarks' etcd runs in a child process.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
