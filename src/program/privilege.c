/*
 * privilege.c - the spool group: dropped at start, raised only around
 * spool operations.  privilege.h says why; docs/security.md has the
 * analysis.
 *
 * Only the effective group moves: setegid() between the real group and the
 * saved set-group-ID is allowed to an unprivileged process, and the kernel
 * checks every open, link and rename against the effective (filesystem)
 * group.  A setgid process is not dumpable, so the invoker cannot ptrace
 * it or read its descriptors through /proc while it holds the group.
 */
#define _GNU_SOURCE /* getresgid, setresgid */
#include "privilege.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

/* complain() of program.h, kept here so that this file stands alone. */
static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
    va_list ap;
    fputs("hato: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static gid_t real_gid;
static gid_t spool_gid;
static bool have_spool_gid;  /* started setgid: spool_gid is the spool's group */
static bool holds;           /* the saved set-group-ID is spool_gid: may raise */
static bool raised;

int privilege_init(void)
{
    gid_t r, e, s;
    if (getresgid(&r, &e, &s) != 0) {
        complain("cannot read the process's group ids: %s", strerror(errno));
        return -1;
    }
    real_gid = r;
    if (e == r)
        return 0; /* not installed setgid: a plain program, nothing to drop */
    spool_gid = e;
    have_spool_gid = true;
    if (getuid() == 0) {
        /* Root reaches the spool anyway; holding a group would only widen
         * what a bug could do. */
        if (setresgid(r, r, r) != 0) {
            complain("cannot drop the group privilege: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    /* Effective back to the invoker's group; saved keeps the spool group
     * for privilege_raise(). */
    if (setresgid((gid_t)-1, r, e) != 0 || getegid() != r) {
        complain("cannot drop the group privilege: %s", strerror(errno));
        return -1;
    }
    holds = true;
    return 0;
}

bool privilege_restricted(void)
{
    return holds;
}

bool privilege_spool_group(gid_t *gid)
{
    if (have_spool_gid)
        *gid = spool_gid;
    return have_spool_gid;
}

int privilege_give_up(void)
{
    if (!holds)
        return 0;
    if (setresgid(real_gid, real_gid, real_gid) != 0)
        return -1;
    holds = false;
    raised = false;
    return 0;
}

int privilege_raise(void)
{
    if (!holds)
        return 0;
    if (setegid(spool_gid) != 0)
        return -1;
    raised = true;
    return 0;
}

void privilege_lower(void)
{
    if (!raised)
        return;
    if (setegid(real_gid) != 0 || getegid() != real_gid) {
        complain("cannot drop the group privilege: %s; stopping", strerror(errno));
        _exit(EX_OSERR);
    }
    raised = false;
}

void privilege_check(const char *what)
{
    if (raised || (holds && getegid() != real_gid)) {
        complain("warning: internal error: the spool group was still raised when opening %s; "
            "dropped first", what);
        raised = true;
        privilege_lower();
    }
}
