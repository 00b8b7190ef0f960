#!/usr/bin/env bash
# Runs every test suite and writes the total to BUILD/test-summary.txt as
# "N passed, N failed" (also printed last).
# Usage: tests/run.sh BUILD ASAN_BUILD [FUZZ_BUILD [TSAN_BUILD [ANALYZER_BUILD]]]
# The style steps first: the C sources against .clang-format
# (tests/style/check-format.sh), the length of the functions of webhook/
# (tests/style/check-length.sh) and gcc -fanalyzer over webhook/ in its own
# build ANALYZER_BUILD (tests/style/analyze.sh), their results in BUILD.
# The end-to-end suite runs once, against BUILD (tests/e2e/run.sh); the image
# suite once, on the image's own binary, with its results in BUILD
# (tests/image/run.sh); the fuzz targets once, in their own clang build
# FUZZ_BUILD, FUZZ_SECONDS (20) each after their corpora (tests/fuzz/run.sh);
# the soak once, SOAK_SECONDS (30) against BUILD, its results in BUILD
# (tests/soak/run.sh); BUILD's server under valgrind, VALGRIND_SECONDS (15)
# (tests/soak/valgrind.sh); the attack suite, ATTACK_SECONDS (20) against
# BUILD (tests/attack/run.sh); the monitoring suite, deploy/monitoring/'s
# rules and dashboard with promtool and a real Prometheus, against BUILD
# (tests/monitoring/run.sh); the Helm chart with helm v4.3.2 built from its
# Go module, its results in BUILD (tests/helm/run.sh); ThreadSanitizer over
# the unit tests, the integration tests and a TSAN_SOAK_SECONDS (20) soak,
# in its own build
# TSAN_BUILD (tests/tsan.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
asan=${2:-build-asan}
fuzz=${3:-build-fuzz}
tsan=${4:-build-tsan}
analyzer=${5:-build-analyzer}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
py=${PYTHON:-python3}
status=0

echo "== style: the C sources against .clang-format"
rm -f "$build/format.xml" "$build/length.xml" "$build/analyzer.xml"  # a step that dies writes none: a failure
tests/style/check-format.sh --junit "$build/format.xml" || status=1

echo "== style: no function of webhook/ over 80 lines without a \"Long:\" reason"
tests/style/check-length.sh --junit "$build/length.xml" || status=1

echo "== static analysis: gcc -fanalyzer over webhook/ ($analyzer)"
tests/style/analyze.sh "$analyzer" --junit "$build/analyzer.xml" || status=1

for dir in "$build" "$asan"; do
        echo "== unit tests ($dir)"
        meson test -C "$dir" --suite unit --print-errorlogs || status=1
done

for dir in "$build" "$asan"; do
        echo "== integration tests against $dir/spark-identity-webhook"
        WEBHOOK_BIN="$dir/spark-identity-webhook" "$py" -m pytest -q tests/integration \
                --junitxml="$dir/pytest.xml" -p no:cacheprovider
        rc=$?
        # 5 = no tests collected: that is a failure here, not a pass.
        [ "$rc" -eq 0 ] || status=1
done

echo "== soak: ${SOAK_SECONDS:-30} s at half of saturation under policy, certificate and log rotation ($build)"
SOAK_SECONDS=${SOAK_SECONDS:-30} tests/soak/run.sh "$build" || status=1

echo "== valgrind: the server under memcheck, ${VALGRIND_SECONDS:-15} s of load and rotations ($build)"
VALGRIND_SECONDS=${VALGRIND_SECONDS:-15} tests/soak/valgrind.sh "$build" server || status=1

echo "== attack: ${ATTACK_SECONDS:-20} s of memory and slow-client attacks with a probe ($build)"
ATTACK_SECONDS=${ATTACK_SECONDS:-20} tests/attack/run.sh "$build" >/dev/null || status=1

echo "== monitoring: deploy/monitoring/ with promtool and a real Prometheus scraping $build's server"
tests/monitoring/run.sh "$build" || status=1

echo "== the Helm chart: helm lint, helm template against deploy/base, the values and the schema"
tests/helm/run.sh "$build" || status=1

echo "== ThreadSanitizer: the unit and integration tests and a ${TSAN_SOAK_SECONDS:-20} s soak ($tsan)"
TSAN_SOAK_SECONDS=${TSAN_SOAK_SECONDS:-20} tests/tsan.sh "$tsan" || status=1

echo "== end-to-end tests against a real kube-apiserver, with $build/spark-identity-webhook"
tests/e2e/run.sh "$build" || status=1

echo "== the image: built with buildah from the Dockerfile, its binary run in a container"
tests/image/run.sh "$build" || status=1

echo "== fuzzing: the corpora and regressions replayed, then ${FUZZ_SECONDS:-20} s a target ($fuzz)"
tests/fuzz/run.sh "$fuzz" "${FUZZ_SECONDS:-20}" || status=1

"$py" tests/summary.py "$build" "$asan" --fuzz "$fuzz" --tsan "$tsan" | tee "$build/test-summary.txt" | tail -n 1
read -r _ _ failed _ < <(tail -n 1 "$build/test-summary.txt" | tr -d ',')
[ "${failed:-1}" = "0" ] || status=1
exit "$status"
