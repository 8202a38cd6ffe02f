#!/bin/sh
# Counts the instructions (valgrind --tool=callgrind, whole process, total
# Ir) of one one-shot send through the hato program, and of msmtp's for the
# same message and server: STARTTLS, AUTH PLAIN, a 10 KB message, to the
# test Postfix of tests/servers/start.sh.  Not a test: a measurement (issue
# 5), with its numbers in docs/tls.md.  Needs valgrind (and msmtp for the
# comparison): apt-get install valgrind msmtp.
#
#   tests/cost/callgrind.sh SERVERS_ENV HATO_BIN [options]
#     --ca FILE      smtp_tls_CAfile for hato, tls_trust_file for msmtp
#                    (default: the test CA; e.g. the system bundle plus the
#                    test CA, concatenated, to see what parsing it costs)
#     --capath DIR   smtp_tls_CApath for hato instead (msmtp is skipped)
#     --resume       send once first, then measure a send that may resume
#                    the TLS session saved by the first
#     --keep         keep the work directory (callgrind.out.* for
#                    callgrind_annotate --inclusive=yes)
set -eu
[ $# -ge 2 ] || { sed -n '2,19p' "$0"; exit 2; }
env_file=$1 hato=$2
shift 2
ca="" capath="" resume=false keep=false
while [ $# -gt 0 ]; do
    case $1 in
    --ca) ca=$2; shift 2 ;;
    --capath) capath=$2; shift 2 ;;
    --resume) resume=true; shift ;;
    --keep) keep=true; shift ;;
    *) echo "callgrind.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "callgrind.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }

# servers.env is KEY='value' lines (tests/servers/start.sh).
# shellcheck disable=SC1090
. "$env_file"
[ -n "$ca" ] || ca=$HATO_TEST_CA
work=$(mktemp -d /tmp/hato-cost.XXXXXX)
$keep || trap 'rm -rf "$work"' EXIT
umask 077
relay="[$HATO_TEST_HOST]:$HATO_TEST_PORT_STARTTLS"
printf '%s %s:%s\n' "$relay" "$HATO_TEST_USER" "$HATO_TEST_PASSWORD" > "$work/sasl_passwd"
{
    echo "relayhost = $relay"
    echo "smtp_sasl_auth_enable = yes"
    echo "smtp_sasl_password_maps = hash:$work/sasl_passwd"
    echo "smtp_sasl_mechanism_filter = plain"
    echo "smtp_tls_security_level = verify"
    if [ -n "$capath" ]; then echo "smtp_tls_CApath = $capath"; else echo "smtp_tls_CAfile = $ca"; fi
    echo "data_directory = $work/state"
    echo "queue_directory = $work/spool"
} > "$work/hato.cf"
mkdir "$work/state"

# A 10 KB message from alice to bob; $1 makes its Message-ID unique.
message() {
    printf 'From: %s\nTo: %s\nSubject: cost\nMessage-ID: <cost.%s.%s@%s>\n\n' \
        "$HATO_TEST_USER" "$HATO_TEST_USER2" "$1" "$$" "$HATO_TEST_DOMAIN"
    i=0
    while [ $i -lt 140 ]; do
        printf 'line %05d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n' $i
        i=$((i + 1))
    done
}

total() { sed -n 's/^totals: //p' "$1"; }

if $resume; then
    message first | "$hato" -C "$work/hato.cf" -t
fi
message hato > "$work/msg"
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out.hato" \
    "$hato" -C "$work/hato.cf" -t < "$work/msg" > "$work/hato.log" 2>&1 ||
    { echo "hato failed:" >&2; cat "$work/hato.log" >&2; exit 1; }
echo "hato  $(total "$work/callgrind.out.hato")"

if [ -z "$capath" ] && command -v msmtp >/dev/null; then
    cat > "$work/msmtprc" <<MSMTP
account cost
host $HATO_TEST_HOST
port $HATO_TEST_PORT_STARTTLS
from $HATO_TEST_USER
tls on
tls_starttls on
tls_trust_file $ca
auth plain
user $HATO_TEST_USER
password $HATO_TEST_PASSWORD
account default : cost
MSMTP
    message msmtp > "$work/msg"
    valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out.msmtp" \
        msmtp -C "$work/msmtprc" -t < "$work/msg" > "$work/msmtp.log" 2>&1 ||
        { echo "msmtp failed:" >&2; cat "$work/msmtp.log" >&2; exit 1; }
    echo "msmtp $(total "$work/callgrind.out.msmtp")"
fi
$keep && echo "kept $work"
exit 0
