#!/usr/bin/env bash
# The fuzz suite: builds the libFuzzer targets tests/fuzz/fuzz_*.c with
# Debian's clang (installing clang and its runtime when missing), replays
# each target's seed corpus (tests/fuzz/corpus/TARGET) and its regressions
# (tests/fuzz/regressions/TARGET/*), then fuzzes each target for SECONDS.
# Writes BUILD/fuzz.xml (JUnit: per target one testcase for the replay, one
# for the timed run) for tests/summary.py; exits non-zero on any crash,
# broken invariant, leak or hang.
#
# Usage: tests/fuzz/run.sh BUILD [SECONDS]     (default 20 s a target: CI)
#        make fuzz                              (300 s a target)
#
# BUILD is a meson build of the webhook's libraries with clang,
# -Db_sanitize=address,undefined and -fsanitize=fuzzer-no-link; it is made
# here when missing and must not be one of the gcc builds. Inputs that
# libFuzzer finds interesting go to BUILD/fuzz/corpus/TARGET (kept across
# runs, never committed); crashes to BUILD/fuzz/artifacts/TARGET/.
# Reproduce one:  BUILD/fuzz/fuzz_TARGET CRASH_FILE
# Keep it as a regression: copy it to tests/fuzz/regressions/TARGET/NAME.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
build=${1:-build-fuzz}
seconds=${2:-20}
py=${PYTHON:-python3}
out="$build/fuzz"

targets=(review policy jsonpatch http https)
declare -A max_len=([review]=16384 [policy]=8192 [jsonpatch]=4096 [http]=4096 [https]=20000)
declare -A dict=([review]=json [policy]=yaml [jsonpatch]=json [http]=http [https]=http)

mkdir -p "$build"
rm -f "$build/fuzz.xml"
mkdir -p "$out"
results="$out/results.tsv"
: >"$results"

# result TARGET PHASE ok|fail SECONDS MESSAGE LOG
result() {
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5//$'\t'/ }" "$6" >>"$results"
}

# Seconds since T0 (date +%s%N), with milliseconds.
elapsed() {
        local ms=$((($(date +%s%N) - $1) / 1000000))
        printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

junit() {
        "$py" tests/fuzz/junit.py "$results" "$build/fuzz.xml"
}

# Everything fails with the reason when the toolchain or the build does.
fail_all() {
        echo "fuzz: $1" >&2
        for t in "${targets[@]}"; do
                result "$t" replay fail 0 "$1" "$2"
                result "$t" fuzz fail 0 "$1" "$2"
        done
        junit
        exit 1
}

# ---- clang and libFuzzer from Debian ----

can_fuzz() {
        command -v clang >/dev/null 2>&1 || return 1
        local tmp
        tmp=$(mktemp -d)
        printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' >"$tmp/t.c"
        clang -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" >/dev/null 2>&1
        local rc=$?
        rm -rf "$tmp"
        return $rc
}

if ! can_fuzz; then
        . .ci/apt.sh
        apt_install fuzz clang
        v=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
        # bookworm and later ship the sanitizer and fuzzer runtimes on their own
        if [ -n "$v" ] && apt-cache show "libclang-rt-$v-dev" >/dev/null 2>&1; then
                apt_install fuzz "libclang-rt-$v-dev"
        fi
        can_fuzz || fail_all "clang cannot build a libFuzzer target (clang -fsanitize=fuzzer)" ""
fi
v=$(clang -dumpversion | cut -d. -f1)
for s in "llvm-symbolizer-$v" llvm-symbolizer "/usr/lib/llvm-$v/bin/llvm-symbolizer"; do
        if command -v "$s" >/dev/null 2>&1; then
                export ASAN_SYMBOLIZER_PATH
                ASAN_SYMBOLIZER_PATH=$(command -v "$s")
                break
        fi
done

# ---- the libraries, instrumented ----

log="$out/build.log"
: >"$log"
if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" --buildtype=debugoptimized -Db_sanitize=address,undefined \
                -Db_lundef=false -Dwerror=false \
                "-Dc_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
                >>"$log" 2>&1 || fail_all "meson setup failed (see $log)" "$log"
        touch "$build/.fuzz-build"
elif [ ! -f "$build/.fuzz-build" ]; then
        fail_all "$build is not a fuzz build (made by tests/fuzz/run.sh with clang); give another directory" ""
fi
# The binary too: its link line names every library the targets need.
ninja -C "$build" spark-identity-webhook >>"$log" 2>&1 ||
        fail_all "the instrumented libraries do not build (see $log)" "$log"

# ---- the targets ----

# The libraries and their dependencies as meson links the binary, so that a
# library or dependency added to meson.build needs nothing here.
link=$(sed -n '/^build spark-identity-webhook:/,/^$/s/^ LINK_ARGS = //p' "$build/build.ninja")
[ -n "$link" ] || fail_all "no link line for spark-identity-webhook in $build/build.ninja" ""
link_args=()
for a in $link; do
        case $a in
        /* | -*) link_args+=("$a") ;;
        *.a) link_args+=("$build/$a") ;;
        *) link_args+=("$a") ;;
        esac
done
cflags=(-std=c17 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -Wall -Wextra -Wno-unused-parameter -Werror
        -Iinclude/core -Iinclude/io -Itests/fuzz "-DFUZZ_SOURCE_ROOT=\"$root\"")
pids=()
for t in "${targets[@]}"; do
        clang "${cflags[@]}" "tests/fuzz/fuzz_$t.c" "${link_args[@]}" -o "$out/fuzz_$t" \
                >"$out/build-$t.log" 2>&1 &
        pids+=($!)
done
built=()
for i in "${!targets[@]}"; do
        t=${targets[$i]}
        if wait "${pids[$i]}"; then
                built+=("$t")
        else
                cat "$out/build-$t.log" >&2
                result "$t" replay fail 0 "fuzz_$t does not build (see $out/build-$t.log)" "$out/build-$t.log"
                result "$t" fuzz fail 0 "fuzz_$t does not build" "$out/build-$t.log"
        fi
done

# ---- replay, then fuzz ----

export ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1:handle_abort=1}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:symbolize=1
status=0

# The crash file libFuzzer wrote, named in its log.
artifact_of() {
        sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$1" | tail -n 1
}

# What went wrong, for the JUnit message: the sanitizer's or our summary line.
summary_of() {
        grep -m1 -E '^(SUMMARY: |==FUZZ INVARIANT== )|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)' "$1" |
                cut -c1-300
}

for t in "${built[@]}"; do
        bin="$out/fuzz_$t"
        art="$out/artifacts/$t"
        work="$out/corpus/$t"
        seeds="tests/fuzz/corpus/$t"
        mkdir -p "$art" "$work"
        d=()
        [ -n "${dict[$t]}" ] && d=("-dict=tests/fuzz/dict/${dict[$t]}.dict")

        # Replay: every seed, then every regression on its own, once.
        rlog="$out/replay-$t.log"
        : >"$rlog"
        t0=$(date +%s%N)
        failed=()
        if [ -d "$seeds" ] && [ -n "$(ls -A "$seeds")" ]; then
                "$bin" -runs=0 -timeout=25 -rss_limit_mb=2048 -artifact_prefix="$art/" "$seeds" >>"$rlog" 2>&1 ||
                        failed+=("$(artifact_of "$rlog"): $(summary_of "$rlog")")
        fi
        regs=()
        if [ -d "tests/fuzz/regressions/$t" ]; then
                while IFS= read -r -d '' f; do regs+=("$f"); done < <(find "tests/fuzz/regressions/$t" -type f \
                        ! -name '*.md' -print0 | sort -z)
        fi
        for f in "${regs[@]}"; do
                one="$out/replay-$t-$(basename "$f").log"
                if ! "$bin" -timeout=25 -rss_limit_mb=2048 -artifact_prefix="$art/" "$f" >"$one" 2>&1; then
                        failed+=("$f: $(summary_of "$one")")
                        cat "$one" >>"$rlog"
                fi
                rm -f "$one"
        done
        secs=$(elapsed "$t0")
        n_seeds=$(find "$seeds" -type f 2>/dev/null | wc -l)
        if [ ${#failed[@]} -eq 0 ]; then
                echo "fuzz_$t: replayed $n_seeds seeds and ${#regs[@]} regressions"
                result "$t" replay ok "$secs" "$n_seeds seeds, ${#regs[@]} regressions" "$rlog"
        else
                status=1
                msg=$(printf '%s | ' "${failed[@]}")
                msg=${msg% | }
                echo "fuzz_$t: REPLAY FAILED (${#failed[@]}): $msg (log: $rlog)" >&2
                grep -E -A3 '^==FUZZ INVARIANT==|^SUMMARY:|ERROR: AddressSanitizer' "$rlog" | head -n 40 >&2
                result "$t" replay fail "$secs" "$msg" "$rlog"
        fi

        # Fuzz for SECONDS, from the seeds and what earlier runs found.
        flog="$out/fuzz-$t.log"
        t0=$(date +%s%N)
        "$bin" -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=25 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$art/" "${d[@]}" "$work" "$seeds" >"$flog" 2>&1
        rc=$?
        secs=$(elapsed "$t0")
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$flog" | tail -n 1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$flog" | tail -n 1)
        cov=$(grep -E '^#[0-9]+' "$flog" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1, ft \2/p')
        if [ "$rc" -eq 0 ]; then
                echo "fuzz_$t: ${execs:-?} runs in ${seconds}s, ${rate:-?}/s, ${cov:-cov ?}, corpus $(find "$work" -type f | wc -l)"
                result "$t" fuzz ok "$secs" "${execs:-?} runs, ${rate:-?} exec/s, ${cov:-?}" "$flog"
        else
                status=1
                msg="$(artifact_of "$flog"): $(summary_of "$flog")"
                echo "fuzz_$t: CRASH: $msg (log: $flog)" >&2
                tail -n 60 "$flog" >&2
                result "$t" fuzz fail "$secs" "$msg" "$flog"
        fi
done

junit
[ ${#built[@]} -eq ${#targets[@]} ] || status=1
exit "$status"
