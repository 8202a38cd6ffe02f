/*
 * dsn.h - the non-delivery report (RFC 3464 delivery status notification
 * in an RFC 6522 multipart/report) for the recipients of a queued message
 * that bounced: refused for good (5xx) or expired in the queue.
 */
#ifndef HATO_PROGRAM_DSN_H
#define HATO_PROGRAM_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue.h"

/* The original header section copied into the report is cut here
 * (text/rfc822-headers may be truncated; RFC 6522 section 4 only asks for
 * the headers, and a report must stay small). */
#define DSN_MAX_HEADERS (64u * 1024)

struct dsn_input {
    const struct queue_entry *e; /* the failed message; its fresh_bounce
                                    recipients are reported */
    const char *myhostname;      /* Reporting-MTA */
    const char *relay;           /* Remote-MTA, or NULL when none answered */
    bool expired;                /* maximal_queue_lifetime passed */
    time_t now;
};

/* A returned message (RET=FULL) is whole up to this size, as Postfix's
 * bounce_size_limit default; a larger one returns its headers only. */
#define DSN_MAX_FULL 50000u

/* Whether e's sender wants a report on failure: yes unless -N was given
 * without "failure" (NOTIFY=NEVER included), RFC 3461 section 4.1. */
bool dsn_failure_wanted(const struct queue_entry *e);

/* Builds the report as a complete message (LF line ends) in *out (malloc'd,
 * owned by the caller), its length in *len.  Reads the original header
 * section (or with RET=FULL the whole message) from e->fd.  Honours the
 * sender's DSN request (RFC 3461 section 6.3): Original-Envelope-Id for
 * an ENVID, and Original-Recipient for each recipient when hato gave the
 * relay an ORCPT (it does whenever the sender asked for a DSN).  Returns 0, or -1 when out of memory or the file
 * cannot be read. */
int dsn_build(const struct dsn_input *in, char **out, size_t *len);

#endif
