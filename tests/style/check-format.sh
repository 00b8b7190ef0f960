#!/usr/bin/env bash
# The C sources against .clang-format, with clang-format 19 (installed when
# missing): webhook/*/*.[ch], include/*/*.h and the C of tests/unit, tests/fuzz and
# tests/bench, every one of them. One check per file.
#
# Usage: tests/style/check-format.sh [--junit OUT.xml]   check; exit 1 on a difference
#        tests/style/check-format.sh --fix               rewrite the files in place (make format)
set -uo pipefail
cd "$(dirname "$0")/../.."
fix=false junit=""
while [ $# -gt 0 ]; do
        case $1 in
        --fix) fix=true ;;
        --junit) junit=$2; shift ;;
        *) echo "usage: $0 [--fix] [--junit OUT.xml]" >&2; exit 2 ;;
        esac
        shift
done

# One version for everyone: clang-format's output changes between versions,
# and AlignTrailingComments' Kind: Leave needs 16 or newer (Debian 12's
# clang-format is 14).
cf=clang-format-19
if ! command -v "$cf" >/dev/null; then
        . .ci/apt.sh
        apt_install style "$cf" || { echo "style: cannot install $cf" >&2; exit 1; }
fi

files=()
for f in webhook/*/*.[ch] include/*/*.h tests/unit/*.[ch] tests/fuzz/*.[ch] tests/bench/*.[ch]; do
        [ -f "$f" ] && files+=("$f")
done

if $fix; then
        "$cf" -i "${files[@]}"
        exit
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
for f in "${files[@]}"; do
        if out=$("$cf" --dry-run --Werror "$f" 2>&1); then
                printf 'format %s\tok\t\n' "$f" >>"$results"
        else
                status=1
                echo "$out" | head -n 20 >&2
                first=$(echo "$out" | grep -m1 -oE '^[^ :]+:[0-9]+:[0-9]+' || true)
                printf 'format %s\tfail\tdiffers from .clang-format at %s (make format rewrites it)\n' \
                        "$f" "${first:-$f}" >>"$results"
        fi
done
[ -z "$junit" ] || "${PYTHON:-python3}" tests/style/junit.py format "$results" "$junit" || status=1
n=$(wc -l <"$results")
bad=$(grep -c $'\tfail\t' "$results")
echo "format: $((n - bad)) passed, $bad failed"
exit "$status"
