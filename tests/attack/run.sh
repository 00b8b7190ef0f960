#!/usr/bin/env bash
# The attack suite (tests/attack/attack.py) against BUILD's server:
# ATTACK_SECONDS (60) of the memory and slow-client attacks at once, a
# legitimate probe measured throughout, then 30 s to settle. Its checks go
# to BUILD/attack.xml (for tests/summary.py), its report to
# BUILD/attack/attack.json. Traffic goes to 127.0.0.1-3 only.
# Usage: tests/attack/run.sh BUILD
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
seconds=${ATTACK_SECONDS:-60}
rm -f "$build/attack.xml"
if [ ! -x "$build/spark-identity-webhook" ]; then
        echo "attack: $build/spark-identity-webhook is not built" >&2
        exit 1
fi
exec python3 tests/attack/attack.py "$build/spark-identity-webhook" --seconds "$seconds" \
        --out "$build/attack" --junit "$build/attack.xml"
