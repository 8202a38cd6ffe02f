#!/bin/bash
# bench/run.sh: hato against msmtp, curl and smtp-source, in one run, with a
# table of figures and ratios (docs/performance.md explains them).
#
# On a fresh Debian 12 machine, as root: installs the peers (msmtp, curl,
# valgrind, Postfix for smtp-sink/smtp-source and the test server), builds
# hato in release mode into build-bench/, starts the project's Postfix +
# Dovecot (tests/servers/start.sh) on ports 26xxx, runs bench/bench.py, and
# stops everything on exit.
#
# Environment:
#   BENCH_BUILD    build directory (default: build-bench)
#   BENCH_OUT      where results.json, results.md and logs go (default:
#                  BENCH_BUILD/bench-results)
#   BENCH_QUICK=1  fewer repetitions, smaller messages: checks the script,
#                  not figures to quote
#   BENCH_ONLY     comma list of figures: flights,rate,instructions,rss,body,concurrent
#   BENCH_NO_INSTALL=1  skip apt-get (everything is already there)
#   BENCH_TLS12=0  skip the second build against Debian 12's mbedTLS 2.28
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=${BENCH_BUILD:-build-bench}
out=${BENCH_OUT:-$top/$build/bench-results}

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/run.sh: run as root (apt-get, and Postfix's master and Dovecot need it)" >&2
    exit 1
fi

if [ "${BENCH_NO_INSTALL:-0}" != 1 ]; then
    # The build's own dependencies (mbedTLS 3.6 into .deps/, libgsasl,
    # meson, Postfix, Dovecot) come from the project's setup script.
    if [ ! -d .deps/mbedtls-3.6 ]; then
        tests/setup/install-deps.sh
    fi
    export DEBIAN_FRONTEND=noninteractive
    need=""
    for p in msmtp curl valgrind time python3 postfix libmbedtls-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
    done
    if [ -n "$need" ]; then
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get update -q
        # shellcheck disable=SC2086
        apt-get install -y -q $need
    fi
fi

if [ ! -f "$build/build.ninja" ]; then
    PKG_CONFIG_PATH="$top/.deps/mbedtls-3.6/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
        meson setup "$build" . -Dbuildtype=release
fi
ninja -C "$build" >/dev/null
# Debian 12's own mbedTLS 2.28 (TLS 1.2 only) for the TLS 1.2 flight figures.
if [ "${BENCH_TLS12:-1}" = 1 ]; then
    build12=${build}-tls12
    if [ ! -f "$build12/build.ninja" ]; then
        meson setup "$build12" . -Dbuildtype=release -Dmbedtls=system >/dev/null
    fi
    ninja -C "$build12" >/dev/null
    export BENCH_BUILD_TLS12="$top/$build12"
fi

mkdir -p "$out"
state=$(mktemp -d /tmp/hato-bench.XXXXXX)
chmod 755 "$state"
cleanup() {
    tests/servers/stop.sh "$state/servers" >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HATO_SERVERS_PORT_STARTTLS=26587 HATO_SERVERS_PORT_SMTPS=26465 HATO_SERVERS_PORT_PLAIN=26025 \
    tests/servers/start.sh "$state/servers" >"$out/servers-start.log" 2>&1 ||
    { cat "$out/servers-start.log" >&2; exit 1; }

{
    echo "hato $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "peers: $(msmtp --version | head -1); $(curl --version | head -1 | cut -d' ' -f1-5); Postfix $(postconf -d -h mail_version 2>/dev/null)"
    echo "TLS: $(ldd "$build/src/libhato.so" | grep -o 'libmbedtls[^ ]*' | head -1) ($(basename "$(readlink -f "$(ldd "$build/src/libhato.so" | awk '/libmbedtls\./ {print $3}')")"))"
} | tee "$out/machine.txt"

python3 bench/bench.py "$build" "$state/servers/servers.env" "$out" 2> >(tee "$out/progress.log" >&2) | tee "$out/table.txt" || {
    tail -n 30 "$out/progress.log" >&2
    exit 1
}
echo
echo "bench/run.sh: results in $out (results.md, results.json, progress.log)"
