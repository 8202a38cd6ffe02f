/*
 * maillog.h - Postfix-style delivery records: to syslog (LOG_MAIL), or
 * appended to the file named by maillog_file.
 */
#ifndef HATO_PROGRAM_MAILLOG_H
#define HATO_PROGRAM_MAILLOG_H

#include <stdbool.h>
#include <stddef.h>

struct maillog {
    int fd;               /* maillog_file, or -1 for syslog */
    char queue_id[16];    /* hex, unique per invocation */
    char hostname[256];   /* for the file's line prefix */
};

/* Opens the log: file (NULL: syslog) with a new queue id.  Returns 0, or -1
 * with err set (the file could not be opened; the log then goes to syslog
 * so nothing is lost). */
int maillog_open(struct maillog *l, const char *file, const char *hostname, char *err,
                 size_t errlen);

/* One record, "QUEUEID: " prepended; printf-style, no newline. */
void maillog_record(struct maillog *l, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A record without the queue id (warnings, TLS summaries). */
void maillog_plain(struct maillog *l, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

void maillog_close(struct maillog *l);

#endif
