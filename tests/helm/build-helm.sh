#!/usr/bin/env bash
# Builds the helm the chart's tests run: helm.sh/helm/v4 at a pinned release,
# from its Go module (never a downloaded binary), into a cache directory
# outside the repository, keyed by version. Built once; later runs find the
# stamp and reuse the binary.
#
# Usage: tests/helm/build-helm.sh [BUILD]
#   Progress goes to stderr; the go build's own output to BUILD/helm-build.log
#   (BUILD defaults to build); the last line on stdout is the helm binary.
# Environment:
#   HELM_VERSION  (default v4.3.2)
#   SPARK_IDENTITY_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/spark-identity-webhook)
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v4.3.2}
build=${1:-build}

say() { printf 'helm: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
trap 'say "ERROR: line $LINENO failed (exit $?): $BASH_COMMAND"' ERR

# go needs HOME (or GOPATH/GOCACHE); a bare CI environment may lack it.
if [ -z "${HOME:-}" ]; then
        HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
        [ -n "$HOME" ] || HOME=/root
        export HOME
fi
command -v go >/dev/null 2>&1 || for d in /usr/local/go/bin /usr/lib/go/bin; do
        [ -x "$d/go" ] && PATH="$d:$PATH" && break
done
command -v go >/dev/null 2>&1 || die "no go toolchain on PATH (need Go >= 1.26 to build helm $HELM_VERSION)"

cache=${SPARK_IDENTITY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spark-identity-webhook}
dir=$cache/helm-$HELM_VERSION
bin=$dir/bin
stamp=$bin/.stamp
# Bump RECIPE when the way of building changes (flags, ldflags), so a cached
# binary built the old way is rebuilt.
RECIPE=1
want_stamp="helm.sh/helm/v4=$HELM_VERSION recipe=$RECIPE"

have() {
        [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] && [ -x "$bin/helm" ]
}

if have; then
        say "reusing $bin/helm ($want_stamp)"
        echo "$bin/helm"
        exit 0
fi

mkdir -p "$dir" "$build"
log=$(cd "$build" && pwd)/helm-build.log
# One build at a time; a second caller waits and then reuses.
exec 9>"$dir/.lock"
if ! flock -n 9; then
        say "another build holds $dir/.lock; waiting"
        flock 9
fi
if have; then
        say "reusing $bin/helm (built by the run we waited for)"
        echo "$bin/helm"
        exit 0
fi

# go install PKG@VERSION builds outside any module: no workspace, no -mod flag.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= GOWORK=off
say "building helm $HELM_VERSION with $(go env GOVERSION) into $bin (log: $log)"
say "the first time takes a few minutes on 2 cores; later runs reuse the binary"
start=$SECONDS

# The version is stamped the way helm's own Makefile does for a tagged build
# (internal/version.version; metadata empty for a release).
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
rm -rf "$bin.new"
mkdir -p "$bin.new"
# go install PKG@VERSION builds the module as released, outside any module
# of ours, with its own go.sum checked.
if ! GOBIN="$bin.new" go install -trimpath -ldflags "$ldflags" \
        "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION failed; see $log"
fi

got=$("$bin.new/helm" version --template '{{.Version}}' 2>&1) || die "helm version failed: $got"
[ "$got" = "$HELM_VERSION" ] || die "helm version says '$got', expected '$HELM_VERSION'"

rm -rf "$bin"
mv "$bin.new" "$bin"
echo "$want_stamp" >"$stamp"
say "built in $((SECONDS - start)) s: $bin/helm ($(du -sh "$bin/helm" | cut -f1))"
echo "$bin/helm"
