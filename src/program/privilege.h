/*
 * privilege.h - the one privilege hato may hold: the group that owns the
 * spool (docs/security.md).
 *
 * hato may be installed setgid to a group (hato) that owns
 * queue_directory, as Postfix's postdrop and dma are, so that ordinary
 * users can queue mail.  That group serves the spool and nothing else:
 * privilege_init(), the first call in main(), sets the effective group
 * back to the invoker's real group and keeps the spool group only as the
 * saved set-group-ID; queue.c raises it around each spool operation
 * (privilege_raise / privilege_lower) and every other file -- the
 * configuration, -C files, password maps, aliases, :include: files, the
 * password command -- is opened with the invoker's own rights.
 *
 * Not thread-safe (process credentials); hato is single-threaded.
 */
#ifndef HATO_PROGRAM_PRIVILEGE_H
#define HATO_PROGRAM_PRIVILEGE_H

#include <stdbool.h>
#include <sys/types.h>

/* Records the ids hato was started with and drops the group: an invoker
 * who is not root keeps the spool group as the saved set-group-ID only;
 * root gives it up for good (root needs no group).  Returns 0, or -1 with
 * a message said when the group could not be dropped (hato must then not
 * run at all). */
int privilege_init(void);

/* True when hato runs setgid for an invoker who is not root: the rules of
 * docs/security.md apply (submissions are only queued, per-user limits,
 * mailq shows the invoker's own messages, -q is refused). */
bool privilege_restricted(void);

/* The group the spool belongs to (the setgid group hato was started with,
 * also for root); false when hato was not installed setgid. */
bool privilege_spool_group(gid_t *gid);

/* Gives the spool group up for good (real, effective and saved group all
 * the invoker's): after it hato is a plain program with the invoker's
 * rights and privilege_restricted() is false.  Used when the invoker names
 * the configuration with -C.  Returns 0, or -1 with errno. */
int privilege_give_up(void);

/* Raises the spool group for one spool operation; a no-op (0) when none
 * is held.  Returns 0, or -1 with errno.  Every raise is paired with a
 * privilege_lower() on every path. */
int privilege_raise(void);

/* Back to the invoker's real group.  A failure here would leave the
 * privilege up while hato goes on to open files of the invoker's choosing,
 * so it ends the program (exit 71) instead of returning. */
void privilege_lower(void);

/* Called where a file that is not in the spool is opened (configuration,
 * maps, credentials): when the group is still raised -- a bug -- it is
 * lowered, with a warning naming what, before the open goes ahead. */
void privilege_check(const char *what);

#endif
