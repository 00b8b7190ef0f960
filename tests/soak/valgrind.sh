#!/usr/bin/env bash
# `make valgrind`: memcheck over the unit tests, then over the server itself
# for a short soak (tests/soak/soak.py --valgrind): new TLS connections and
# keep-alive load at a low fixed rate while the policy is rewritten (once
# invalidly), the serving pair renewed and the decision log rotated, then
# SIGTERM. Any memcheck error, and any block definitely, indirectly or
# possibly lost, fails it. `make test` runs the server part, 15 s (the unit
# tests already run there under ASan, UBSan and LeakSanitizer).
#
#   tests/soak/valgrind.sh [BUILD [all|unit|server]]
#                          BUILD defaults to build (the debug build)
#
# Environment:
#   VALGRIND_SECONDS=20   how long the server is under load
#
# Writes BUILD/meson-logs/valgrind-valgrind.txt (the unit tests), and for the
# server BUILD/valgrind.xml (JUnit, for tests/summary.py) and BUILD/valgrind/
# (its memcheck report is BUILD/valgrind/valgrind.log).
# Installs valgrind and h2load (nghttp2-client) with apt when missing.
set -uo pipefail

cd "$(dirname "$0")/../.."
BUILD=${1:-build}
what=${2:-all}
seconds=${VALGRIND_SECONDS:-20}
case "$what" in
all | unit | server) ;;
*) echo "usage: tests/soak/valgrind.sh [BUILD [all|unit|server]]" >&2; exit 2 ;;
esac
[ "$what" = unit ] || rm -f "$BUILD/valgrind.xml"   # no old verdict if this stops early

missing=()
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
. .ci/apt.sh
apt_install valgrind "${missing[@]}"
if [ ! -f "$BUILD/build.ninja" ]; then
        meson setup "$BUILD" --buildtype=debug >/dev/null || exit 1
fi
ninja -C "$BUILD" >/dev/null || exit 1

status=0
memcheck="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --num-callers=30"
if [ "$what" != server ]; then
        echo "== unit tests under valgrind ($BUILD)"
        # Its own log name, so that the plain run's testlog (tests/summary.py) stays.
        meson test -C "$BUILD" --suite unit --logbase valgrind --timeout-multiplier 20 --print-errorlogs \
                --wrapper "$memcheck" || status=1
fi
if [ "$what" != unit ]; then
        echo "== the server under valgrind: ${seconds} s of load while the policy, the pair and the log rotate, then SIGTERM"
        python3 tests/soak/soak.py --bin "$BUILD/spark-identity-webhook" --work "$BUILD/valgrind" \
                --seconds "$seconds" --valgrind --rate 50 --connections 2 --slice 10 --probe-every 0.5 \
                --policy-every 2 --cert-every 3 --log-every 5 --junit "$BUILD/valgrind.xml" || status=1
fi
exit "$status"
