#!/bin/sh
# Installs what building hato and running its tests needs on Debian 12, and
# fetches Debian 13's mbedTLS 3.6 into a private prefix (.deps/mbedtls-3.6)
# beside the system's 2.28, without changing any other package.
# Idempotent: a second run does nothing but check.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
prefix="$top/.deps/mbedtls-3.6"

packages="build-essential meson ninja-build pkg-config libmbedtls-dev
    libgsasl-dev libidn2-dev libunistring-dev postfix dovecot-core openssl python3
    ca-certificates dnsmasq-base"
# Static checks (issue 6, tests/static/run.sh): clang-tidy and cppcheck.
packages="$packages clang-tidy cppcheck"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    # The package's own Postfix instance must not take port 25 or ours.
    echo "postfix postfix/main_mailer_type select No configuration" |
        debconf-set-selections
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

# ---- more peers (issue 6) ---------------------------------------------------
# Exim, OpenSMTPD (unpacked into .deps/peers: they conflict with postfix) and
# dovecot-submissiond, for tests/servers/start-peers.sh.
"$top/tests/setup/install-peers.sh" "$top/.deps/peers"
# ---- end of more peers ------------------------------------------------------

# Fuzzing (fuzz/, variant d of tests/run.sh): clang, libFuzzer and the
# sanitizer runtimes (libclang-rt-14-dev), llvm-profdata and llvm-cov (llvm).
fuzz_missing=""
for p in clang libclang-rt-14-dev llvm; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        fuzz_missing="$fuzz_missing $p"
done
if [ -n "$fuzz_missing" ]; then
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $fuzz_missing ||
        { apt-get update -q &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $fuzz_missing; }
fi

# The .pc files name the prefix by its absolute path: point them at where
# the tree is now (the checkout may have been moved or copied).
fix_pc_files() {
    for pc in "$prefix"/lib/pkgconfig/*.pc; do
        sed -i "s|^prefix=.*|prefix=$prefix|; s|^libdir=.*|libdir=$prefix/lib|; s|^includedir=.*|includedir=$prefix/include|" "$pc"
    done
}
if [ -f "$prefix/lib/pkgconfig/mbedtls.pc" ]; then
    grep -qx "prefix=$prefix" "$prefix/lib/pkgconfig/mbedtls.pc" || fix_pc_files
    exit 0
fi

# mbedTLS 3.6 LTS from Debian 13, through a private apt state so the system's
# sources and package database stay as they were.  The archive URIs are the
# machine's own Debian entry, so no mirror is named here.
uris=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null |
    grep -v security | head -n 1)
[ -n "$uris" ] || uris=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' \
    /etc/apt/sources.list 2>/dev/null)
[ -n "$uris" ] || { echo "install-deps: no Debian archive URI found in apt sources" >&2; exit 1; }

state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/etc/preferences.d" "$state/etc/sources.list.d"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uris trixie main" > "$state/etc/sources.list"
aptopts="-o Dir::Etc::sourcelist=$state/etc/sources.list -o Dir::Etc::sourceparts=$state/etc/sources.list.d
    -o Dir::Etc::preferencesparts=$state/etc/preferences.d
    -o Dir::State::Lists=$state/lists -o Dir::Cache=$state/cache -o Dir::State::status=/dev/null"
# shellcheck disable=SC2086
apt-get $aptopts update -q
mkdir -p "$prefix"
cd "$state"
# shellcheck disable=SC2086
apt-get $aptopts download libmbedtls-dev libmbedtls21 libmbedx509-7 libmbedcrypto16
for deb in ./*.deb; do dpkg-deb -x "$deb" "$state/root"; done
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp -a "$state/root/usr/include/." "$prefix/include/"
cp -a "$state/root/usr/lib/$arch/." "$prefix/lib/"
# The .pc files name /usr; point them at the private prefix.
fix_pc_files
echo "install-deps: mbedTLS $(sed -n 's/^Version: *//p' "$prefix/lib/pkgconfig/mbedtls.pc") in $prefix"
