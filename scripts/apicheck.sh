#!/usr/bin/env bash
# API compatibility check: the exported API of every public package, one line
# per exported name with its signature (internal/apicheck), must match the
# snapshot under api/ committed with it.
#
#   bash scripts/apicheck.sh           # check (CI runs this)
#   bash scripts/apicheck.sh -update   # rewrite api/*.txt from the code
#
# Public packages are found, not listed: every non-main package of the module
# outside internal/ (today the root package; concurrency, cache and etcdgwtest
# when they exist). The root package's snapshot is api/etcdgw.txt, a package
# in dir a/b has api/a-b.txt. A new public package without a snapshot, or a
# snapshot without its package, fails the check like a changed signature.
set -euo pipefail
cd "$(dirname "$0")/.."

update=false
case "${1:-}" in
"") ;;
-update | --update) update=true ;;
*)
	echo "usage: $0 [-update]" >&2
	exit 2
	;;
esac

module=$(go list -m)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/api"
go build -o "$tmp/apicheck" ./internal/apicheck

# snapshot_name DIR: the file name under api/ of the package in DIR.
snapshot_name() {
	if [ "$1" = "." ]; then
		echo "${module##*/}.txt"
	else
		echo "${1//\//-}.txt"
	fi
}

pkgs=$(go list -f '{{if ne .Name "main"}}{{.ImportPath}}{{end}}' ./... |
	grep -vE '(^|/)internal(/|$)' || true)
[ -n "$pkgs" ] || {
	echo "apicheck: no public package found" >&2
	exit 1
}
for p in $pkgs; do
	dir=${p#"$module"}
	dir=${dir#/}
	dir=${dir:-.}
	"$tmp/apicheck" "$dir" >"$tmp/api/$(snapshot_name "$dir")"
done

if $update; then
	mkdir -p api
	rm -f api/*.txt
	cp "$tmp"/api/*.txt api/
	echo "apicheck: wrote $(cd api && echo *.txt)"
	echo "apicheck: commit api/ with the change and add a line to CHANGELOG.md's Unreleased section"
	exit 0
fi

# A missing snapshot, or a snapshot without its package, shows as all lines
# added or removed.
changed=false
for name in $( (ls "$tmp/api"; cd api 2>/dev/null && ls -- *.txt 2>/dev/null || true) | sort -u); do
	old=api/$name new=$tmp/api/$name
	[ -e "$old" ] || old=/dev/null
	[ -e "$new" ] || new=/dev/null
	if ! diff -u --label "api/$name (snapshot)" --label "api/$name (code)" "$old" "$new" >&2; then
		changed=true
	fi
done
if $changed; then
	cat >&2 <<'EOF'

FAIL: exported API changed: run scripts/apicheck.sh -update and commit api/ with the
change, and add a CHANGELOG Unreleased line.
EOF
	exit 1
fi
echo "apicheck: exported API matches the snapshots: $(cd api && echo *.txt)"
