/*
 * maillog.c - the delivery log.
 */
#include "maillog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* A queue id from time, pid and a few random bits: unique enough to find
 * one invocation's lines; hato keeps no queue. */
static void make_queue_id(char *out, size_t n)
{
    struct timespec ts;
    uint32_t rnd = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &rnd, sizeof rnd) != (ssize_t)sizeof rnd)
            rnd = 0;
        close(fd);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long v = ((unsigned long long)ts.tv_sec << 20) ^ (unsigned long long)ts.tv_nsec ^
                           ((unsigned long long)getpid() << 8) ^ ((unsigned long long)rnd << 24);
    snprintf(out, n, "%010llX", v & 0xFFFFFFFFFFull);
}

int maillog_open(struct maillog *l, const char *file, const char *hostname, char *err,
                 size_t errlen)
{
    l->fd = -1;
    err[0] = '\0';
    make_queue_id(l->queue_id, sizeof l->queue_id);
    snprintf(l->hostname, sizeof l->hostname, "%s", hostname ? hostname : "localhost");
    /* Only the first label, as syslog prints it. */
    char *dot = strchr(l->hostname, '.');
    if (dot != NULL)
        *dot = '\0';
    if (file != NULL) {
        l->fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (l->fd >= 0)
            return 0;
        snprintf(err, errlen, "cannot open maillog_file %s: %s; logging to syslog instead", file,
                 strerror(errno));
    }
    openlog("hato", LOG_PID, LOG_MAIL);
    return file != NULL ? -1 : 0;
}

static void emit(struct maillog *l, int priority, const char *text)
{
    if (l->fd < 0) {
        syslog(priority, "%s", text);
        return;
    }
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char line[4096];
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    int n = snprintf(line, sizeof line, "%s %2d %02d:%02d:%02d %s hato[%ld]: %s\n",
                     months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     l->hostname, (long)getpid(), text);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if ((size_t)n >= sizeof line)
        line[len - 1] = '\n';
    /* One write per line, so concurrent writers' lines do not mix. */
    ssize_t w;
    do
        w = write(l->fd, line, len);
    while (w < 0 && errno == EINTR);
}

void maillog_record(struct maillog *l, const char *fmt, ...)
{
    char text[3072];
    int k = snprintf(text, sizeof text, "%s: ", l->queue_id);
    va_list ap;
    va_start(ap, fmt);
    if (k > 0 && (size_t)k < sizeof text)
        vsnprintf(text + k, sizeof text - (size_t)k, fmt, ap);
    va_end(ap);
    emit(l, LOG_INFO, text);
}

void maillog_plain(struct maillog *l, const char *fmt, ...)
{
    char text[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    emit(l, LOG_INFO, text);
}

void maillog_close(struct maillog *l)
{
    if (l->fd >= 0)
        close(l->fd);
    else
        closelog();
    l->fd = -1;
}
