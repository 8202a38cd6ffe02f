#include "api/log.h"

#include <stdarg.h>
#include <stdio.h>

/* Longer lines are cut: a log line is for reading, not for data. */
#define LOG_LINE_MAX 1024

void log_line(const logger *l, hato_log_level level, const char *fmt, ...)
{
    if (!log_wants(l, level))
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    l->fn(l->user, level, line);
}
