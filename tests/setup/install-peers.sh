#!/bin/sh
# install-peers.sh [PREFIX]: what the extra interop peers need on Debian 12,
# beside the test Postfix (tests/servers/start-peers.sh runs them):
#
#   - Dovecot's submission service (dovecot-submissiond): installed normally.
#   - Exim 4.96 (exim4-daemon-heavy: AUTH and TLS) and OpenSMTPD 6.8: both
#     conflict with postfix (one mail-transport-agent per system), so they are
#     fetched with 'apt-get download' from the machine's own apt sources and
#     unpacked with dpkg-deb -x into PREFIX (default .deps/peers); only their
#     shared libraries are installed as packages.  The system users their
#     binaries have compiled in are created, and the empty directories that
#     OpenSMTPD's private mount namespace binds over.
# Idempotent: a second run only checks.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
prefix=${1:-${HATO_PEERS_PREFIX:-$top/.deps/peers}}

# Shared libraries of exim4-daemon-heavy and opensmtpd (their Depends lines,
# less what the base system has).
packages="dovecot-submissiond adduser libdb5.3 libgnutls30 libgnutls-dane0 libidn12
    libidn2-0 libldap-2.5-0 libmariadb3 libnsl2 libpam0g libpcre2-8-0 libperl5.36
    libpq5 libsasl2-2 libspf2-2 libsqlite3-0 libcrypt1 libevent-2.1-7 libssl3 zlib1g"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

# The users the binaries name (Exim's exim_user; OpenSMTPD's privsep users),
# as the packages' postinst scripts create them.
getent passwd Debian-exim >/dev/null ||
    adduser --system --group --quiet --home /var/spool/exim4 --no-create-home \
        --disabled-login --force-badname Debian-exim
for u in opensmtpd opensmtpq; do
    getent group $u >/dev/null || addgroup --system --quiet $u
    getent passwd $u >/dev/null ||
        adduser --system --quiet --home /var/lib/opensmtpd/empty --no-create-home \
            --disabled-password --ingroup $u $u
done
# Mount points for OpenSMTPD's compiled-in paths (start-peers.sh binds the
# instance's own directories over them inside a private mount namespace).
mkdir -p /var/lib/opensmtpd/empty /var/spool/smtpd /usr/libexec/opensmtpd

if [ -x "$prefix/usr/sbin/exim4" ] && [ -x "$prefix/usr/sbin/smtpd" ] &&
    [ -s "$prefix/versions" ]; then
    exit 0
fi
dl=$(mktemp -d)
trap 'rm -rf "$dl"' EXIT
chmod 755 "$dl"   # apt's _apt user downloads into it
# Exim's configuration package is not needed: start-peers.sh writes its own.
(cd "$dl" && apt-get download -q exim4-base exim4-daemon-heavy opensmtpd) || {
    apt-get update -q
    (cd "$dl" && apt-get download -q exim4-base exim4-daemon-heavy opensmtpd)
}
mkdir -p "$prefix"
: > "$prefix/versions.new"
for deb in "$dl"/*.deb; do
    dpkg-deb -x "$deb" "$prefix"
    # "PACKAGE VERSION" lines: start-peers.sh puts them into servers.env.
    # shellcheck disable=SC2016  # dpkg's own ${Field} syntax
    dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >> "$prefix/versions.new"
done
mv "$prefix/versions.new" "$prefix/versions"
echo "install-peers: $(cut -d' ' -f1 "$prefix/versions" | tr '\n' ' ')unpacked into $prefix"
