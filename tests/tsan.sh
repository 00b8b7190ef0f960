#!/usr/bin/env bash
# `make tsan`: ThreadSanitizer over what runs threads. A build of its own,
# gcc with -fsanitize=thread for our code and for libmicrohttpd (the wrap is
# built by its own configure, which gets meson's c_args, so its worker
# threads are instrumented too), then:
#   unit         every unit test (snapshot, arena and conntrack run threads)
#   integration  the integration tests against the TSan server: 400
#                concurrent reviews, pair and policy rotations under load,
#                SIGTERM under load, the fault and mutual TLS tests
#   soak         TSAN_SOAK_SECONDS (20) of keep-alive load at a fixed rate
#                while the policy is rewritten, the pair renewed and the
#                decision log rotated, then SIGTERM (tests/soak/soak.py --tsan)
# Any report fails it. tests/tsan.supp holds the suppressions, each a race
# inside libmicrohttpd, explained there; races in our code get fixed.
#
#   tests/tsan.sh [BUILD]     BUILD defaults to build-tsan (configured here
#                             when missing; not one of the other builds)
#
# Writes, for tests/summary.py (--tsan BUILD): the unit tests in meson's
# testlog, BUILD/pytest.xml, BUILD/soak.xml, and BUILD/tsan.xml (a case per
# phase: no report from any process it ran; the reports are in BUILD/tsan/).
# The soak needs h2load (nghttp2-client), installed with apt when missing.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-build-tsan}
seconds=${TSAN_SOAK_SECONDS:-20}
py=${PYTHON:-python3}
rm -f "$build/pytest.xml" "$build/soak.xml" "$build/tsan.xml"   # no old verdict if this stops early

missing=()
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
. .ci/apt.sh
apt_install tsan "${missing[@]}"

# -O1: ThreadSanitizer's own advice, several times faster than -O0 with the
# same reports. The sanitizers skip _FORTIFY_SOURCE (meson.build).
if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" --buildtype=debug -Doptimization=1 -Db_sanitize=thread -Db_lundef=false \
                "-Dc_args=-fsanitize=thread -g" -Dc_link_args=-fsanitize=thread >/dev/null || exit 1
        touch "$build/.tsan-build"
elif [ ! -f "$build/.tsan-build" ]; then
        echo "tsan: $build is not a ThreadSanitizer build (made by tests/tsan.sh); give another directory" >&2
        exit 1
fi
ninja -C "$build" >/dev/null || exit 1

reports=$(cd "$build" && pwd)/tsan   # absolute: the processes run in other directories
rm -rf "$reports"
mkdir -p "$reports"
# halt_on_error=0: every report of a run, not only the first; a process
# that reported exits 66 all the same.
tsan_options="halt_on_error=0 exitcode=66 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp"
status=0

echo "== unit tests under ThreadSanitizer ($build)"
TSAN_OPTIONS="$tsan_options log_path=$reports/unit" \
        meson test -C "$build" --suite unit --print-errorlogs || status=1

echo "== integration tests against $build/spark-identity-webhook"
# Not the test that moves the server's clock: libfaketime, preloaded before
# TSan's runtime, wraps pthread_cond_timedwait(), so TSan misses the unlock
# inside the connection reaper's wait and then reports a double lock and
# races on every use of that mutex, none of them real. It runs in the other
# builds.
TSAN_OPTIONS="$tsan_options log_path=$reports/integration" WEBHOOK_BIN="$build/spark-identity-webhook" \
        "$py" -m pytest -q tests/integration -p no:cacheprovider --junitxml="$build/pytest.xml" \
        --deselect tests/integration/test_rotation.py::test_readyz_fails_once_the_certificate_has_expired ||
        status=1

echo "== soak: ${seconds} s of load under policy, certificate and log rotation ($build)"
TSAN_OPTIONS="$tsan_options" "$py" tests/soak/soak.py --bin "$build/spark-identity-webhook" --work "$build/soak" \
        --tsan --seconds "$seconds" --rate 100 --connections 4 --slice 10 --probe-every 0.5 \
        --policy-every 2 --cert-every 3 --log-every 5 --junit "$build/soak.xml" || status=1

# One case a phase: no report from any of its processes. The soak checks its
# server itself (its tsan case), and a report from its certs runs fails it
# too (their exit status).
"$py" - "$reports" "$build/tsan.xml" unit integration <<'PY' || status=1
import glob, os, re, sys
import xml.etree.ElementTree as ET
reports, out, phases = sys.argv[1], sys.argv[2], sys.argv[3:]
suite = ET.Element("testsuite", name="tsan", tests=str(len(phases)), errors="0", skipped="0")
bad = 0
for phase in phases:
    files = sorted(glob.glob(os.path.join(reports, phase + ".*")))
    case = ET.SubElement(suite, "testcase", classname="tsan", name=phase + ": no ThreadSanitizer report")
    if files:
        bad += 1
        text = "".join(open(f, errors="replace").read() for f in files)
        kinds = sorted(set(re.findall(r"^SUMMARY: ThreadSanitizer: (.*)$", text, re.M)))
        msg = "%d processes reported: %s" % (len(files), "; ".join(kinds[:5]))
        ET.SubElement(case, "failure", message=msg).text = text[:20000]
        print("tsan: %s: %s (reports: %s)" % (phase, msg, " ".join(files)), file=sys.stderr)
suite.set("failures", str(bad))
root = ET.Element("testsuites")
root.append(suite)
ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
sys.exit(1 if bad else 0)
PY
exit "$status"
