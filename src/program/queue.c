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
 *
 * Privilege (docs/security.md): when hato runs setgid for an ordinary
 * user, the spool group is raised only inside the public functions below,
 * around their opens, links, renames and scans, and lowered before they
 * return -- and while queue_write pulls the message from its reader.
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

#include "content.h"
#include "privilege.h"

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

/* Message and state files: the group reads them (mailq of a setgid
 * submission) only in a shared spool; nobody else ever. */
static mode_t file_mode(const struct queue_spool *q)
{
    return q->shared ? 0640 : 0600;
}

/* Creates path with mode when missing.  As root in a shared spool it also
 * sets owner root, group gid and mode on what is there (an older hato made
 * the spool 0700), through a descriptor so a symbolic link is not
 * followed. */
static int make_dir(const char *path, mode_t mode, bool fix, gid_t gid)
{
    if (mkdir(path, mode & 0777) != 0 && errno != EEXIST)
        return -1;
    if (!fix)
        return 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat sb;
    int r = fstat(fd, &sb);
    bool chowned = r == 0 && (sb.st_uid != 0 || sb.st_gid != gid);
    if (chowned)
        r = fchown(fd, 0, gid);
    if (r == 0 && (chowned || (sb.st_mode & 07777) != mode))
        r = fchmod(fd, mode); /* after fchown, which may clear set-id bits */
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}

static enum queue_status spool_open(struct queue_spool *q, const char *dir, char *err,
                                    size_t errlen)
{
    char p[4096];
    /* tmp/ and queue/: group-writable for setgid submissions; set-group-ID
     * so root's files get the group too; sticky so that one user's hato
     * cannot remove another's file. */
    static const struct {
        const char *name;
        mode_t shared_mode;
    } subs[] = {{"tmp", 03770}, {"queue", 03770}, {"failed", 0700}};
    gid_t gid = 0;
    q->shared = privilege_spool_group(&gid);
    /* Only root creates or repairs a shared spool; a setgid submission
     * could not (the top directory is not group-writable) and must not. */
    bool fix = q->shared && geteuid() == 0;
    bool create = !q->shared || fix;

    if (create ? make_dir(dir, q->shared ? 0750 : 0700, fix, gid) != 0
               : faccessat(AT_FDCWD, dir, X_OK, AT_EACCESS) != 0) {
        snprintf(err, errlen, "cannot %s queue_directory %s: %s%s", create ? "create" : "enter",
                 dir, strerror(errno),
                 create ? "" : " (root creates it: run hato -q as root once)");
        return QUEUE_ERR;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (!create)
            break;
        if (path_of(p, sizeof p, dir, subs[i].name, NULL, NULL) != 0 ||
            make_dir(p, q->shared ? subs[i].shared_mode : 0700, fix, gid) != 0) {
            snprintf(err, errlen, "cannot create %s/%s: %s", dir, subs[i].name, strerror(errno));
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

enum queue_status queue_spool_open(struct queue_spool *q, const char *dir, char *err,
                                   size_t errlen)
{
    q->dir = NULL;
    q->queue_fd = -1;
    q->limit_uid = -1;
    q->max_messages = 0;
    q->max_bytes = 0;
    if (privilege_raise() != 0) {
        snprintf(err, errlen, "cannot raise the spool group for %s: %s", dir, strerror(errno));
        return QUEUE_ERR;
    }
    enum queue_status st = spool_open(q, dir, err, errlen);
    privilege_lower();
    return st;
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

/* ------------------------------------------------------------------ */
/* The sender's request and the content line (docs/queue.md)           */

static bool printable_word(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 33 || (unsigned char)*s > 126)
            return false;
    return true;
}

static const struct {
    unsigned bit;
    const char *word;
} notify_words[] = {
    {HATO_DSN_NEVER, "never"},
    {HATO_DSN_SUCCESS, "success"},
    {HATO_DSN_FAILURE, "failure"},
    {HATO_DSN_DELAY, "delay"},
};

/* The request's envelope lines into buf; their length, or -1 when they
 * cannot be written (a bad envid; err says so). */
static int format_request(char *buf, size_t cap, const struct queue_request *req, char *err,
                          size_t errlen)
{
    size_t k = 0;
    buf[0] = '\0';
    if (req == NULL)
        return 0;
    if (req->envid != NULL && (req->envid[0] == '\0' || strlen(req->envid) > QUEUE_MAX_ENVID ||
                               !printable_word(req->envid))) {
        snprintf(err, errlen, "envelope id %.120s cannot be queued: it must be 1 to %d printable "
                 "ASCII characters (RFC 3461)", req->envid, QUEUE_MAX_ENVID);
        return -1;
    }
    if (req->notify != 0) {
        k += (size_t)snprintf(buf + k, cap - k, "notify");
        const char *sep = " ";
        for (size_t i = 0; i < sizeof notify_words / sizeof notify_words[0]; i++) {
            if (req->notify & notify_words[i].bit) {
                k += (size_t)snprintf(buf + k, cap - k, "%s%s", sep, notify_words[i].word);
                sep = ",";
            }
        }
        k += (size_t)snprintf(buf + k, cap - k, "\n");
    }
    if (req->ret != HATO_DSN_RET_DEFAULT)
        k += (size_t)snprintf(buf + k, cap - k, "ret %s\n",
                              req->ret == HATO_DSN_RET_HDRS ? "hdrs" : "full");
    if (req->envid != NULL)
        k += (size_t)snprintf(buf + k, cap - k, "envid %s\n", req->envid);
    if (req->body == HATO_BODY_7BIT || req->body == HATO_BODY_8BITMIME)
        k += (size_t)snprintf(buf + k, cap - k, "bodytype %s\n",
                              req->body == HATO_BODY_7BIT ? "7BIT" : "8BITMIME");
    if (req->requiretls)
        k += (size_t)snprintf(buf + k, cap - k, "requiretls yes\n");
    return (int)k;
}

/* The content line has one length whatever it says: it is written as a
 * placeholder before the message and overwritten in place once the
 * message has streamed through (before the fsync and the commit). */
#define CONTENT_FORMAT "content size=%020llu body=%s headers=%s\n"

static int format_content(char *buf, size_t cap, const struct content_scan *s)
{
    return snprintf(buf, cap, CONTENT_FORMAT, s->wire_size, s->body_8bit ? "8bit" : "7bit",
                    s->header_8bit ? "8bit" : "7bit");
}

static void parse_notify(struct queue_entry *e, const char *v)
{
    while (*v != '\0') {
        size_t n = strcspn(v, ",");
        for (size_t i = 0; i < sizeof notify_words / sizeof notify_words[0]; i++)
            if (strlen(notify_words[i].word) == n && strncmp(v, notify_words[i].word, n) == 0)
                e->dsn_notify |= notify_words[i].bit;
        v += n;
        if (*v == ',')
            v++;
    }
}

static void parse_content(struct queue_entry *e, const char *v)
{
    unsigned long long size;
    char body[8], headers[8];
    /* hato wrote this line; a damaged one is refused as a whole. */
    // NOLINTNEXTLINE(cert-err34-c)
    if (sscanf(v, "size=%llu body=%7s headers=%7s", &size, body, headers) != 3)
        return; /* not measured: delivered as hato 0.3 did */
    e->scanned = true;
    e->wire_size = size;
    e->body_8bit = strcmp(body, "8bit") == 0;
    e->header_8bit = strcmp(headers, "8bit") == 0;
}

/* One envelope line of the request or the content; false when unknown. */
static bool parse_request_line(struct queue_entry *e, const char *line)
{
    if (strncmp(line, "notify ", 7) == 0) {
        parse_notify(e, line + 7);
    } else if (strncmp(line, "ret ", 4) == 0) {
        e->dsn_ret = strcmp(line + 4, "hdrs") == 0   ? HATO_DSN_RET_HDRS
                     : strcmp(line + 4, "full") == 0 ? HATO_DSN_RET_FULL
                                                     : HATO_DSN_RET_DEFAULT;
    } else if (strncmp(line, "envid ", 6) == 0) {
        if (strlen(line + 6) <= QUEUE_MAX_ENVID && printable_word(line + 6))
            snprintf(e->dsn_envid, sizeof e->dsn_envid, "%s", line + 6);
    } else if (strncmp(line, "bodytype ", 9) == 0) {
        e->body_request = strcmp(line + 9, "7BIT") == 0       ? HATO_BODY_7BIT
                          : strcmp(line + 9, "8BITMIME") == 0 ? HATO_BODY_8BITMIME
                                                              : HATO_BODY_AUTO;
    } else if (strcmp(line, "requiretls yes") == 0) {
        e->requiretls = true;
    } else if (strncmp(line, "content ", 8) == 0) {
        parse_content(e, line + 8);
    } else {
        return false;
    }
    return true;
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
            /* hato wrote this line; a damaged one keeps what parsed. */
            // NOLINTNEXTLINE(cert-err34-c)
            (void)sscanf(line + 8, "%lld.%ld", &e->arrival_sec, &e->arrival_usec);
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
        } else {
            parse_request_line(e, line); /* unknown lines: from a newer hato, ignored */
        }
    }
    free(line);
    (void)fclose(f); /* read only */
    if (ended && have_sender && e->nrcpts > 0) {
        struct stat sb;
        if (fstat(e->fd, &sb) != 0) {
            snprintf(err, errlen, "cannot stat queue file %s: %s", e->id, strerror(errno));
            return QUEUE_ERR;
        }
        e->body_offset = consumed;
        e->size = sb.st_size - consumed;
        e->owner = sb.st_uid;
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
    (void)fclose(f); /* read only */
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

static enum queue_status raised_queue_load(struct queue_spool *q, const char *id, bool lock,
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

static bool raised_locked_by_other(struct queue_spool *q, const char *id)
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

/* What uid holds in tmp/ and queue/: message files it owns (the kernel's
 * record, not the envelope's) and their bytes.  A file being committed is
 * in both for an instant: in tmp/ only files with one link count. */
static void user_usage(struct queue_spool *q, uid_t uid, unsigned long *count,
                       unsigned long long *bytes)
{
    static const char *const subs[] = {"tmp", "queue"};
    char d[4096];
    *count = 0;
    *bytes = 0;
    for (size_t i = 0; i < 2; i++) {
        if (path_of(d, sizeof d, q->dir, subs[i], NULL, NULL) != 0)
            continue;
        DIR *dh = opendir(d);
        if (dh == NULL)
            continue;
        struct dirent *de;
        while ((de = readdir(dh)) != NULL) {
            struct stat sb;
            if (!valid_id(de->d_name) ||
                fstatat(dirfd(dh), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
                !S_ISREG(sb.st_mode) || sb.st_uid != uid || (i == 0 && sb.st_nlink > 1))
                continue;
            (*count)++;
            *bytes += (unsigned long long)sb.st_size;
        }
        closedir(dh);
    }
}

/* QUEUE_OK, or QUEUE_LIMIT with err saying which limit, for q->limit_uid;
 * *allow is how many more bytes the new file may hold (0: no limit). */
static enum queue_status check_share(struct queue_spool *q, unsigned long long *allow, char *err,
                                     size_t errlen)
{
    unsigned long count;
    unsigned long long bytes;
    *allow = 0;
    if (q->limit_uid < 0 || (q->max_messages == 0 && q->max_bytes == 0))
        return QUEUE_OK;
    user_usage(q, (uid_t)q->limit_uid, &count, &bytes);
    if (q->max_messages != 0 && count >= q->max_messages) {
        snprintf(err, errlen, "uid %ld already has %lu message%s in the queue, the most "
                 "hato_user_queue_limit = %lu allows", q->limit_uid, count,
                 count == 1 ? "" : "s", q->max_messages);
        return QUEUE_LIMIT;
    }
    if (q->max_bytes != 0) {
        if (bytes >= q->max_bytes) {
            snprintf(err, errlen, "uid %ld already has %llu bytes in the queue, the most "
                     "hato_user_queue_size_limit = %llu allows", q->limit_uid, bytes,
                     q->max_bytes);
            return QUEUE_LIMIT;
        }
        *allow = q->max_bytes - bytes;
    }
    return QUEUE_OK;
}

enum queue_status queue_write(struct queue_spool *q, const char *sender,
                              const char *const *rcpts, size_t nrcpts, long uid,
                              const struct queue_request *req,
                              ptrdiff_t (*read_fn)(void *user, char *buf, size_t cap),
                              void *user, struct queue_entry *e, bool *read_failed,
                              char *err, size_t errlen)
{
    char tmp[4096], dst[4096], id[QUEUE_ID_LEN + 1], request[512], content[128];
    int fd = -1;
    enum queue_status st = QUEUE_ERR;
    char *buf = NULL;
    struct timespec now;
    struct content_scan scan;
    off_t content_at = 0;

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
    int request_len = format_request(request, sizeof request, req, err, errlen);
    if (request_len < 0)
        return QUEUE_ERR;
    if (privilege_raise() != 0) {
        snprintf(err, errlen, "cannot raise the spool group for %s: %s", q->dir, strerror(errno));
        return QUEUE_ERR;
    }
    /* The share is counted before the file exists: two submissions of one
     * user at the same instant may each pass with one slot left (a bound
     * of the user's parallelism, documented in docs/security.md). */
    unsigned long long allow = 0, written = 0;
    if ((st = check_share(q, &allow, err, errlen)) != QUEUE_OK) {
        privilege_lower();
        return st;
    }
    /* A fresh id until the tmp name is free (two submissions in the same
     * microsecond with the same random byte). */
    for (int tries = 0; fd < 0; tries++) {
        make_id(id);
        if (path_of(tmp, sizeof tmp, q->dir, "tmp", id, NULL) != 0) {
            snprintf(err, errlen, "queue_directory %s: path too long", q->dir);
            privilege_lower();
            return QUEUE_ERR;
        }
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && (errno != EEXIST || tries > 100)) {
            snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
            privilege_lower();
            return QUEUE_ERR;
        }
    }
    /* The group reads it in a shared spool, whatever the invoker's umask. */
    if (fchmod(fd, file_mode(q)) != 0) {
        snprintf(err, errlen, "cannot set the mode of %s: %s", tmp, strerror(errno));
        goto fail;
    }
    /* The message streams in through the open descriptor: no privilege
     * while the reader runs. */
    privilege_lower();
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
    if (k < 0 || k >= QUEUE_MAX_LINE || write_all(fd, buf, (size_t)k) != 0 ||
        write_all(fd, request, (size_t)request_len) != 0)
        goto write_error;
    content_at = (off_t)k + request_len;
    for (size_t i = 0; i < nrcpts; i++) {
        k = snprintf(buf, QUEUE_MAX_LINE, "rcpt %s\n", rcpts[i]);
        if (k < 0 || k >= QUEUE_MAX_LINE || write_all(fd, buf, (size_t)k) != 0)
            goto write_error;
        content_at += k;
    }
    content_scan_init(&scan);
    k = format_content(content, sizeof content, &scan);
    if (write_all(fd, content, (size_t)k) != 0 || write_all(fd, "end\n", 4) != 0)
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
        written += (unsigned long long)r;
        if (allow != 0 && written > allow) {
            snprintf(err, errlen, "the message from uid %ld would take its queue past "
                     "hato_user_queue_size_limit = %llu bytes (%llu were left)", q->limit_uid,
                     q->max_bytes, allow);
            st = QUEUE_LIMIT;
            goto fail;
        }
        if (write_all(fd, buf, (size_t)r) != 0)
            goto write_error;
        content_scan_feed(&scan, buf, (size_t)r);
    }
    content_scan_finish(&scan);
    k = format_content(content, sizeof content, &scan);
    if (pwrite(fd, content, (size_t)k, content_at) != k || fsync(fd) != 0)
        goto write_error;

    if (privilege_raise() != 0) {
        snprintf(err, errlen, "cannot raise the spool group for %s: %s", q->dir, strerror(errno));
        goto fail;
    }

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
    privilege_lower();
    if (st != QUEUE_OK) /* committed; a flush will deliver it */
        snprintf(err + strlen(err), errlen - strlen(err), " (message queued as %s)", id);
    return st;

write_error:
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    if (privilege_raise() == 0) /* the tmp/ entry needs the group to go */
        unlink(tmp);
    privilege_lower();
    return st == QUEUE_NOMEM || st == QUEUE_LIMIT ? st : QUEUE_ERR;
}

/* ------------------------------------------------------------------ */
/* State, removal, moves                                              */

static const char *status_word(enum queue_rcpt_status s)
{
    return s == QUEUE_RCPT_SENT ? "sent" : s == QUEUE_RCPT_BOUNCED ? "bounced" : "pending";
}

/* Writes e's state to path (a new file) and fsyncs it. */
static int write_state_file(const char *path, const struct queue_entry *e, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST) {
        unlink(path); /* left by a crashed writer; we hold the message lock */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd < 0)
        return -1;
    if (fchmod(fd, mode) != 0) { /* not left to the umask */
        int saved = errno;
        close(fd);
        unlink(path);
        errno = saved;
        return -1;
    }
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
        (void)fclose(f); /* failed already; saved says why */
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

static enum queue_status raised_queue_save_state(struct queue_spool *q, const struct queue_entry *e,
                                   char *err, size_t errlen)
{
    char tmp[4096], dst[4096];
    if (path_of(tmp, sizeof tmp, q->dir, "tmp", e->id, ".state") != 0 ||
        path_of(dst, sizeof dst, q->dir, "queue", e->id, ".state") != 0) {
        snprintf(err, errlen, "queue_directory %s: path too long", q->dir);
        return QUEUE_ERR;
    }
    if (write_state_file(tmp, e, file_mode(q)) != 0) {
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

static enum queue_status raised_queue_remove(struct queue_spool *q, const struct queue_entry *e, char *err,
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
    /* Not fsync'd: the message is delivered, and a power failure before
     * the directory reaches the disk only brings it back to be sent again
     * (a duplicate, never a loss).  Syncing would cost every send a disk
     * flush before the program can exit. */
    return QUEUE_OK;
}

static enum queue_status raised_queue_move_failed(struct queue_spool *q, const struct queue_entry *e,
                                    char *err, size_t errlen)
{
    char from[4096], to[4096], dir[4096];
    path_of(dir, sizeof dir, q->dir, "failed", NULL, NULL);
    /* The final state beside the failed message, written first: the
     * message's rename below is what takes it out of the queue. */
    if (path_of(to, sizeof to, q->dir, "failed", e->id, ".state") != 0 ||
        write_state_file(to, e, file_mode(q)) != 0) {
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

static enum queue_status raised_queue_list(struct queue_spool *q, char ***ids, size_t *n, char *err,
                             size_t errlen)
{
    char d[4096];
    *ids = NULL;
    *n = 0;
    /* Housekeeping is root's flush's (and a plain program's own spool's):
     * a setgid mailq removes nothing of other users. */
    if (!privilege_restricted()) {
        clean_stale(q, "tmp", false);
        clean_stale(q, "queue", true);
    }
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

/* ------------------------------------------------------------------ */
/* The public functions: each holds the spool group (when there is one,
 * privilege.h) exactly for its own duration.                          */

static int raise_or_say(const struct queue_spool *q, char *err, size_t errlen)
{
    if (privilege_raise() == 0)
        return 0;
    snprintf(err, errlen, "cannot raise the spool group for %s: %s", q->dir, strerror(errno));
    return -1;
}

enum queue_status queue_load(struct queue_spool *q, const char *id, bool lock,
                             struct queue_entry *e, char *err, size_t errlen)
{
    if (raise_or_say(q, err, errlen) != 0) {
        memset(e, 0, sizeof *e);
        e->fd = -1;
        return QUEUE_ERR;
    }
    enum queue_status st = raised_queue_load(q, id, lock, e, err, errlen);
    privilege_lower();
    return st;
}

bool queue_locked_by_other(struct queue_spool *q, const char *id)
{
    if (privilege_raise() != 0)
        return false;
    bool busy = raised_locked_by_other(q, id);
    privilege_lower();
    return busy;
}

enum queue_status queue_save_state(struct queue_spool *q, const struct queue_entry *e,
                                   char *err, size_t errlen)
{
    if (raise_or_say(q, err, errlen) != 0)
        return QUEUE_ERR;
    enum queue_status st = raised_queue_save_state(q, e, err, errlen);
    privilege_lower();
    return st;
}

enum queue_status queue_remove(struct queue_spool *q, const struct queue_entry *e, char *err,
                               size_t errlen)
{
    if (raise_or_say(q, err, errlen) != 0)
        return QUEUE_ERR;
    enum queue_status st = raised_queue_remove(q, e, err, errlen);
    privilege_lower();
    return st;
}

enum queue_status queue_move_failed(struct queue_spool *q, const struct queue_entry *e,
                                    char *err, size_t errlen)
{
    if (raise_or_say(q, err, errlen) != 0)
        return QUEUE_ERR;
    enum queue_status st = raised_queue_move_failed(q, e, err, errlen);
    privilege_lower();
    return st;
}

enum queue_status queue_list(struct queue_spool *q, char ***ids, size_t *n, char *err,
                             size_t errlen)
{
    *ids = NULL;
    *n = 0;
    if (raise_or_say(q, err, errlen) != 0)
        return QUEUE_ERR;
    enum queue_status st = raised_queue_list(q, ids, n, err, errlen);
    privilege_lower();
    return st;
}
