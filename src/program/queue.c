/*
 * queue.c - the spool on disk: writing a message durably, reading it back
 * under a lock, its retry state, and removing or moving it.  Policy (when
 * to retry, when to bounce) lives in send.c; this file only keeps files
 * consistent.  docs/queue.md is the reference for the formats.
 *
 * Crash safety: a message is written in tmp/, fsync'd, and link()ed into
 * queue/ (link, unlike rename, refuses to replace an existing id), then
 * queue/ is fsync'd.  A crash before the link leaves only a tmp/ file,
 * cleaned later; after it the message is complete.  The state file is
 * replaced by rename, so it is always an old or a new whole file.
 */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ENVELOPE_MAGIC "hato-queue 1"
#define STATE_MAGIC "hato-state 1"

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}

/* dir/sub/name (name may be NULL) into out; -1 when it does not fit. */
static int path_of(char *out, size_t size, const char *dir, const char *sub, const char *name,
                   const char *suffix)
{
    int n = snprintf(out, size, "%s/%s%s%s%s", dir, sub, name ? "/" : "", name ? name : "",
                     suffix ? suffix : "");
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n != QUEUE_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

static void make_id(char out[QUEUE_ID_LEN + 1])
{
    struct timespec ts;
    unsigned char rnd = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &rnd, 1) != 1)
        rnd = (unsigned char)(getpid() ^ clock());
    if (fd >= 0)
        close(fd);
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, QUEUE_ID_LEN + 1, "%08llX%05lX%02X",
             (unsigned long long)ts.tv_sec & 0xFFFFFFFFull,
             (unsigned long)(ts.tv_nsec / 1000) & 0xFFFFFul, (unsigned)rnd);
}

int queue_set_text(char **field, const char *text)
{
    char *c = NULL;
    if (text != NULL) {
        c = strdup(text);
        if (c == NULL)
            return -1;
        for (char *p = c; *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = ' ';
    }
    free(*field);
    *field = c;
    return 0;
}

/* An address that could not be written on one envelope line, or that the
 * library would refuse anyway. */
static bool bad_address(const char *a)
{
    return strpbrk(a, "\r\n<>") != NULL;
}

/* ------------------------------------------------------------------ */
/* Spool                                                              */

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

enum queue_status queue_spool_open(struct queue_spool *q, const char *dir, char *err,
                                   size_t errlen)
{
    char p[4096];
    static const char *const subs[] = {"tmp", "queue", "failed"};

    q->dir = NULL;
    q->queue_fd = -1;
    if (make_dir(dir) != 0) {
        snprintf(err, errlen, "cannot create queue_directory %s: %s", dir, strerror(errno));
        return QUEUE_ERR;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (path_of(p, sizeof p, dir, subs[i], NULL, NULL) != 0 || make_dir(p) != 0) {
            snprintf(err, errlen, "cannot create %s/%s: %s", dir, subs[i], strerror(errno));
            return QUEUE_ERR;
        }
    }
    q->dir = strdup(dir);
    if (q->dir == NULL) {
        snprintf(err, errlen, "out of memory");
        return QUEUE_NOMEM;
    }
    path_of(p, sizeof p, dir, "queue", NULL, NULL);
    q->queue_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (q->queue_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", p, strerror(errno));
        free(q->dir);
        q->dir = NULL;
        return QUEUE_ERR;
    }
    return QUEUE_OK;
}

void queue_spool_close(struct queue_spool *q)
{
    if (q->queue_fd >= 0)
        close(q->queue_fd);
    q->queue_fd = -1;
    free(q->dir);
    q->dir = NULL;
}

static int sync_queue_dir(struct queue_spool *q)
{
    return fsync(q->queue_fd);
}

/* ------------------------------------------------------------------ */
/* Reading back                                                       */

void queue_entry_free(struct queue_entry *e)
{
    if (e->fd >= 0)
        close(e->fd);
    for (size_t i = 0; i < e->nrcpts; i++) {
        free(e->rcpts[i].address);
        free(e->rcpts[i].reply);
    }
    free(e->rcpts);
    free(e->sender);
    free(e->error);
    free(e->relay);
    memset(e, 0, sizeof *e);
    e->fd = -1;
}

static int add_entry_rcpt(struct queue_entry *e, const char *address, size_t *cap)
{
    if (e->nrcpts == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct queue_rcpt *v = realloc(e->rcpts, ncap * sizeof *v);
        if (v == NULL)
            return -1;
        e->rcpts = v;
        *cap = ncap;
    }
    struct queue_rcpt *r = &e->rcpts[e->nrcpts];
    memset(r, 0, sizeof *r);
    r->address = strdup(address);
    if (r->address == NULL)
        return -1;
    e->nrcpts++;
    return 0;
}

/* Reads lines from fd's start (through a dup, so e->fd keeps its lock and
 * offset semantics); fills the envelope. */
static enum queue_status read_envelope(struct queue_entry *e, char *err, size_t errlen)
{
    int fd2 = dup(e->fd);
    if (fd2 < 0 || lseek(fd2, 0, SEEK_SET) < 0) {
        snprintf(err, errlen, "cannot read queue file %s: %s", e->id, strerror(errno));
        if (fd2 >= 0)
            close(fd2);
        return QUEUE_ERR;
    }
    FILE *f = fdopen(fd2, "r");
    if (f == NULL) {
        close(fd2);
        snprintf(err, errlen, "out of memory");
        return QUEUE_NOMEM;
    }
    char *line = NULL;
    size_t lcap = 0, rcap = 0;
    ssize_t n;
    enum queue_status st = QUEUE_ERR;
    bool magic = false, ended = false, have_sender = false;
    off_t consumed = 0;
    while (!ended && (n = getline(&line, &lcap, f)) > 0) {
        consumed += n;
        if (n > QUEUE_MAX_LINE || line[n - 1] != '\n')
            break;
        line[n - 1] = '\0';
        if (!magic) {
            if (strcmp(line, ENVELOPE_MAGIC) != 0)
                break;
            magic = true;
        } else if (strncmp(line, "arrival ", 8) == 0) {
            sscanf(line + 8, "%lld.%ld", &e->arrival_sec, &e->arrival_usec);
        } else if (strncmp(line, "uid ", 4) == 0) {
            e->uid = strtol(line + 4, NULL, 10);
        } else if (strncmp(line, "sender ", 7) == 0) {
            free(e->sender);
            e->sender = strdup(line + 7);
            if (e->sender == NULL) {
                st = QUEUE_NOMEM;
                break;
            }
            have_sender = true;
        } else if (strncmp(line, "rcpt ", 5) == 0) {
            if (add_entry_rcpt(e, line + 5, &rcap) != 0) {
                st = QUEUE_NOMEM;
                break;
            }
        } else if (strcmp(line, "end") == 0) {
            ended = true;
        } /* unknown lines: from a newer hato, ignored */
    }
    free(line);
    fclose(f);
    if (ended && have_sender && e->nrcpts > 0) {
        struct stat sb;
        if (fstat(e->fd, &sb) != 0) {
            snprintf(err, errlen, "cannot stat queue file %s: %s", e->id, strerror(errno));
            return QUEUE_ERR;
        }
        e->body_offset = consumed;
        e->size = sb.st_size - consumed;
        return QUEUE_OK;
    }
    if (st == QUEUE_NOMEM)
        snprintf(err, errlen, "out of memory");
    else
        snprintf(err, errlen, "queue file %s is not a hato queue file or is damaged "
                 "(no complete envelope)", e->id);
    return st;
}

/* Reads ID.state when present; a missing file means "never tried". */
static enum queue_status read_state(struct queue_spool *q, struct queue_entry *e, char *err,
                                    size_t errlen)
{
    char p[4096];
    if (path_of(p, sizeof p, q->dir, "queue", e->id, ".state") != 0)
        return QUEUE_ERR;
    FILE *f = fopen(p, "re");
    if (f == NULL) {
        if (errno == ENOENT)
            return QUEUE_OK;
        snprintf(err, errlen, "cannot read %s: %s", p, strerror(errno));
        return QUEUE_ERR;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    enum queue_status st = QUEUE_OK;
    while ((n = getline(&line, &lcap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if (strncmp(line, "attempts ", 9) == 0) {
            e->attempts = (unsigned)strtoul(line + 9, NULL, 10);
        } else if (strncmp(line, "last ", 5) == 0) {
            e->last_attempt = strtoll(line + 5, NULL, 10);
        } else if (strncmp(line, "next ", 5) == 0) {
            e->next_attempt = strtoll(line + 5, NULL, 10);
        } else if (strncmp(line, "error ", 6) == 0) {
            if (queue_set_text(&e->error, line + 6) != 0)
                st = QUEUE_NOMEM;
        } else if (strncmp(line, "relay ", 6) == 0) {
            if (queue_set_text(&e->relay, line + 6) != 0)
                st = QUEUE_NOMEM;
        } else if (strncmp(line, "rcpt ", 5) == 0) {
            /* rcpt INDEX STATUS DSN TEXT */
            char *s = line + 5, *end;
            unsigned long i = strtoul(s, &end, 10);
            if (end == s || *end != ' ' || i >= e->nrcpts)
                continue;
            s = end + 1;
            size_t w = strcspn(s, " ");
            struct queue_rcpt *r = &e->rcpts[i];
            if (w == 4 && strncmp(s, "sent", 4) == 0)
                r->status = QUEUE_RCPT_SENT;
            else if (w == 7 && strncmp(s, "bounced", 7) == 0)
                r->status = QUEUE_RCPT_BOUNCED;
            else
                r->status = QUEUE_RCPT_PENDING;
            s += w;
            if (*s == ' ')
                s++;
            w = strcspn(s, " ");
            snprintf(r->dsn, sizeof r->dsn, "%.*s", (int)(w < sizeof r->dsn ? w : 0), s);
            if (strcmp(r->dsn, "-") == 0)
                r->dsn[0] = '\0';
            s += w;
            if (*s == ' ')
                s++;
            if (*s != '\0' && queue_set_text(&r->reply, s) != 0)
                st = QUEUE_NOMEM;
        }
        if (st != QUEUE_OK)
            break;
    }
    free(line);
    fclose(f);
    if (st == QUEUE_NOMEM)
        snprintf(err, errlen, "out of memory");
    return st;
}

static enum queue_status load_from_fd(struct queue_spool *q, struct queue_entry *e, char *err,
                                      size_t errlen)
{
    enum queue_status st = read_envelope(e, err, errlen);
    if (st == QUEUE_OK)
        st = read_state(q, e, err, errlen);
    return st;
}

enum queue_status queue_load(struct queue_spool *q, const char *id, bool lock,
                             struct queue_entry *e, char *err, size_t errlen)
{
    char p[4096];
    memset(e, 0, sizeof *e);
    e->fd = -1;
    if (!valid_id(id) || path_of(p, sizeof p, q->dir, "queue", id, NULL) != 0) {
        snprintf(err, errlen, "%s is not a queue id", id);
        return QUEUE_ERR;
    }
    snprintf(e->id, sizeof e->id, "%s", id);
    e->fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (e->fd < 0) {
        if (errno == ENOENT)
            return QUEUE_GONE;
        snprintf(err, errlen, "cannot open %s: %s", p, strerror(errno));
        return QUEUE_ERR;
    }
    if (lock) {
        if (flock(e->fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK)
                return QUEUE_BUSY;
            snprintf(err, errlen, "cannot lock %s: %s", p, strerror(errno));
            return QUEUE_ERR;
        }
        /* The holder before us may have removed or moved it. */
        struct stat a, b;
        if (fstat(e->fd, &a) != 0 || stat(p, &b) != 0 || a.st_ino != b.st_ino ||
            a.st_dev != b.st_dev)
            return QUEUE_GONE;
    }
    return load_from_fd(q, e, err, errlen);
}

bool queue_locked_by_other(struct queue_spool *q, const char *id)
{
    char p[4096];
    if (path_of(p, sizeof p, q->dir, "queue", id, NULL) != 0)
        return false;
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    bool busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

/* ------------------------------------------------------------------ */
/* Writing                                                            */

enum queue_status queue_write(struct queue_spool *q, const char *sender,
                              const char *const *rcpts, size_t nrcpts, long uid,
                              ptrdiff_t (*read_fn)(void *user, char *buf, size_t cap),
                              void *user, struct queue_entry *e, bool *read_failed,
                              char *err, size_t errlen)
{
    char tmp[4096], dst[4096], id[QUEUE_ID_LEN + 1];
    int fd = -1;
    enum queue_status st = QUEUE_ERR;
    char *buf = NULL;
    struct timespec now;

    *read_failed = false;
    memset(e, 0, sizeof *e);
    e->fd = -1;
    if (bad_address(sender)) {
        snprintf(err, errlen, "sender <%s> cannot be queued: it holds a line break or <>", sender);
        return QUEUE_ERR;
    }
    for (size_t i = 0; i < nrcpts; i++) {
        if (bad_address(rcpts[i])) {
            snprintf(err, errlen, "recipient <%s> cannot be queued: it holds a line break or <>",
                     rcpts[i]);
            return QUEUE_ERR;
        }
    }
    /* A fresh id until the tmp name is free (two submissions in the same
     * microsecond with the same random byte). */
    for (int tries = 0; fd < 0; tries++) {
        make_id(id);
        if (path_of(tmp, sizeof tmp, q->dir, "tmp", id, NULL) != 0) {
            snprintf(err, errlen, "queue_directory %s: path too long", q->dir);
            return QUEUE_ERR;
        }
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && (errno != EEXIST || tries > 100)) {
            snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
            return QUEUE_ERR;
        }
    }
    /* Locked before it is visible in queue/: no flusher can take it
     * between the commit and this process's own delivery attempt. */
    if (flock(fd, LOCK_EX) != 0) {
        snprintf(err, errlen, "cannot lock %s: %s", tmp, strerror(errno));
        goto fail;
    }

    clock_gettime(CLOCK_REALTIME, &now);
    buf = malloc(QUEUE_MAX_LINE);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        st = QUEUE_NOMEM;
        goto fail;
    }
    int k = snprintf(buf, QUEUE_MAX_LINE, "%s\narrival %lld.%06ld\nuid %ld\nsender %s\n",
                     ENVELOPE_MAGIC, (long long)now.tv_sec, now.tv_nsec / 1000, uid, sender);
    if (k < 0 || k >= QUEUE_MAX_LINE || write_all(fd, buf, (size_t)k) != 0)
        goto write_error;
    for (size_t i = 0; i < nrcpts; i++) {
        k = snprintf(buf, QUEUE_MAX_LINE, "rcpt %s\n", rcpts[i]);
        if (k < 0 || k >= QUEUE_MAX_LINE || write_all(fd, buf, (size_t)k) != 0)
            goto write_error;
    }
    if (write_all(fd, "end\n", 4) != 0)
        goto write_error;
    for (;;) {
        ptrdiff_t r = read_fn(user, buf, QUEUE_MAX_LINE);
        if (r < 0) {
            *read_failed = true;
            snprintf(err, errlen, "reading the message failed");
            goto fail;
        }
        if (r == 0)
            break;
        if (write_all(fd, buf, (size_t)r) != 0)
            goto write_error;
    }
    if (fsync(fd) != 0)
        goto write_error;

    /* The commit.  link() refuses an existing name, which rename() would
     * silently replace. */
    for (int tries = 0;; tries++) {
        if (path_of(dst, sizeof dst, q->dir, "queue", id, NULL) != 0)
            goto write_error;
        if (link(tmp, dst) == 0)
            break;
        if (errno != EEXIST || tries > 100) {
            snprintf(err, errlen, "cannot link %s to %s: %s", tmp, dst, strerror(errno));
            goto fail;
        }
        make_id(id);
    }
    if (sync_queue_dir(q) != 0) {
        /* Linked but perhaps not durable: take it back and fail, so the
         * caller keeps the message. */
        snprintf(err, errlen, "cannot fsync %s/queue: %s", q->dir, strerror(errno));
        unlink(dst);
        goto fail;
    }
    unlink(tmp);
    free(buf);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->fd = fd;
    st = load_from_fd(q, e, err, errlen);
    if (st != QUEUE_OK) /* committed; a flush will deliver it */
        snprintf(err + strlen(err), errlen - strlen(err), " (message queued as %s)", id);
    return st;

write_error:
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return st == QUEUE_NOMEM ? QUEUE_NOMEM : QUEUE_ERR;
}

/* ------------------------------------------------------------------ */
/* State, removal, moves                                              */

static const char *status_word(enum queue_rcpt_status s)
{
    return s == QUEUE_RCPT_SENT ? "sent" : s == QUEUE_RCPT_BOUNCED ? "bounced" : "pending";
}

/* Writes e's state to path (a new file) and fsyncs it. */
static int write_state_file(const char *path, const struct queue_entry *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST) {
        unlink(path); /* left by a crashed writer; we hold the message lock */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(path);
        return -1;
    }
    fprintf(f, "%s\nattempts %u\nlast %lld\nnext %lld\n", STATE_MAGIC, e->attempts,
            e->last_attempt, e->next_attempt);
    if (e->error != NULL)
        fprintf(f, "error %s\n", e->error);
    if (e->relay != NULL)
        fprintf(f, "relay %s\n", e->relay);
    for (size_t i = 0; i < e->nrcpts; i++) {
        const struct queue_rcpt *r = &e->rcpts[i];
        if (r->status == QUEUE_RCPT_PENDING && r->reply == NULL)
            continue;
        fprintf(f, "rcpt %zu %s %s %s\n", i, status_word(r->status), r->dsn[0] ? r->dsn : "-",
                r->reply ? r->reply : "");
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int saved = errno;
        fclose(f);
        unlink(path);
        errno = saved;
        return -1;
    }
    if (fclose(f) != 0) {
        unlink(path);
        return -1;
    }
    return 0;
}

enum queue_status queue_save_state(struct queue_spool *q, const struct queue_entry *e,
                                   char *err, size_t errlen)
{
    char tmp[4096], dst[4096];
    if (path_of(tmp, sizeof tmp, q->dir, "tmp", e->id, ".state") != 0 ||
        path_of(dst, sizeof dst, q->dir, "queue", e->id, ".state") != 0) {
        snprintf(err, errlen, "queue_directory %s: path too long", q->dir);
        return QUEUE_ERR;
    }
    if (write_state_file(tmp, e) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return QUEUE_ERR;
    }
    if (rename(tmp, dst) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
        unlink(tmp);
        return QUEUE_ERR;
    }
    if (sync_queue_dir(q) != 0) {
        snprintf(err, errlen, "cannot fsync %s/queue: %s", q->dir, strerror(errno));
        return QUEUE_ERR;
    }
    return QUEUE_OK;
}

enum queue_status queue_remove(struct queue_spool *q, const struct queue_entry *e, char *err,
                               size_t errlen)
{
    char p[4096];
    path_of(p, sizeof p, q->dir, "queue", e->id, NULL);
    if (unlink(p) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s: %s", p, strerror(errno));
        return QUEUE_ERR;
    }
    path_of(p, sizeof p, q->dir, "queue", e->id, ".state");
    unlink(p);
    if (sync_queue_dir(q) != 0) {
        snprintf(err, errlen, "cannot fsync %s/queue: %s", q->dir, strerror(errno));
        return QUEUE_ERR;
    }
    return QUEUE_OK;
}

enum queue_status queue_move_failed(struct queue_spool *q, const struct queue_entry *e,
                                    char *err, size_t errlen)
{
    char from[4096], to[4096], dir[4096];
    path_of(dir, sizeof dir, q->dir, "failed", NULL, NULL);
    /* The final state beside the failed message, written first: the
     * message's rename below is what takes it out of the queue. */
    if (path_of(to, sizeof to, q->dir, "failed", e->id, ".state") != 0 ||
        write_state_file(to, e) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", to, strerror(errno));
        return QUEUE_ERR;
    }
    path_of(from, sizeof from, q->dir, "queue", e->id, NULL);
    path_of(to, sizeof to, q->dir, "failed", e->id, NULL);
    if (rename(from, to) != 0) {
        snprintf(err, errlen, "cannot move %s to %s: %s", from, to, strerror(errno));
        return QUEUE_ERR;
    }
    if (fsync_dir(dir) != 0 || sync_queue_dir(q) != 0) {
        snprintf(err, errlen, "cannot fsync %s: %s", dir, strerror(errno));
        return QUEUE_ERR;
    }
    path_of(from, sizeof from, q->dir, "queue", e->id, ".state");
    unlink(from);
    return QUEUE_OK;
}

/* ------------------------------------------------------------------ */
/* Listing                                                            */

static int compare_ids(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void queue_list_free(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* Removes leftovers in dir/sub: with orphans_only, state files whose
 * message is gone; else files older than QUEUE_STALE_SECONDS. */
static void clean_stale(struct queue_spool *q, const char *sub, bool orphans_only)
{
    char d[4096], p[4096];
    path_of(d, sizeof d, q->dir, sub, NULL, NULL);
    DIR *dh = opendir(d);
    if (dh == NULL)
        return;
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (path_of(p, sizeof p, q->dir, sub, de->d_name, NULL) != 0)
            continue;
        struct stat sb;
        if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        /* An orphan state file can only be the leftover of a removal cut
         * short (message first, then state), so it goes at once; a tmp/
         * file may be a slow submission still being written. */
        if (!orphans_only && now - sb.st_mtime < QUEUE_STALE_SECONDS)
            continue;
        if (orphans_only) {
            size_t n = strlen(de->d_name);
            if (n != QUEUE_ID_LEN + 6 || strcmp(de->d_name + QUEUE_ID_LEN, ".state") != 0)
                continue;
            char msg[4096];
            snprintf(msg, sizeof msg, "%.*s", (int)(strlen(p) - 6), p);
            if (access(msg, F_OK) == 0 || errno != ENOENT)
                continue;
        }
        unlink(p);
    }
    closedir(dh);
}

enum queue_status queue_list(struct queue_spool *q, char ***ids, size_t *n, char *err,
                             size_t errlen)
{
    char d[4096];
    *ids = NULL;
    *n = 0;
    clean_stale(q, "tmp", false);
    clean_stale(q, "queue", true);
    path_of(d, sizeof d, q->dir, "queue", NULL, NULL);
    DIR *dh = opendir(d);
    if (dh == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", d, strerror(errno));
        return QUEUE_ERR;
    }
    size_t cap = 0;
    struct dirent *de;
    enum queue_status st = QUEUE_OK;
    while ((de = readdir(dh)) != NULL) {
        if (!valid_id(de->d_name))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **v = realloc(*ids, ncap * sizeof *v);
            if (v == NULL) {
                st = QUEUE_NOMEM;
                break;
            }
            *ids = v;
            cap = ncap;
        }
        if (((*ids)[*n] = strdup(de->d_name)) == NULL) {
            st = QUEUE_NOMEM;
            break;
        }
        (*n)++;
    }
    closedir(dh);
    if (st != QUEUE_OK) {
        queue_list_free(*ids, *n);
        *ids = NULL;
        *n = 0;
        snprintf(err, errlen, "out of memory");
        return st;
    }
    if (*n > 1)
        qsort(*ids, *n, sizeof **ids, compare_ids);
    return QUEUE_OK;
}
