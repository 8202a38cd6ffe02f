#!/bin/sh
# fuzz/coverage.sh [TARGET...]
#
# Line and branch coverage of the code each target is meant to reach, by
# its corpus: fuzz/work/TARGET/ (grown by fuzz/run.sh) plus the committed
# seeds and regression inputs.  Builds build-fuzz-cov/ (clang source-based
# coverage on top of the fuzzing build, configured here when missing),
# runs each target once over its corpus (-runs=0), merges the profiles
# and prints llvm-cov's report for the target's own files.  With no
# TARGET, every target.  HTML: llvm-cov show -format=html (see the last
# line printed).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_COV_BUILD:-$top/build-fuzz-cov}
out=$build/coverage
flags='-fprofile-instr-generate -fcoverage-mapping'
if [ ! -d "$build" ]; then
    CC=clang meson setup "$build" "$top" -Dfuzzing=true -Dc_args="$flags" -Dc_link_args="$flags"
fi

# The files each target is for (the report leaves out the rest).
files_of() {
    case $1 in
        reply) echo src/reply/reply.c ;;
        ehlo) echo src/reply/ehlo.c ;;
        mx) echo src/transport/mx.c ;;
        session) echo src/session/smtp.c src/session/auth.c src/session/transaction.c \
                      src/session/session.c src/sasl/select.c src/sasl/sasl_gsasl.c \
                      src/sasl/oauth.c src/message/message.c src/message/params.c \
                      src/message/body.c src/reply/reply.c src/reply/ehlo.c ;;
        session_tls) echo src/session/smtp.c src/session/auth.c src/session/transaction.c \
                      src/session/session.c src/sasl/select.c src/sasl/sasl_gsasl.c \
                      src/sasl/oauth.c src/tls/tls_mbedtls.c src/tls/state.c ;;
        headers) echo src/program/headers.c ;;
        config) echo src/program/config.c ;;
        maps) echo src/program/maps.c ;;
        envelope) echo src/program/aliases.c src/program/rewrite.c ;;
        creds) echo src/program/creds.c ;;
        queue) echo src/program/queue.c src/program/dsn.c ;;
        smtpd) echo src/program/smtpd.c ;;
        input) echo src/program/input.c src/program/content.c ;;
        *) echo "coverage.sh: unknown target $1" >&2; exit 2 ;;
    esac
}

targets=${*:-reply ehlo mx session session_tls headers config maps envelope creds queue smtpd input}
# Only the targets: the rest of the tree is not needed here.
# shellcheck disable=SC2046
ninja -C "$build" $(for t in $targets; do printf 'fuzz/fuzz_%s ' "$t"; done) >/dev/null
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && TMPDIR=/dev/shm || TMPDIR=/tmp; }
export TMPDIR
mkdir -p "$out"
for t in $targets; do
    exe=$build/fuzz/fuzz_$t
    rm -f "$out/$t".*.profraw
    dirs=
    for d in "$top/fuzz/work/$t" "$top/fuzz/corpus/$t" "$top/fuzz/regressions/$t"; do
        [ ! -d "$d" ] || dirs="$dirs $d"
    done
    # shellcheck disable=SC2086 # directory list
    LLVM_PROFILE_FILE="$out/$t.%p.profraw" ASAN_OPTIONS=detect_leaks=0 \
        "$exe" -runs=0 -timeout=10 -rss_limit_mb=4096 $dirs >"$out/$t.run.log" 2>&1 || {
        echo "coverage.sh: $t failed on its corpus; see $out/$t.run.log" >&2
    }
    llvm-profdata merge -sparse "$out/$t".*.profraw -o "$out/$t.profdata"
    rm -f "$out/$t".*.profraw
    echo "== $t ($(find $dirs -type f | wc -l) inputs)"
    # The report names files as the build saw them (../src/...): keep the
    # target's own and total their lines.
    llvm-cov report "$exe" -instr-profile="$out/$t.profdata" 2>/dev/null |
        awk -v files="$(files_of "$t")" '
            BEGIN { n = split(files, f, " "); for (i = 1; i <= n; i++) want[f[i]] = 1 }
            { name = $1; sub(/.*\/src\//, "src/", name) }
            name in want {
                printf "%-32s lines %5d  missed %5d  line coverage %s  branches %s\n",
                       name, $8, $9, $10, $13
                lines += $8; missed += $9
            }
            END { if (lines) printf "%-32s lines %5d  missed %5d  line coverage %.2f%%\n",
                                   "total", lines, missed, 100 * (lines - missed) / lines }'
done
echo "HTML: llvm-cov show -format=html -output-dir=$out/html build-fuzz-cov/fuzz/fuzz_TARGET -instr-profile=$out/TARGET.profdata FILES"
