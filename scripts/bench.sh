#!/usr/bin/env bash
# The performance suite of issue 6: decoder microbenchmarks, unary Get/Set at
# 1, 16 and 64 goroutines, ReadDir of 20,000 keys and a watch replay of 20,000
# events, each against its baselines in the same run. Prints benchstat's table,
# then etcdgw's ratio to every baseline beside the targets. About 8 minutes on
# 2 cores. Run from anywhere: bash scripts/bench.sh
#   COUNT=6     runs of each benchmark (benchstat wants 6 for its intervals)
#   OUT=file    where the raw output goes (default: a temporary file, kept)
set -euo pipefail
cd "$(dirname "$0")/.."

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

run() { go test -run '^$' -benchmem -count "$count" "$@" | tee -a "$out"; }

printf '== %s, %s, %s cores\n' "$(go version)" \
	"$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')" "$(nproc)"
run -bench '^Benchmark(Range|Watch)Decode$' -benchtime 1s ./internal/wire
run -bench '^Benchmark(Get|Set)$' -benchtime 1s .
run -bench '^Benchmark(ReadDir|WatchReplay)$' -benchtime 5x .

printf '\n== benchstat %s\n' "$out"
"$benchstat" "$out"

printf '\n== ratios (medians of %s runs; ratio = baseline time / etcdgw time, or etcdgw'"'"'s own metric)\n' "$count"
go run ./scripts/benchratio "$out"
