#!/bin/bash
# stop-peers.sh STATE_DIR: stops the Exim, OpenSMTPD and Dovecot submission
# that start-peers.sh started in STATE_DIR (stop.sh calls it), and waits until
# they are gone.  Does nothing when none runs there.
set -eu
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
[ -d "$1" ] || exit 0
state=$(cd "$1" && pwd)

# stop PIDFILE NAME: TERM the process named NAME whose pid PIDFILE holds (a
# stale file must not make us signal another process), wait 15 s, then KILL.
status=0
stop() {
    local pid i=0
    [ -r "$1" ] || return 0
    pid=$(tr -dc 0-9 < "$1")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 0
    [ "$(cat "/proc/$pid/comm")" = "$2" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while [ -d "/proc/$pid" ]; do
        i=$((i + 1))
        if [ $i -gt 150 ]; then
            echo "stop-peers.sh: $2 $pid did not exit; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            status=1
            break
        fi
        sleep 0.1
    done
}
stop "$state/exim/exim.pid" exim4
stop "$state/opensmtpd/smtpd.pid" smtpd
stop "$state/dovecot-submission/run/master.pid" dovecot
exit $status
