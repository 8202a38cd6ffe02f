/*
 * state.c - files of the state directory (see state.h).
 */
#include "tls/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/secret.h"

/* A directory hato may keep secrets in: ours, and nobody else may add or
 * replace files in it (a planted session or TOFU record would be trusted). */
static bool check_dir(const char *dir, bool create, char *err, size_t errlen)
{
    struct stat sb;
    if (lstat(dir, &sb) != 0) {
        if (errno != ENOENT || !create || mkdir(dir, 0700) != 0 || lstat(dir, &sb) != 0) {
            snprintf(err, errlen, "cannot use state directory %s: %s; create it (mode 700) "
                     "or choose another with the state directory setting", dir, strerror(errno));
            return false;
        }
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "state directory %s is not a directory", dir);
        return false;
    }
    if (sb.st_uid != geteuid()) {
        snprintf(err, errlen, "state directory %s belongs to user %lu, not to this user (%lu); "
                 "each user needs a state directory of their own", dir,
                 (unsigned long)sb.st_uid, (unsigned long)geteuid());
        return false;
    }
    if ((sb.st_mode & 022) != 0) {
        snprintf(err, errlen, "state directory %s may be written by other users (mode %03o); "
                 "run: chmod 700 %s", dir, (unsigned)(sb.st_mode & 0777), dir);
        return false;
    }
    return true;
}

bool tls_state_path(const char *dir, const char *sub, const char *host, unsigned port,
                    char *path, size_t cap, char *err, size_t errlen)
{
    if (!check_dir(dir, true, err, errlen))
        return false;
    char subdir[TLS_STATE_PATH_MAX];
    int n = snprintf(subdir, sizeof subdir, "%s/%s", dir, sub);
    if (n < 0 || (size_t)n >= sizeof subdir) {
        snprintf(err, errlen, "state directory path %s is too long", dir);
        return false;
    }
    if (!check_dir(subdir, true, err, errlen))
        return false;
    n = snprintf(path, cap, "%s/", subdir);
    size_t at = n < 0 ? cap : (size_t)n;
    for (size_t i = 0; host[i] != '\0' && at + 1 < cap; i++) {
        char ch = host[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == ':' || ch == '_' || ch == '-' ||
                  (ch == '.' && i > 0);
        path[at++] = ok ? ch : '_';
    }
    if (at >= cap) {
        snprintf(err, errlen, "state directory path %s is too long", dir);
        return false;
    }
    n = snprintf(path + at, cap - at, ":%u", port);
    if (n < 0 || (size_t)n >= cap - at) {
        snprintf(err, errlen, "state directory path %s is too long", dir);
        return false;
    }
    return true;
}

tls_state_read_result tls_state_read(const char *path, size_t max, unsigned char **data,
                                     size_t *len, char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    /* O_NOFOLLOW: the directory is ours, but a link in it is not a record. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return TLS_STATE_MISSING;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return TLS_STATE_ERROR;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > max ||
        sb.st_uid != geteuid()) {
        snprintf(err, errlen, "%s is not a file of this user of at most %zu bytes", path, max);
        close(fd);
        return TLS_STATE_ERROR;
    }
    unsigned char *p = malloc((size_t)sb.st_size + 1);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return TLS_STATE_ERROR;
    }
    size_t have = 0;
    for (;;) {
        ssize_t r = read(fd, p + have, (size_t)sb.st_size + 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            secret_wipe(p, have);
            free(p);
            close(fd);
            return TLS_STATE_ERROR;
        }
        if (r == 0 || (have += (size_t)r) > (size_t)sb.st_size)
            break;
    }
    close(fd);
    if (have > (size_t)sb.st_size) { /* it grew while read: a writer raced */
        snprintf(err, errlen, "%s changed while read", path);
        secret_wipe(p, have);
        free(p);
        return TLS_STATE_ERROR;
    }
    *data = p;
    *len = have;
    return TLS_STATE_FOUND;
}

bool tls_state_write(const char *path, const void *data, size_t len, bool durable, char *err,
                     size_t errlen)
{
    char tmp[TLS_STATE_PATH_MAX + 16];
    int n = snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        snprintf(err, errlen, "path %s is too long", path);
        return false;
    }
    int fd = mkstemp(tmp); /* mode 0600, a name no one else holds */
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a file beside %s: %s", path, strerror(errno));
        return false;
    }
    const unsigned char *p = data;
    size_t done = 0;
    int saved = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            saved = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    /* fsync before rename: after a crash the name holds old or new bytes,
     * never an empty file. */
    if (saved == 0 && durable && fsync(fd) != 0)
        saved = errno;
    if (close(fd) != 0 && saved == 0)
        saved = errno;
    if (saved == 0 && rename(tmp, path) != 0)
        saved = errno;
    if (saved != 0) {
        unlink(tmp);
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
        return false;
    }
    if (!durable)
        return true;
    /* The rename itself reaches the disk with the directory. */
    char dir[TLS_STATE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    return true;
}
