#!/usr/bin/env bash
# Release: check that the tree can be released as vX.Y.Z, then tag it.
#
#   bash scripts/release.sh v0.1.0                       # check everything, then tag
#   bash scripts/release.sh v0.1.0 --dry-run             # check everything, tag nothing
#   bash scripts/release.sh v0.1.0 --dry-run --skip-ci   # the same without .ci/run
#
# The checks: the version is vX.Y.Z (semantic versioning, an optional
# pre-release suffix such as -rc.1) and agrees with the module path's major
# version; the working tree is clean and on main; the tag does not exist yet;
# CHANGELOG.md has a "## [X.Y.Z]" entry; the exported API matches the snapshot
# under api/ (scripts/apicheck.sh); and `bash .ci/run` passes. A full dry run
# runs every check, .ci/run included (about 7 minutes on 2 cores); --skip-ci
# leaves .ci/run out and is refused without --dry-run.
#
# Then it makes an annotated tag whose message is the CHANGELOG entry. It does
# not push: it prints the command that does.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
	echo "usage: $0 vX.Y.Z [--dry-run [--skip-ci]]" >&2
	exit 2
}

version="" dry_run=false skip_ci=false
for arg in "$@"; do
	case "$arg" in
	--dry-run | -n) dry_run=true ;;
	--skip-ci) skip_ci=true ;;
	-*) usage ;;
	*)
		[ -z "$version" ] || usage
		version=$arg
		;;
	esac
done
[ -n "$version" ] || usage
if $skip_ci && ! $dry_run; then
	echo "release: --skip-ci is for dry runs only; a release runs .ci/run" >&2
	exit 2
fi

step() { printf '\n== %s\n' "$*"; }
fail() {
	printf 'release: FAIL: %s\n' "$*" >&2
	exit 1
}
ok() { printf 'ok: %s\n' "$*"; }

step "version $version"
semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$'
[[ "$version" =~ $semver ]] || fail "$version is not vMAJOR.MINOR.PATCH (e.g. v0.1.0, v1.2.0-rc.1)"
major=${BASH_REMATCH[1]}
number=${version#v}
module=$(go list -m)
if [ "$major" -ge 2 ]; then
	[[ "$module" == */v"$major" ]] || fail "$version needs the module path to end in /v$major, go.mod says $module"
else
	[[ ! "$module" =~ /v[0-9]+$ ]] || fail "$version is v0 or v1 but go.mod's module path $module has a major version suffix"
fi
ok "$version is a semantic version of $module"

step "working tree"
[ -z "$(git status --porcelain)" ] || fail "the working tree is not clean:
$(git status --short)"
branch=$(git symbolic-ref --quiet --short HEAD || echo "(detached HEAD)")
[ "$branch" = main ] || fail "releases are tagged on main; HEAD is on $branch"
commit=$(git rev-parse HEAD)
ok "clean, on main at $(git log -1 --format='%h %s')"

step "tag"
if git rev-parse --quiet --verify "refs/tags/$version" >/dev/null; then
	fail "tag $version already exists (on $(git rev-list -n1 "$version"))"
fi
ok "$version is not tagged yet"

step "CHANGELOG.md entry"
heading=$(grep -m1 -E "^## \[${number//./\\.}\]" CHANGELOG.md || true)
[ -n "$heading" ] || fail "CHANGELOG.md has no \"## [$number]\" entry: rename Unreleased to [$number] with the date, and start a new Unreleased"
# The entry: from its heading to the next "## " heading, without either.
entry=$(awk -v h="$heading" '$0 == h {on = 1; next} on && /^## / {exit} on' CHANGELOG.md |
	sed -e '/^\[.*\]: /d' | sed -e '/./,$!d' | sed -e ':a' -e '/^\n*$/{$d;N;ba' -e '}')
[ -n "$entry" ] || fail "CHANGELOG.md's \"$heading\" entry is empty"
ok "$heading ($(printf '%s\n' "$entry" | wc -l) lines)"

step "exported API matches api/: bash scripts/apicheck.sh"
bash scripts/apicheck.sh

step "CI: bash .ci/run"
if $skip_ci; then
	echo "skipped (--skip-ci): a release, and a dry run without --skip-ci, runs bash .ci/run here"
else
	bash .ci/run
	ok ".ci/run passed"
fi

step "tag $version"
message=$(printf 'etcdgw %s\n\n%s\n' "$version" "$entry")
if $dry_run; then
	echo "dry run: every check passed; a release would now run:"
	echo "  git tag -a --cleanup=whitespace $version -m <message> $commit"
	echo "with the message:"
	printf '%s\n' "$message" | sed 's/^/    | /'
	echo "and then print: git push origin $version"
	exit 0
fi
git tag -a --cleanup=whitespace "$version" -m "$message" "$commit"
ok "tagged $version on $(git log -1 --format='%h %s' "$commit")"
echo "push it with: git push origin $version"
