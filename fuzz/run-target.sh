#!/bin/sh
# fuzz/run-target.sh EXE NAME SOURCE_DIR BUILD_DIR SECONDS
#
# The "fuzz" test suite's check of one target (meson runs it): every file
# of fuzz/regressions/NAME/ (inputs that once crashed or hung) is run
# once, then the target starts from a scratch copy of fuzz/corpus/NAME/
# (the committed seeds are never written to) and fuzzes for SECONDS more.
# Any crash, leak, sanitizer report or input slower than 10 s fails the
# test; the input is left in BUILD_DIR/artifacts/ and its path printed.
set -eu
exe=$1 name=$2 src=$3 build=$4 seconds=$5

regressions=$src/regressions/$name
seeds=$src/corpus/$name
work=$build/work/$name
artifacts=$build/artifacts
mkdir -p "$artifacts"
rm -rf "$work"
mkdir -p "$work"

dict=
[ ! -f "$src/dict/$name.dict" ] || dict=-dict=$src/dict/$name.dict

# The sanitizers stop at the first report; leaks count as failures.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# The queue target fsyncs; on tmpfs that costs nothing.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && TMPDIR=/dev/shm || TMPDIR=/tmp; }
export TMPDIR

if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    echo "fuzz-$name: $(ls "$regressions" | wc -l) regression inputs"
    "$exe" -timeout=10 -rss_limit_mb=2048 "$regressions"/*
fi
if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
    echo "fuzz-$name: no seed corpus in $seeds" >&2
    exit 1
fi
echo "fuzz-$name: $(ls "$seeds" | wc -l) seeds, then ${seconds}s of fuzzing"
# shellcheck disable=SC2086 # $dict is one word or empty
"$exe" $dict -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/$name-" \
    "$work" "$seeds"
