#!/bin/bash
# tests/demo.sh: see hato work end to end in a minute.  Installs the
# dependencies, builds hato (mbedTLS 3.6, build/), starts the private test
# Postfix + Dovecot on loopback, relays one message with 'hato -t' through
# the STARTTLS port with AUTH, verified against the test CA, shows what was
# delivered, and stops the servers again.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
mbedtls36=$top/.deps/mbedtls-3.6
build=$top/build
state=$(mktemp -d "${TMPDIR:-/tmp}/hato-demo.XXXXXX")
chmod 755 "$state"
log=$state/demo.log

cleanup() {
    "$top/tests/servers/stop.sh" "$state/servers" >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# step DESCRIPTION COMMAND...: run quietly; on failure show the output.
step() {
    local what=$1
    shift
    echo "== $what"
    if ! "$@" >"$log" 2>&1; then
        echo "demo.sh: failed: $what; output:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}

step "installing dependencies (tests/setup/install-deps.sh)" \
    "$top/tests/setup/install-deps.sh"
export PKG_CONFIG_PATH=$mbedtls36/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
if [ -f "$build/meson-private/coredata.dat" ]; then
    step "configuring build/" meson setup --reconfigure "$build" "$top"
else
    step "configuring build/ with mbedTLS 3.6" meson setup "$build" "$top"
fi
step "building hato" meson compile -C "$build"
hato=$(meson introspect --targets "$build" | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["name"] == "hato" and t["type"] == "executable":
        print(t["filename"][0])
        break
')
if [ -z "$hato" ] || [ ! -x "$hato" ]; then
    echo "demo.sh: no hato program in $build" >&2
    exit 1
fi
if ldd "$hato" | grep -q 'not found'; then
    export LD_LIBRARY_PATH=$mbedtls36/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
step "starting Postfix + Dovecot on loopback (tests/servers/start.sh)" \
    "$top/tests/servers/start.sh" "$state/servers"
# shellcheck disable=SC1091
. "$state/servers/servers.env"

client=$state/client
mkdir -p "$client"
relay="[$HATO_TEST_HOST]:$HATO_TEST_PORT_STARTTLS"
(umask 077 && printf '%s %s:%s\n' "$relay" "$HATO_TEST_USER" "$HATO_TEST_PASSWORD" \
    > "$client/sasl_passwd")
cat > "$client/main.cf" <<CONF
relayhost = $relay
smtp_tls_security_level = verify
smtp_tls_CAfile = $HATO_TEST_CA
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = hash:$client/sasl_passwd
myhostname = client.example.test
maillog_file = $client/maillog
data_directory = $client/state
queue_directory = $client/queue
CONF
msgid="<demo.$$.$(date +%s)@example.test>"
cat > "$client/message" <<MSG
From: Alice <$HATO_TEST_USER>
To: Alice <$HATO_TEST_USER>
Subject: hello from hato
Message-ID: $msgid

This message went through hato, STARTTLS and AUTH to a real Postfix.
MSG

echo
echo "== $client/main.cf"
cat "$client/main.cf"
echo "== $client/sasl_passwd (mode $(stat -c %a "$client/sasl_passwd"))"
echo "$relay $HATO_TEST_USER:********"
echo
echo "== hato -C main.cf -t -v -f $HATO_TEST_USER < message"
rc=0
"$hato" -C "$client/main.cf" -t -v -f "$HATO_TEST_USER" < "$client/message" 2>&1 || rc=$?
echo "== hato exited $rc"
echo
echo "== $client/maillog"
cat "$client/maillog" 2>/dev/null || echo "(no maillog written)"
[ "$rc" -eq 0 ] || exit "$rc"

newdir=$HATO_TEST_MAILDIR_ROOT/alice/new
file=""
for _ in $(seq 100); do
    file=$(grep -lF "Message-ID: $msgid" "$newdir"/* 2>/dev/null | head -n 1) || true
    [ -z "$file" ] || break
    sleep 0.2
done
if [ -z "$file" ]; then
    echo "demo.sh: the message did not arrive in $newdir within 20 s; Postfix log:" >&2
    tail -n 20 "$HATO_TEST_POSTFIX_LOG" >&2
    exit 1
fi
echo
echo "== delivered: $file"
cat "$file"
echo "== done; stopping the servers"
