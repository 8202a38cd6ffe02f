#!/bin/sh
# fuzz/run.sh TARGET HOURS [JOBS]
#
# A long fuzzing run of one target (fuzz/fuzz_TARGET.c) from a persistent
# corpus, for HOURS (decimals allowed: 0.25 is 15 minutes), on JOBS
# processes (default: every core), in libFuzzer's fork mode: the jobs
# share one corpus, and a finding is saved without stopping the run.
#
#   build     $FUZZ_BUILD, default build-fuzz/ (configured here when
#             missing: CC=clang meson setup build-fuzz -Dfuzzing=true)
#   corpus    $FUZZ_CORPUS/TARGET, default fuzz/work/TARGET/ (not in git;
#             grows across runs), seeded from fuzz/corpus/TARGET/
#   findings  fuzz/work/artifacts/TARGET-crash-*, -leak-*, -timeout-*
#   log       fuzz/work/TARGET.log; its last lines are the final stats
#             (executions, edges "cov:", features "ft:", corpus size)
#
# Afterwards fuzz/coverage.sh TARGET reports line coverage of the corpus,
# "fuzz/run.sh TARGET 0" only prints the corpus' coverage figures, and
# "fuzz/run.sh TARGET merge" adds to the committed seeds (fuzz/corpus/TARGET)
# the fewest inputs of the run's corpus that reach every edge it reached
# (libFuzzer's -merge=1 on edges alone, -use_counters=0: a tenth of the
# files a merge on every feature keeps), so that the next run, on any
# machine, starts where this one stopped: commit the new files.
# A finding is made a regression input by copying it to
# fuzz/regressions/TARGET/ once fixed (docs/testing.md, "Fuzzing").
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,25s/^# \{0,1\}//p' "$0"; exit 2; }
target=$1 hours=$2
jobs=${3:-$(nproc)}
build=${FUZZ_BUILD:-$top/build-fuzz}
corpus=${FUZZ_CORPUS:-$top/fuzz/work}/$target
artifacts=$top/fuzz/work/artifacts
log=$top/fuzz/work/$target.log
exe=$build/fuzz/fuzz_$target

if [ ! -x "$exe" ]; then
    if [ ! -d "$build" ]; then
        CC=clang meson setup "$build" "$top" -Dfuzzing=true
    fi
    meson compile -C "$build"
fi
[ -x "$exe" ] || { echo "run.sh: no target $target (see fuzz/meson.build)" >&2; exit 2; }
mkdir -p "$corpus" "$artifacts"
seconds=$(awk -v h="$hours" 'BEGIN { printf "%d", h * 3600 }')
dict=
[ ! -f "$top/fuzz/dict/$target.dict" ] || dict=-dict=$top/fuzz/dict/$target.dict

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# The queue target fsyncs; on tmpfs that costs nothing.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && TMPDIR=/dev/shm || TMPDIR=/tmp; }
export TMPDIR
common="-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
        -artifact_prefix=$artifacts/$target-"

if [ "$hours" = merge ]; then
    before=$(ls "$top/fuzz/corpus/$target" | wc -l)
    # shellcheck disable=SC2086
    "$exe" $common -merge=1 -use_counters=0 "$top/fuzz/corpus/$target" "$corpus" >"$log.merge" 2>&1 ||
        { tail -5 "$log.merge" >&2; exit 1; }
    echo "run.sh: fuzz/corpus/$target: $before seeds, now $(ls "$top/fuzz/corpus/$target" | wc -l)"
    exit 0
fi
if [ "$seconds" -eq 0 ]; then
    # shellcheck disable=SC2086
    exec "$exe" $common -runs=0 "$corpus" "$top/fuzz/corpus/$target"
fi
echo "run.sh: fuzzing $target for ${seconds}s on $jobs process(es); log in $log"
# Fork mode even for one job: a finding is saved and the run goes on.
# shellcheck disable=SC2086
"$exe" $dict $common -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$seconds" "$corpus" "$top/fuzz/corpus/$target" >"$log" 2>&1 || true
grep -E '^#[0-9]+' "$log" | tail -1
ls "$artifacts" | grep "^$target-" || echo "run.sh: no findings for $target"
