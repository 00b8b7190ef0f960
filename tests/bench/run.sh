#!/usr/bin/env bash
# `make bench`: the benchmark of issue 6. Builds the server for release, the
# floor probe and the microbenchmark, makes certificates, then measures the
# server and the floor side by side (tests/bench/bench.py) and writes the
# table to BUILD/bench.md. Not part of `make test`: numbers go into README,
# not into timed tests.
#
#   tests/bench/run.sh [BUILD]        BUILD defaults to build-release
#
# Environment:
#   BENCH_QUIET_BUSY=0.15  wait until the machine uses less than this many cores (5 s sample)
#   BENCH_QUIET_WAIT=600   ... for at most this many seconds, then go on anyway (0: don't wait)
#   BENCH_ARGS="..."       extra arguments for `bench.py run` (--rounds 1 --sat-n 10000 for a quick look)
#
# Installs h2load (nghttp2-client) and valgrind with apt when they are
# missing (root, or sudo). Loads go to 127.0.0.1 only; about 3 to 4 minutes
# on 2 cores.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${1:-build-release}
WORK=$BUILD/bench
BIN=$BUILD/spark-identity-webhook
here=tests/bench

# Tools.
missing=()
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
. .ci/apt.sh
apt_install bench "${missing[@]}"

# The server, for release, in its own directory.
if [ ! -f "$BUILD/build.ninja" ]; then
        meson setup "$BUILD" --buildtype=release -Doptimization=2 >/dev/null
fi
ninja -C "$BUILD" spark-identity-webhook libsiwcore.a >/dev/null

# The floor probe and the microbenchmark: small programs, built as the
# project builds (C17, warnings as errors), the microbenchmark against the
# release build's core library.
mkdir -p "$WORK"
cflags=(-std=c17 -O2 -g -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
        -Wmissing-prototypes -Wformat=2 -Wvla -Wno-unused-parameter -Werror)
# The floor links the same libmicrohttpd as the server: the release build's
# own static one (subprojects/libmicrohttpd.wrap) when meson fell back to it.
mhd_dist=$(find "$BUILD/subprojects" -path '*/dist/*' -name libmicrohttpd.a 2>/dev/null | head -n 1)
if [ -n "$mhd_dist" ]; then
        mhd_flags=(-I"${mhd_dist%/lib/*}/include" "$mhd_dist" $(pkg-config --libs gnutls))
else
        read -ra mhd_flags < <(pkg-config --cflags --libs 'libmicrohttpd >= 1.0.1')
fi
# shellcheck disable=SC2046
cc "${cflags[@]}" -o "$WORK/floor" "$here/floor.c" "${mhd_flags[@]}" \
        $(pkg-config --cflags --libs libcjson) -pthread
# shellcheck disable=SC2046
cc "${cflags[@]}" -Iinclude/core -Iinclude/io -o "$WORK/micro" "$here/micro.c" "$BUILD/libsiwio.a" "$BUILD/libsiwcore.a" \
        $(pkg-config --cflags --libs libcjson yaml-0.1 gnutls) -pthread

# The floor must speak TLS exactly as the server does.
versions=$(grep -o 'tls_priorities_12\[\] = TLS_PRIORITIES("[^"]*")' webhook/io/server.c | grep -o '"[^"]*"')
server_prio=$(sed -n '/^#define TLS_PRIORITIES/,/SERVER_PRECEDENCE/p' webhook/io/server.c | sed 1d |
        sed "s/ versions / $versions /" | grep -o '"[^"]*"' | tr -d '"\n')
floor_prio=$("$WORK/floor" --print-priorities)
if [ "$server_prio" != "$floor_prio" ]; then
        echo "bench: the floor's TLS priorities differ from webhook/io/server.c's:" >&2
        echo "  server: $server_prio" >&2
        echo "  floor:  $floor_prio" >&2
        exit 1
fi

# Certificates from the binary's own `certs` command.
"$BIN" certs --service spark-identity-webhook --namespace bench --ip 127.0.0.1 --dns localhost \
        --out "$WORK/certs" --force >/dev/null

# A quiet moment: other builds on the machine skew everything. Quiet means
# the whole machine busy less than BENCH_QUIET_BUSY of one core over 5 s.
busy_cores() {
        local a b
        read -r _ a1 a2 a3 _ _ a6 a7 a8 _ < /proc/stat
        sleep 5
        read -r _ b1 b2 b3 _ _ b6 b7 b8 _ < /proc/stat
        a=$((a1 + a2 + a3 + a6 + a7 + a8)); b=$((b1 + b2 + b3 + b6 + b7 + b8))
        awk -v d=$((b - a)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / hz / 5 }'
}
quiet=${BENCH_QUIET_BUSY:-0.15}
wait_s=${BENCH_QUIET_WAIT:-600}
start=$SECONDS
while :; do
        busy=$(busy_cores)
        awk -v b="$busy" -v q="$quiet" 'BEGIN { exit !(b < q) }' && break
        if [ $((SECONDS - start)) -ge "$wait_s" ]; then
                echo "bench: still busy ($busy cores) after ${wait_s}s; measuring anyway" >&2
                break
        fi
        echo "bench: the machine is busy ($busy cores); waiting for a quiet moment (at most ${wait_s}s)" >&2
done
echo "bench: load average $(cut -d' ' -f1-3 /proc/loadavg), $busy cores busy; measuring (about 4 minutes)" >&2

# shellcheck disable=SC2086
exec python3 "$here/bench.py" run --server "$BIN" --floor "$WORK/floor" --micro "$WORK/micro" \
        --cert "$WORK/certs/tls.crt" --key "$WORK/certs/tls.key" --ca "$WORK/certs/ca.crt" \
        --policy tests/fixtures/policy.yaml --work "$WORK" --out "$BUILD/bench.md" ${BENCH_ARGS:-}
