#!/bin/bash
# stop.sh STATE_DIR: stops the Postfix and Dovecot (and, through
# stop-peers.sh, Exim, OpenSMTPD and Dovecot submission) that start.sh started in
# STATE_DIR, and waits until their processes are gone.  Does nothing (and
# succeeds) when nothing runs there.  Leaves the files for inspection.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
[ -d "$1" ] || exit 0
state=$(cd "$1" && pwd)
pfconf=$state/postfix
queue=$state/postfix-queue
dcdir=$state/dovecot

# pid_of FILE NAME: the pid in FILE if that process is alive and is NAME
# (a stale pid file must not make us signal an unrelated process).
pid_of() {
    [ -r "$1" ] || return 1
    pid=$(tr -dc 0-9 < "$1")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm")" = "$2" ] || return 1
    echo "$pid"
}

# wait_gone PID SECONDS
wait_gone() {
    i=0
    while [ -d "/proc/$1" ]; do
        i=$((i + 1))
        [ $i -le $(($2 * 10)) ] || return 1
        sleep 0.1
    done
}

# Processes started from this instance: Postfix daemons carry MAIL_CONFIG,
# Dovecot's children are found by their parent.
instance_pids() {
    for e in /proc/[0-9]*/environ; do
        p=${e#/proc/}
        p=${p%/environ}
        if tr '\0' '\n' 2>/dev/null < "$e" | grep -qx "MAIL_CONFIG=$pfconf"; then
            echo "$p"
        fi
    done
}

status=0
# ---- more peers (issue 6): first, as Dovecot submission relays to Postfix --
"$(dirname "$0")/stop-peers.sh" "$state" || status=1
# ---- end of more peers ------------------------------------------------------
if pid=$(pid_of "$queue/pid/master.pid" master); then
    postfix -c "$pfconf" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 15; then
        echo "stop.sh: postfix master $pid did not exit; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        status=1
    fi
fi
# Children normally leave with the master; give stragglers a moment.
i=0
while left=$(instance_pids) && [ -n "$left" ]; do
    i=$((i + 1))
    if [ $i -gt 50 ]; then
        echo "stop.sh: killing leftover postfix processes: $(echo "$left" | tr "\n" " ")" >&2
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
        break
    fi
    sleep 0.1
done

if pid=$(pid_of "$dcdir/run/master.pid" dovecot); then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 15; then
        echo "stop.sh: dovecot $pid did not exit; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        status=1
    fi
fi
exit $status
