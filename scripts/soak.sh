#!/usr/bin/env bash
# The chaos soak (TestSoak in soak_test.go) for a given length of load:
#   bash scripts/soak.sh 10m            a long run, with a seed from the clock
#   bash scripts/soak.sh 60s 42         replay the choices of seed 42
# It runs under the race detector and prints the soak's report: operations
# by kind and outcome, faults injected, writes of unknown outcome, watch
# events checked, anomalies (0 to pass) and the seed. On a linearizability
# violation porcupine's HTML visualization is kept in soak-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
length=${1:-60s}
seed=${2:-0}
out=${SOAK_OUT:-soak-artifacts}
mkdir -p "$out"
# The porcupine check and the end of the run take a few minutes at most on
# top of the load.
timeout=$(( $(go run ./scripts/seconds "$length") + 900 ))s
rc=0
go test -race -count=1 -run '^TestSoak$' -v -timeout "$timeout" -artifacts -outputdir "$(cd "$out" && pwd)" . \
	-soak="$length" -soak.seed="$seed" >"$out/soak.log" 2>&1 || rc=$?
grep -v -E '^(=== |[0-9]{4}/[0-9]{2}/[0-9]{2} )' "$out/soak.log" | grep -E -A60 'soak:|soak report|anomal|FAIL|panic' || true
exit "$rc"
