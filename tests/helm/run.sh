#!/usr/bin/env bash
# The chart's tests: builds (once; then reuses) helm v4.3.2 from its Go
# module (tests/helm/build-helm.sh, its log in BUILD/helm-build.log) and
# kubectl (tests/e2e/build-control-plane.sh, for `kubectl kustomize`), then
# runs tests/helm and writes BUILD/helm.xml for tests/summary.py. A tool that
# cannot be built fails the suite; nothing is skipped. The chart installed on
# a real kube-apiserver is tests/e2e/test_18_helm.py, in the e2e suite.
# Usage: tests/helm/run.sh BUILD
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
py=${PYTHON:-python3}
mkdir -p "$build"
rm -f "$build/helm.xml"

if ! helm=$(tests/helm/build-helm.sh "$build" | tail -n 1); then
        echo "helm: could not be built (see $build/helm-build.log)" >&2
        exit 1
fi
if ! bindir=$(tests/e2e/build-control-plane.sh 2>>"$build/control-plane-build.log" | tail -n 1); then
        echo "helm: kubectl could not be built (see $build/control-plane-build.log)" >&2
        exit 1
fi

HELM_BIN="$helm" E2E_BIN_DIR="$bindir" HELM_BUILD_DIR="$build" \
        "$py" -m pytest -q tests/helm --junitxml="$build/helm.xml" -p no:cacheprovider
