#!/usr/bin/env bash
# The image suite: builds the image from the work tree (tests/image/build.sh;
# its cached steps make an unchanged rebuild quick, so the image tested is
# always the current one), then runs tests/image against it and writes
# BUILD/image.xml for tests/summary.py. A build that fails fails every test
# with the reason; nothing is skipped. Needs root.
# Usage: tests/image/run.sh BUILD
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
py=${PYTHON:-python3}
mkdir -p "$build"
rm -f "$build/image.xml"
log="$build/image-build.log"

# The whole build output goes to the log; its own lines (steps, timings,
# size) are shown as they come.
unset IMAGE_BUILD_ERROR
tests/image/build.sh 2>&1 | tee "$log" | grep --line-buffered '^image: ' >&2
if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        tail -n 25 "$log" >&2
        echo "image: the image could not be built (see $log); the suite will fail" >&2
        export IMAGE_BUILD_ERROR="$log"
fi

"$py" -m pytest -q tests/image --junitxml="$build/image.xml" -p no:cacheprovider
