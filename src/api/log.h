/*
 * log.h - the library's side of the log callback.
 *
 * Lines are formatted only when the level is wanted.  Nothing secret is
 * ever passed here: the SMTP core redacts AUTH lines before logging them.
 */
#ifndef HATO_API_LOG_H
#define HATO_API_LOG_H

#include "hato.h"

typedef struct logger {
    hato_log_fn fn;       /* NULL: no logging */
    void *user;
    hato_log_level max;
} logger;

static inline bool log_wants(const logger *l, hato_log_level level)
{
    return l->fn != NULL && level <= l->max;
}

void log_line(const logger *l, hato_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
