#!/usr/bin/env bash
# The monitoring suite (tests/monitoring) against BUILD's server, with
# Debian's prometheus package (promtool and prometheus) installed when
# missing: the alert rules (test_monitoring.py) and the Grafana dashboard
# (test_dashboard.py; its ConfigMap rendered by the kubectl that
# tests/e2e/build-control-plane.sh builds once, or E2E_BIN_DIR's). Its
# results go to BUILD/monitoring.xml (for tests/summary.py).
# Usage: tests/monitoring/run.sh BUILD
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
rm -f "$build/monitoring.xml"
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
        . .ci/apt.sh
        apt_install monitoring prometheus || { echo "monitoring: cannot install prometheus" >&2; exit 1; }
fi
WEBHOOK_BIN="$build/spark-identity-webhook" exec "${PYTHON:-python3}" -m pytest -q tests/monitoring \
        --junitxml="$build/monitoring.xml" -p no:cacheprovider
