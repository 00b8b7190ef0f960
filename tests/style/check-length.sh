#!/usr/bin/env bash
# The length of every C function in webhook/*/*.c: one longer than 80 lines,
# from the line of its opening brace at column 0 to that of its closing brace
# at column 0, needs a line starting with "Long:" in the comment right above
# it saying why (e.g. /* Long: the help text, one printf. */); else split it
# into named steps. One check per file (tests/style/check_length.py).
#
# Usage: tests/style/check-length.sh [--junit OUT.xml]   exit 1 on an offender
set -uo pipefail
cd "$(dirname "$0")/../.."
junit=""
while [ $# -gt 0 ]; do
        case $1 in
        --junit) junit=$2; shift ;;
        *) echo "usage: $0 [--junit OUT.xml]" >&2; exit 2 ;;
        esac
        shift
done

files=()
for f in webhook/*/*.c; do
        [ -f "$f" ] && files+=("$f")
done

results=$(mktemp)
trap 'rm -f "$results"' EXIT
py=${PYTHON:-python3}
status=0
"$py" tests/style/check_length.py 80 "$results" "${files[@]}" || status=1
[ -z "$junit" ] || "$py" tests/style/junit.py length "$results" "$junit" || status=1
n=$(wc -l <"$results")
bad=$(grep -c $'\tfail\t' "$results")
[ "$n" -gt 0 ] || status=1
echo "length: $((n - bad)) passed, $bad failed"
exit "$status"
