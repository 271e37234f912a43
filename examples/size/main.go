// Command size measures what etcdgw costs a program: it builds getgw (one Get
// with etcdgw) and getv3 (the same with clientv3) stripped, and prints their
// sizes and how many packages each links; for reference, also gethttp (the
// same with net/http and encoding/json only) and gethttppb (gethttp decoding
// into mvccpb.KeyValue, the type etcdgw's API returns). With -check it fails when etcdgw's
// program is over -max times clientv3's or links any gRPC package.
//
//	go run ./examples/size [-check] [-max 0.5]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type footprint struct {
	pkg               string
	bytes             int64
	deps, nonStd, rpc int
}

func main() {
	check := flag.Bool("check", false, "exit 1 when a limit is exceeded")
	maxRatio := flag.Float64("max", 0.5, "the largest allowed etcdgw/clientv3 size ratio")
	flag.Parse()
	dir, err := os.MkdirTemp("", "etcdgw-size")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	gw := measure(dir, "./examples/size/getgw")
	v3 := measure(dir, "./examples/size/getv3")
	floor := measure(dir, "./examples/size/gethttp")
	pb := measure(dir, "./examples/size/gethttppb")
	fmt.Printf("%-28s %12s %10s %14s %14s\n", "program (stripped)", "bytes", "packages", "non-std pkgs", "grpc pkgs")
	for _, f := range []footprint{gw, v3, floor, pb} {
		fmt.Printf("%-28s %12d %10d %14d %14d\n", f.pkg, f.bytes, f.deps, f.nonStd, f.rpc)
	}
	ratio := float64(gw.bytes) / float64(v3.bytes)
	fmt.Printf("etcdgw / clientv3 size: %.2f (%.1f MB vs %.1f MB)\n", ratio, mb(gw.bytes), mb(v3.bytes))
	if !*check {
		return
	}
	failed := false
	if ratio > *maxRatio {
		fmt.Printf("FAIL: etcdgw's program is %.2f times clientv3's, over %.2f\n", ratio, *maxRatio)
		failed = true
	}
	if gw.rpc > 0 {
		fmt.Printf("FAIL: etcdgw's program links %d gRPC packages\n", gw.rpc)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// measure builds pkg stripped into dir and lists its dependencies.
func measure(dir, pkg string) footprint {
	bin := filepath.Join(dir, filepath.Base(pkg))
	run("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	st, err := os.Stat(bin)
	if err != nil {
		log.Fatal(err)
	}
	f := footprint{pkg: pkg, bytes: st.Size()}
	for _, line := range strings.Fields(run("go", "list", "-deps", "-f", "{{.Standard}}:{{.ImportPath}}", pkg)) {
		std, path, _ := strings.Cut(line, ":")
		f.deps++
		if std == "false" {
			f.nonStd++
		}
		if strings.HasPrefix(path, "google.golang.org/grpc") {
			f.rpc++
		}
	}
	return f
}

func run(name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}
