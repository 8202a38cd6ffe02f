#!/bin/bash
# tests/run.sh [--quick] [-- MESON_TEST_ARGS...]
#
# The whole test run: installs the dependencies, starts the private Postfix +
# Dovecot servers once, then for each build variant configures, builds and
# runs every meson test suite (unit, scripted, interop, then secrets, which
# greps every test's output for the test passwords and tokens; its check runs
# once more on meson's finished testlog), and stops the servers on exit,
# failure included.
#
#   a  mbedTLS 3.6 (Debian 13's, in .deps/mbedtls-3.6)        build/
#   b  mbedTLS 2.28 (Debian 12's own, -Dmbedtls=system)         build-228/
#   c  mbedTLS 3.6 with AddressSanitizer + UBSan                build-asan/
#   d  clang, -Dfuzzing=true: only the fuzz suite (fuzz/)      build-fuzz-ci/
#
# --quick runs variant a only.  Arguments after -- go to 'meson test' (for
# example: tests/run.sh --quick -- --suite interop).
# Prints one summary line per variant and a last line "N passed, N failed";
# exits non-zero if any test, build or setup failed.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
quick=no
meson_test_args=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=yes ;;
        --) shift; meson_test_args=("$@"); break ;;
        -h|--help) sed -n '2,18s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

mbedtls36=$top/.deps/mbedtls-3.6
"$top/tests/setup/install-deps.sh"

state=$(mktemp -d "${TMPDIR:-/tmp}/hato-servers.XXXXXX")
cleanup() {
    "$top/tests/servers/stop.sh" "$state" || true
    if [ -z "${HATO_TEST_KEEP:-}" ]; then
        rm -rf "$state"
    else
        echo "run.sh: kept server state in $state (HATO_TEST_KEEP is set)"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$top/tests/servers/start.sh" "$state"
export HATO_TEST_SERVERS=$state/servers.env

# PKG_CONFIG_PATH without the private 3.6 prefix, for the 2.28 build.
pkg_path_without_36() {
    local out="" p
    local IFS=:
    for p in ${PKG_CONFIG_PATH:-}; do
        case $p in "$mbedtls36"*|"") continue ;; esac
        out=${out:+$out:}$p
    done
    printf '%s' "$out"
}

# counts BUILD_DIR: "PASSED FAILED SKIPPED" from meson's testlog.json.
counts() {
    python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
try:
    with open(sys.argv[1]) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
except FileNotFoundError:
    pass
print(passed, failed, skipped)
PY
}

total_passed=0
total_failed=0
summary=()

# variant NAME BUILD_DIR DESCRIPTION -- ENV... -- MESON_SETUP_OPTIONS...
variant() {
    local name=$1 dir=$top/$2 desc=$3
    shift 4
    local envs=() opts=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    opts=("$@")
    local extra_test_args=()
    echo
    echo "=== variant $name: $desc ($dir)"
    local setup=(setup)
    [ ! -f "$dir/meson-private/coredata.dat" ] || setup+=(--reconfigure)
    if ! env "${envs[@]}" meson "${setup[@]}" "$dir" "$top" "${opts[@]}"; then
        summary+=("variant $name ($desc): meson setup FAILED")
        total_failed=$((total_failed + 1))
        return
    fi
    if ! env "${envs[@]}" meson compile -C "$dir"; then
        summary+=("variant $name ($desc): build FAILED")
        total_failed=$((total_failed + 1))
        return
    fi
    case $name in
        # The sanitizers cannot run inside a set-group-ID process (it is
        # not dumpable, so LeakSanitizer aborts it): the privilege suite,
        # which tests exactly such a process, runs in variants a and b.
        c) extra_test_args=(--timeout-multiplier 3 --no-suite privilege) ;;
        # The fuzz targets' regression inputs and short runs (docs/testing.md).
        d) extra_test_args=(--suite fuzz) ;;
    esac
    # Static checks (issue 6): the sources are the same in every variant,
    # so clang-tidy, cppcheck and gcc -fanalyzer run once, in variant a.
    [ "$name" = a ] || extra_test_args+=(--no-suite static)
    # The 3.6 libraries are not in the loader's path; the build is meant to
    # carry an rpath to them.  Fall back to LD_LIBRARY_PATH if it does not.
    if [ "$name" != b ]; then
        local exe missing=no
        while IFS= read -r exe; do
            if ldd "$exe" 2>/dev/null | grep -q 'not found'; then
                missing=yes
            fi
        done < <(find "$dir" -name hato -type f -perm -u+x 2>/dev/null)
        if [ "$missing" = yes ]; then
            echo "run.sh: the hato program does not find all its libraries; setting LD_LIBRARY_PATH=$mbedtls36/lib"
            envs+=("LD_LIBRARY_PATH=$mbedtls36/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
        fi
    fi
    local rc=0
    env "${envs[@]}" meson test -C "$dir" --print-errorlogs \
        "${extra_test_args[@]}" "${meson_test_args[@]}" || rc=$?
    local p f s
    read -r p f s < <(counts "$dir")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1  # meson failed without a failing test (for example a bad argument)
    fi
    # The secrets suite ran last inside meson test, while meson was still
    # writing its testlog; grep the finished testlog once more.
    if ! python3 "$top/tests/secrets/check_secrets.py" --build "$dir" --testlog-only; then
        echo "run.sh: a test password or token is in $dir/meson-logs (see above)"
        f=$((f + 1))
    fi
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    summary+=("variant $name ($desc): $p passed, $f failed, $s skipped")
}

variant a build "mbedTLS 3.6" \
    -- "PKG_CONFIG_PATH=$mbedtls36/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
    --
if [ "$quick" = no ]; then
    variant b build-228 "mbedTLS 2.28" \
        -- "PKG_CONFIG_PATH=$(pkg_path_without_36)" \
        -- -Dmbedtls=system
    variant c build-asan "mbedTLS 3.6, ASan+UBSan" \
        -- "PKG_CONFIG_PATH=$mbedtls36/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
        ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        -- -Db_sanitize=address,undefined -Db_lundef=false
    variant d build-fuzz-ci "clang, libFuzzer targets" \
        -- "PKG_CONFIG_PATH=$mbedtls36/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" CC=clang \
        -- -Dfuzzing=true
fi

echo
echo "=== summary"
for line in "${summary[@]}"; do echo "$line"; done
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
