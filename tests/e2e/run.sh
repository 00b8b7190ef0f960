#!/usr/bin/env bash
# The end-to-end suite: builds (once; then reuses) kube-apiserver, kubectl
# and etcd, then runs tests/e2e against BUILD/spark-identity-webhook and
# writes BUILD/e2e.xml for tests/summary.py. A control plane that cannot be
# built fails every test with the reason; nothing is skipped. helm, for
# test_18_helm.py, is built (once) by tests/helm/build-helm.sh; if it cannot
# be, that test fails with the reason.
# Usage: tests/e2e/run.sh BUILD
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
py=${PYTHON:-python3}
mkdir -p "$build"
rm -f "$build/e2e.xml"
log="$build/control-plane-build.log"

unset E2E_BIN_DIR E2E_BUILD_ERROR
: >"$log"
if out=$(tests/e2e/build-control-plane.sh 2> >(tee -a "$log" >&2)); then
        E2E_BIN_DIR=$(tail -n 1 <<<"$out")
        export E2E_BIN_DIR
else
        echo "e2e: the control plane could not be built (see $log); the suite will fail" >&2
        export E2E_BUILD_ERROR="$log"
fi

unset HELM_BIN
if helm=$(tests/helm/build-helm.sh "$build" | tail -n 1); then
        export HELM_BIN="$helm"
else
        echo "e2e: helm could not be built (see $build/helm-build.log); test_18_helm.py will fail" >&2
fi

WEBHOOK_BIN="$build/spark-identity-webhook" E2E_BUILD_DIR="$build" \
        "$py" -m pytest -q tests/e2e --junitxml="$build/e2e.xml" -p no:cacheprovider
