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

/* Builds the report as a complete message (LF line ends) in *out (malloc'd,
 * owned by the caller), its length in *len.  Reads the original header
 * section from e->fd.  Returns 0, or -1 when out of memory or the file
 * cannot be read. */
int dsn_build(const struct dsn_input *in, char **out, size_t *len);

#endif
