#!/usr/bin/env bash
# gcc's static analyzer (-fanalyzer, gcc 12) over webhook/: the server's
# sources built in their own build directory with -fanalyzer and -Werror, so
# that any finding fails the build. One check per source file of webhook/
# (a file with a finding does not compile), and one for the build as a whole.
# A finding is fixed in the code; a false positive is silenced only where it
# is made, with a comment that says why (see webhook/core/doc.c, webhook/core/findings.c).
#
# Usage: tests/style/analyze.sh [ANALYZER_BUILD] [--junit OUT.xml]   (make analyze)
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=build-analyzer junit=""
while [ $# -gt 0 ]; do
        case $1 in
        --junit) junit=$2; shift ;;
        -*) echo "usage: $0 [ANALYZER_BUILD] [--junit OUT.xml]" >&2; exit 2 ;;
        *) dir=$1 ;;
        esac
        shift
done

if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" --buildtype=debug -Dwerror=true -Dc_args=-fanalyzer >/dev/null || {
                echo "analyze: meson setup $dir failed" >&2
                exit 1
        }
fi
log=$(mktemp)
results=$(mktemp)
trap 'rm -f "$log" "$results"' EXIT
# -k 0: every file with a finding is compiled and reported, not the first only.
nice -n 10 ninja -C "$dir" -k 0 spark-identity-webhook >"$log" 2>&1
rc=$?
# Findings only (not the notes of their paths), without colours.
sed 's/\x1b\[[0-9;]*[mK]//g' "$log" | grep -E '^[^ ]+:[0-9]+:[0-9]+: (error|warning): ' >"$log.findings"
status=0
for f in webhook/*/*.c; do
        n=$(grep -c -- "^\.\./$f:" "$log.findings")
        if [ "$n" -eq 0 ]; then
                printf 'analyzer %s\tok\t\n' "$f" >>"$results"
        else
                status=1
                msg=$(grep -- "^\.\./$f:" "$log.findings" | sed 's/^\.\.\///' | head -n 20 | sed ':a;N;$!ba;s/\n/\\n/g')
                printf 'analyzer %s\tfail\t%s\n' "$f" "$msg" >>"$results"
        fi
done
if [ "$rc" -eq 0 ]; then
        printf 'analyzer build\tok\t\n' >>"$results"
else
        status=1
        printf 'analyzer build\tfail\tninja -C %s spark-identity-webhook failed (exit %s): %s finding(s)\n' \
                "$dir" "$rc" "$(wc -l <"$log.findings")" >>"$results"
        # The whole diagnostics, paths included, for whoever fixes them.
        sed 's/\x1b\[[0-9;]*[mK]//g' "$log" | tail -n 400 >&2
fi
rm -f "$log.findings"
[ -z "$junit" ] || "${PYTHON:-python3}" tests/style/junit.py analyzer "$results" "$junit" || status=1
n=$(wc -l <"$results")
bad=$(grep -c $'\tfail\t' "$results")
echo "analyzer: $((n - bad)) passed, $bad failed"
exit "$status"
