#!/usr/bin/env bash
# Compatibility run: the library's tests (core, watch, lease) and the test
# harness's own tests against real etcd 3.4, 3.5 and 3.6 servers, which
# internal/etcdtest runs as subprocesses when ETCDGW_ETCD_BINARY names a
# binary (the normal test run embeds etcd 3.7).
#
#   etcd 3.4: Debian's etcd-server package (3.4.23), installed with apt-get
#             when /usr/bin/etcd is missing (needs root).
#   etcd 3.5, 3.6: built from the nested modules internal/etcdtest/etcd3.5
#             and etcd3.6 into a temporary directory.
#
# Prints a matrix of etcd version x test group and exits non-zero when any
# test fails. Environment:
#   COMPAT_VERSIONS  which to run, default "3.4 3.5 3.6"
#   COMPAT_RACE      "-race" to run under the race detector (default off:
#                    the main test run covers races; this run is about the
#                    wire, and must stay under 15 minutes on 2 cores)
#   COMPAT_KEEP      a directory to keep the binaries and logs in
set -euo pipefail
cd "$(dirname "$0")/.."

versions=${COMPAT_VERSIONS:-3.4 3.5 3.6}
race=${COMPAT_RACE:-}
if [ -n "${COMPAT_KEEP:-}" ]; then
	work=$COMPAT_KEEP
	mkdir -p "$work"
else
	work=$(mktemp -d)
	# Logs of a failed run stay for a look.
	trap '[ "${status:-1}" -ne 0 ] || rm -rf "$work"' EXIT
fi

step() { printf '\n== %s\n' "$*"; }
now() { date +%s; }
start=$(now)

# etcd_34 prints the path of an etcd 3.4 binary, installing Debian's
# etcd-server package when there is none.
etcd_34() {
	if [ ! -x /usr/bin/etcd ]; then
		# Keep the package's service from starting on install: the tests
		# use free ports, but a stray etcd on 2379 helps no one.
		local policy=/usr/sbin/policy-rc.d own_policy=
		if [ ! -e "$policy" ]; then
			printf '#!/bin/sh\nexit 101\n' >"$policy"
			chmod +x "$policy"
			own_policy=1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >&2
		[ -z "$own_policy" ] || rm -f "$policy"
		systemctl stop etcd >/dev/null 2>&1 || true
		systemctl disable etcd >/dev/null 2>&1 || true
	fi
	echo /usr/bin/etcd
}

# build_etcd builds the etcd of the nested module for version $1.
build_etcd() {
	local out=$work/etcd$1
	(cd "internal/etcdtest/etcd$1" && GOWORK=off go build -mod=readonly -o "$out" .) >&2
	echo "$out"
}

declare -A bin full
for v in $versions; do
	t=$(now)
	case $v in
	3.4) step "etcd 3.4: Debian's etcd-server"; bin[$v]=$(etcd_34) ;;
	*) step "etcd $v: build internal/etcdtest/etcd$v"; bin[$v]=$(build_etcd "$v") ;;
	esac
	got=$("${bin[$v]}" --version | sed -n 's/^etcd Version: //p')
	case $got in
	"$v".*) echo "${bin[$v]}: etcd $got ($(($(now) - t)) s)" ;;
	*) echo "FAIL: ${bin[$v]} is etcd $got, want $v.x" >&2; exit 1 ;;
	esac
	full[$v]=$got
done

# group names the test group of a top-level test of the root package.
group() {
	case $1 in
	*Watch*) echo watch ;;
	*Lease* | *KeepAlive* | *TTL*) echo lease ;;
	*) echo core ;;
	esac
}

declare -A pass fail skip
groups="core watch lease harness"
status=0
for v in $versions; do
	for pkg in . ./internal/etcdtest; do
		log=$work/test-$v-$(basename "$(realpath "$pkg")").log
		step "etcd ${full[$v]}: go test ${race:+$race }-count=1 $pkg"
		t=$(now)
		rc=0
		ETCDGW_ETCD_BINARY=${bin[$v]} go test $race -count=1 -v "$pkg" >"$log" 2>&1 || rc=$?
		while read -r result name; do
			g=harness
			[ "$pkg" = . ] && g=$(group "$name")
			case $result in
			PASS) pass[$v.$g]=$((${pass[$v.$g]:-0} + 1)) ;;
			FAIL) fail[$v.$g]=$((${fail[$v.$g]:-0} + 1)) ;;
			SKIP) skip[$v.$g]=$((${skip[$v.$g]:-0} + 1)); echo "skipped: $name" ;;
			esac
		done < <(sed -n 's/^--- \(PASS\|FAIL\|SKIP\): \([^ ]*\).*/\1 \2/p' "$log")
		grep -E '^(--- FAIL|FAIL|ok|panic:)' "$log" || true
		if [ "$rc" -ne 0 ]; then
			status=1
			# A failure outside any test (a panic, a leak found in TestMain)
			# still fails the group.
			if ! grep -q '^--- FAIL' "$log"; then
				g=harness
				[ "$pkg" = . ] && g=core
				fail[$v.$g]=$((${fail[$v.$g]:-0} + 1))
			fi
			echo "--- output of the failing run ($log):"
			grep -vE '^ *(=== |--- (PASS|SKIP))' "$log" | tail -n 80
		fi
		echo "($(($(now) - t)) s)"
	done
done

step "compatibility matrix (pass / skip / FAIL per test group)"
printf '%-10s' etcd
for g in $groups; do printf '%-18s' "$g"; done
echo
for v in $versions; do
	printf '%-10s' "${full[$v]}"
	for g in $groups; do
		p=${pass[$v.$g]:-0} s=${skip[$v.$g]:-0} f=${fail[$v.$g]:-0}
		cell="$p pass"
		[ "$s" -eq 0 ] || cell="$cell, $s skip"
		[ "$f" -eq 0 ] || cell="$cell, $f FAIL"
		printf '%-18s' "$cell"
	done
	echo
done
echo "total time: $(($(now) - start)) s"
[ "$status" -eq 0 ] || echo "logs: $work"
exit $status
