#!/usr/bin/env bash
# The performance suite of issues 6 and 16: decoder microbenchmarks, unary
# Get at 1, 16, 64 and 256 goroutines and Set at 1, 16 and 64, ReadDir of
# 20,000 keys and a watch replay of 20,000 events, each against its
# baselines in the same run. Prints benchstat's table,
# then etcdgw's ratio to every baseline beside the targets. About 7 minutes
# on 2 cores. Run from anywhere: bash scripts/bench.sh
#   COUNT=6     runs of each benchmark (benchstat wants 6 for its intervals)
#   OUT=file    where the raw output goes (default: a temporary file, kept)
#
# bash scripts/bench.sh watches runs the watch benchmark of issue 16 instead
# (scripts/watchbench): 10,000 watches on one client for etcdgw over http and
# https and for clientv3, etcd in a process of its own; prints a markdown
# table. About 2 minutes at 10,000.
#   WATCHES=N   watches per contender (default 10000)
#   further arguments go to watchbench: -rate 1000 -duration 10s
#               -contenders etcdgw-http,etcdgw-https,clientv3 -heapprofile FILE
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = watches ]; then
	shift
	# Each watch over plain HTTP/1.1 is a connection of its own until
	# watches share a WebSocket: the client and etcd each hold one
	# descriptor per watch.
	ulimit -n "$(ulimit -Hn)" || true
	bin=$(mktemp -d -t etcdgw-watchbench.XXXXXX)
	trap 'rm -rf "$bin"' EXIT
	go build -o "$bin/watchbench" ./scripts/watchbench
	"$bin/watchbench" "$@"
	exit
fi

count=${COUNT:-6}
out=${OUT:-$(mktemp -t etcdgw-bench.XXXXXX)}
: >"$out"

benchstat=$(command -v benchstat || true)
if [ -z "$benchstat" ]; then
	benchstat="$(go env GOPATH)/bin/benchstat"
	if [ ! -x "$benchstat" ]; then
		go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
	fi
fi

# The test binaries are built once, then run COUNT times in turn, so that each
# benchmark's runs are spread over the whole script and every contender sees
# the same changes of load (-count would run each contender COUNT times in a
# row, and the machine's load changes between contenders).
bin=$(mktemp -d -t etcdgw-bench-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/wire.test" ./internal/wire
go test -c -o "$bin/root.test" .
run() { "$@" -test.run '^$' -test.benchmem -test.count 1 | tee -a "$out" | grep '^Benchmark'; }

printf '== %s, %s, %s cores\n' "$(go version)" \
	"$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')" "$(nproc)"
for i in $(seq "$count"); do
	printf '\n== run %s of %s\n' "$i" "$count"
	(cd internal/wire && run "$bin/wire.test" -test.bench '^Benchmark(Range|Watch)Decode$' -test.benchtime 1s)
	run "$bin/root.test" -test.bench '^Benchmark(Get|Set)$' -test.benchtime 0.7s
	run "$bin/root.test" -test.bench '^Benchmark(ReadDir|WatchReplay)$' -test.benchtime 5x
done

printf '\n== benchstat %s\n' "$out"
"$benchstat" "$out"

printf '\n== ratios (medians of %s runs; ratio = baseline time / etcdgw time, or etcdgw'"'"'s own metric)\n' "$count"
go run ./scripts/benchratio "$out"
