#!/usr/bin/env bash
# `make soak`: the soak of issue 6. The server at half of its saturated rate
# for SOAK_SECONDS while the policy is rewritten (now and then invalidly),
# the serving pair renewed and the decision log rotated; no request may fail
# and resident memory must stay flat (tests/soak/soak.py says exactly what
# is checked). Writes BUILD/soak.xml (JUnit) for tests/summary.py and the
# lines of the checks on stdout.
#
#   tests/soak/run.sh [BUILD]    BUILD defaults to build-release (configured
#                                for release when it does not exist yet)
#
# Environment:
#   SOAK_SECONDS=600      how long the load runs (tests/run.sh: 30)
#   SOAK_ARGS="..."       more arguments for soak.py (--rate 2000, --cert-every 2, ...)
#
# Installs h2load (nghttp2-client) with apt when it is missing (root, or
# sudo). Loads go to 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${1:-build-release}
BIN=$BUILD/spark-identity-webhook
seconds=${SOAK_SECONDS:-600}
rm -f "$BUILD/soak.xml"   # a run that stops early must not leave an old verdict

missing=()
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
. .ci/apt.sh
apt_install soak "${missing[@]}"

if [ ! -f "$BUILD/build.ninja" ]; then
        meson setup "$BUILD" --buildtype=release -Doptimization=2 >/dev/null
fi
ninja -C "$BUILD" spark-identity-webhook >/dev/null

# Short runs sample more often and rotate faster, so that each check still
# sees enough of what it checks.
short=()
if awk -v s="$seconds" 'BEGIN { exit !(s < 120) }'; then
        short=(--sample-every 1 --slice 10 --cert-every 3 --log-every 5)
fi

# shellcheck disable=SC2086
exec python3 tests/soak/soak.py --bin "$BIN" --work "$BUILD/soak" --seconds "$seconds" \
        --junit "$BUILD/soak.xml" "${short[@]}" ${SOAK_ARGS:-}
