//go:build unix

package etcdgw_test

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// processCPU is the CPU time this process has used, in nanoseconds: the
// client's alone, since the benchmarks' etcd runs in a child process.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// childCPU is the CPU time the process pid has used, in nanoseconds, from
// /proc (Linux; 0 elsewhere), at the kernel's usual 100 ticks a second.
func childCPU(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: state is
	// the first, utime the 12th and stime the 13th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return (u + s) * 10_000_000
}
