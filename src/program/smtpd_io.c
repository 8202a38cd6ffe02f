/*
 * smtpd_io.c - hato -bs: the loop on standard input and output around
 * smtpd.c's state machine, the access check, and each message into the
 * spool exactly as a command-line submission goes (input.c's header
 * section, envelope.c's sender rewriting and aliases, send.c's spool).
 *
 * Who may submit: standard input is the connection (inetd, or systemd's
 * Accept=yes with StandardInput=socket); getpeername() on it names the
 * client, which must lie in mynetworks.  When standard input is not a
 * network socket (a pipe from Symfony Mailer's "sendmail -bs", a Unix
 * socket) the invoker is a local user, trusted as for any submission.
 *
 * AUTH (smtpd_sasl_auth_enable) is offered to network clients that
 * passed mynetworks, never to a local pipe (trusted already).  Each
 * attempt reads smtpd_sasl_password_file afresh with the invoker's own
 * rights (the spool group's privilege is not raised for it), refuses a
 * file others may read, and wipes the bytes after the check.
 *
 * Queued messages keep their lock until the session ends; their first
 * delivery attempt then runs (unless -odq), so a slow or unreachable relay
 * never holds up the client's replies.  Until then no flush can take them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "maillog.h"
#include "privilege.h"
#include "program.h"
#include "queue.h"
#include "smtpd.h"
#include "wipe.h"

/* Input is read in pieces of this size; a command line is at most
 * SMTPD_MAX_LINE, so one piece always holds a whole one. */
#define SMTPD_IN 16384
/* Queued messages held (locked, one descriptor each) before their
 * attempts run in the middle of a session. */
#define SMTPD_MAX_HELD 32

struct conn {
    struct program *pg;
    struct smtpd s;
    char in[SMTPD_IN];
    size_t in_len, in_off;
    bool eof, lost, timed_out;

    /* The message being received. */
    struct smtpd_data dec;
    unsigned long long data_bytes;
    bool too_big;

    struct delivery *d;
    struct queue_entry held[SMTPD_MAX_HELD];
    size_t nheld;
    char reply[600];
};

/* ------------------------------------------------------------------ */
/* Bytes in and out                                                   */

static void flush_out(struct conn *c)
{
    size_t off = 0;
    while (off < c->s.out_len && !c->lost) {
        ssize_t w = write(STDOUT_FILENO, c->s.out + off, c->s.out_len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            c->lost = true;
        else
            off += (size_t)w;
    }
    c->s.out_len = 0;
}

/* More input: 0, or -1 at the end, a read error or the idle timeout.
 * Replies go out first: the client may be waiting for them. */
static int fill(struct conn *c)
{
    if (c->eof || c->lost || c->timed_out)
        return -1;
    flush_out(c);
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_len == sizeof c->in)
        return 0;
    unsigned timeout = c->pg->cfg.smtpd_timeout;
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    int r;
    do
        r = poll(&p, 1, timeout > 0 ? (int)(timeout > 2000000 ? 2000000000 : timeout * 1000) : -1);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        c->timed_out = true;
        return -1;
    }
    ssize_t n;
    do
        n = read(STDIN_FILENO, c->in + c->in_len, sizeof c->in - c->in_len);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        c->eof = true;
        return -1;
    }
    c->in_len += (size_t)n;
    return 0;
}

/* The next command line (without CR LF) into *line: 1, 0 at the end of
 * the connection; *too_long for a line past SMTPD_MAX_LINE (skipped). */
static int next_line(struct conn *c, const char **line, size_t *len, bool *too_long)
{
    bool skipping = false;
    *too_long = false;
    for (;;) {
        char *start = c->in + c->in_off;
        size_t avail = c->in_len - c->in_off;
        char *lf = memchr(start, '\n', avail);
        if (lf != NULL) {
            size_t n = (size_t)(lf - start);
            c->in_off += n + 1;
            if (skipping) {
                *too_long = true;
                *line = "";
                *len = 0;
                return 1;
            }
            if (n > 0 && start[n - 1] == '\r')
                n--;
            if (n + 2 > SMTPD_MAX_LINE) {
                *too_long = true;
                n = 0;
            }
            *line = start;
            *len = n;
            return 1;
        }
        if (avail > SMTPD_MAX_LINE) { /* drop what we have, keep looking for the end */
            skipping = true;
            c->in_off = c->in_len;
        }
        if (fill(c) != 0)
            return 0;
    }
}

/* The library-style reader input.c pulls DATA through. */
static ptrdiff_t data_read(void *user, char *buf, size_t cap)
{
    struct conn *c = user;
    for (;;) {
        if (c->dec.ended)
            return 0;
        if (c->too_big) {
            errno = EFBIG; /* for input.c's message on stderr */
            return -1;
        }
        if (c->in_off == c->in_len && fill(c) != 0) {
            errno = c->timed_out ? ETIMEDOUT : ECONNRESET;
            return -1;
        }
        size_t used;
        size_t n = smtpd_data_decode(&c->dec, c->in + c->in_off, c->in_len - c->in_off, &used,
                                     buf, cap);
        c->in_off += used;
        c->data_bytes += used;
        if (c->s.size_limit > 0 && c->data_bytes > c->s.size_limit + 5) { /* + ".CRLF" */
            c->too_big = true;
            errno = EFBIG;
            return -1;
        }
        if (n > 0)
            return (ptrdiff_t)n;
    }
}

/* The rest of a refused message, read and dropped. */
static void drain(struct conn *c)
{
    char scratch[4096];
    while (!c->dec.ended) {
        if (c->in_off == c->in_len && fill(c) != 0)
            return;
        size_t used;
        smtpd_data_decode(&c->dec, c->in + c->in_off, c->in_len - c->in_off, &used, scratch,
                          sizeof scratch);
        c->in_off += used;
    }
}

/* ------------------------------------------------------------------ */
/* Hooks                                                              */

static const char *hook_mail(void *user, const char *sender)
{
    struct conn *c = user;
    if (envelope_set_sender(c->pg, sender) != 0)
        return "451 4.3.0 Error: out of memory; try again later";
    return NULL;
}

static void clear_rcpts(struct program *pg)
{
    for (size_t i = 0; i < pg->nrcpts; i++)
        free(pg->rcpts[i]);
    pg->nrcpts = 0;
    pg->nparsed = 0;
}

static const char *hook_rcpt(void *user, const char *rcpt)
{
    struct conn *c = user;
    if (add_rcpt(c->pg, rcpt) != 0)
        return "451 4.3.0 Error: out of memory; try again later";
    return NULL;
}

static void hook_reset(void *user)
{
    struct conn *c = user;
    clear_rcpts(c->pg);
}

static void hook_refused(void *user, const char *command, const char *reply)
{
    struct conn *c = user;
    maillog_plain(&c->pg->log, "reject: %s from %s: %s", command, c->s.client, reply);
}

/* The password file's bytes into *text (malloc'd, the caller wipes and
 * frees): 0, or -1 with err naming the file and the fix. */
static int read_password_file(const char *path, char **text, size_t *len, char *err,
                              size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat sb;
    if (fd < 0) {
        snprintf(err, errlen, "smtpd_sasl_password_file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "smtpd_sasl_password_file %s: not a regular file", path);
        close(fd);
        return -1;
    }
    /* The hashes are for this service alone: a file others could read
     * invites offline guessing, one its group could write lets anyone in
     * the group add a user. */
    if ((sb.st_mode & (S_IWGRP | S_IRWXO)) != 0) {
        snprintf(err, errlen, "smtpd_sasl_password_file %s is open to others (mode %04o); "
                 "AUTH is refused until you run: chmod 0640 %s", path,
                 (unsigned)(sb.st_mode & 07777), path);
        close(fd);
        return -1;
    }
    if (sb.st_size > SMTPD_MAX_PASSWORD_FILE) {
        snprintf(err, errlen, "smtpd_sasl_password_file %s is larger than %d bytes", path,
                 SMTPD_MAX_PASSWORD_FILE);
        close(fd);
        return -1;
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        snprintf(err, errlen, "smtpd_sasl_password_file %s: out of memory", path);
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "smtpd_sasl_password_file %s: %s", path, strerror(errno));
            wipe(buf, n);
            free(buf);
            close(fd);
            return -1;
        }
        if (r == 0 || (n += (size_t)r) == cap)
            break; /* a file that grew since fstat() is read up to its old size */
    }
    close(fd);
    *text = buf;
    *len = n;
    return 0;
}

static enum smtpd_auth_result hook_auth(void *user, const char *username, const char *password)
{
    struct conn *c = user;
    const char *path = c->pg->cfg.smtpd_sasl_password_file;
    char err[1024], *text;
    size_t len;
    if (path == NULL || read_password_file(path, &text, &len, err, sizeof err) != 0) {
        if (path == NULL)
            snprintf(err, sizeof err, "smtpd_sasl_auth_enable = yes without "
                     "smtpd_sasl_password_file");
        maillog_plain(&c->pg->log, "warning: AUTH from %s: %s", c->s.client, err);
        say("warning: %s", err); /* the journal, with systemd's StandardError */
        return SMTPD_AUTH_TEMPFAIL;
    }
    enum smtpd_auth_result r = smtpd_password_check(text, len, username, password);
    wipe(text, len);
    free(text);
    if (r == SMTPD_AUTH_OK)
        maillog_plain(&c->pg->log, "%s: sasl_method=%s, sasl_username=%s", c->s.client,
                      c->s.mech == SMTPD_MECH_PLAIN ? "PLAIN" : "LOGIN", username);
    return r;
}

static void hook_trace(void *user, enum smtpd_state from, enum smtpd_state to)
{
    struct conn *c = user;
    if (c->pg->args.verbose > 1)
        maillog_plain(&c->pg->log, "smtpd %s: %s -> %s", c->s.client, smtpd_state_name(from),
                      smtpd_state_name(to));
}

/* ------------------------------------------------------------------ */
/* One message                                                        */

static void attempt_held(struct conn *c)
{
    for (size_t i = 0; i < c->nheld; i++) {
        if (!c->pg->args.queue_only)
            submit_attempt(c->d, &c->held[i]);
        queue_entry_free(&c->held[i]);
    }
    c->nheld = 0;
}

static void receive(struct conn *c)
{
    struct program *pg = c->pg;
    int ex;

    /* input.c's state, fresh for this message. */
    pg->raw_len = pg->raw_off = 0;
    pg->in_eof = false;
    pg->in_errno = 0;
    memset(&pg->dot, 0, sizeof pg->dot);
    free(pg->head);
    free(pg->hbuf);
    pg->head = pg->hbuf = NULL;
    pg->head_len = pg->head_off = pg->hbuf_len = pg->rest_off = 0;
    pg->size = 0;
    memset(&c->dec, 0, sizeof c->dec);
    c->data_bytes = 0;
    c->too_big = false;
    pg->in_read = data_read;
    pg->in_user = c;

    enum queue_status st = QUEUE_ERR;
    char err[1024] = "";
    struct queue_entry e;
    memset(&e, 0, sizeof e);
    e.fd = -1;
    ex = read_header_section(pg);
    if (ex == EX_OK) {
        if (c->d == NULL)
            c->d = delivery_start(pg, &ex);
        if (c->d != NULL) {
            if (c->nheld == SMTPD_MAX_HELD)
                attempt_held(c);
            bool read_failed;
            st = submit_spool(c->d, &e, &read_failed, err, sizeof err);
        }
    }
    pg->in_read = NULL;
    if (c->eof || c->lost || c->timed_out) { /* the connection ended in the middle */
        queue_entry_free(&e);
        if (c->timed_out)
            smtpd_timed_out(&c->s);
        else
            maillog_plain(&pg->log, "lost connection after DATA from %s", c->s.client);
        return;
    }
    if (st == QUEUE_OK) {
        snprintf(c->reply, sizeof c->reply, "250 2.0.0 Ok: queued as %s", e.id);
        if (c->s.authenticated)
            maillog_record(&pg->log, "client=%s, sasl_method=%s, sasl_username=%s", c->s.client,
                           c->s.mech == SMTPD_MECH_PLAIN ? "PLAIN" : "LOGIN", c->s.auth_user);
        c->held[c->nheld++] = e;
        smtpd_data_done(&c->s, c->reply);
        return;
    }
    queue_entry_free(&e);
    drain(c);
    if (c->too_big)
        snprintf(c->reply, sizeof c->reply, "552 5.3.4 Error: message too big: more than %llu "
                 "bytes (message_size_limit)", c->s.size_limit);
    else if (ex == EX_DATAERR)
        snprintf(c->reply, sizeof c->reply, "552 5.3.4 Error: the header section is too large");
    else if (st == QUEUE_LIMIT)
        snprintf(c->reply, sizeof c->reply, "452 4.3.1 Error: the spool is full for this user; "
                 "try again later");
    else
        snprintf(c->reply, sizeof c->reply, "451 4.3.0 Error: queue file write error; the "
                 "message was NOT accepted, try again later");
    if (err[0] != '\0')
        maillog_plain(&pg->log, "warning: message from %s not queued: %s", c->s.client, err);
    smtpd_data_done(&c->s, c->reply);
}

/* ------------------------------------------------------------------ */
/* The session                                                        */

/* The client from standard input: *trusted when local or in mynetworks. */
static void identify(struct conn *c, bool *trusted)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char a[INET6_ADDRSTRLEN];
    *trusted = false;
    if (getpeername(STDIN_FILENO, (struct sockaddr *)&ss, &sl) != 0) {
        if (errno == ENOTSOCK) {
            snprintf(c->s.client, sizeof c->s.client, "local");
            *trusted = true;
        } else {
            snprintf(c->s.client, sizeof c->s.client, "unknown (%s)", strerror(errno));
        }
        return;
    }
    const struct config *cfg = &c->pg->cfg;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, a, sizeof a);
        snprintf(c->s.client, sizeof c->s.client, "[%s]", a);
        *trusted = config_network_match(cfg->mynetworks, cfg->nmynetworks, AF_INET,
                                        (const unsigned char *)&in->sin_addr);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof a);
        snprintf(c->s.client, sizeof c->s.client, "[%s]", a);
        *trusted = config_network_match(cfg->mynetworks, cfg->nmynetworks, AF_INET6,
                                        (const unsigned char *)&in6->sin6_addr);
    } else if (ss.ss_family == AF_UNIX) {
        snprintf(c->s.client, sizeof c->s.client, "local");
        *trusted = true;
    } else {
        snprintf(c->s.client, sizeof c->s.client, "unknown (address family %d)", ss.ss_family);
    }
}

int smtpd_run(struct program *pg)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        say("out of memory");
        return EX_TEMPFAIL;
    }
    /* inetd hands the connection over as fd 0, 1 and 2: what hato says
     * on stderr must not reach the client as protocol. */
    struct stat sb;
    if (fstat(STDERR_FILENO, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
    (void)signal(SIGPIPE, SIG_IGN); /* cannot fail for SIGPIPE */
    open_maillog(pg);
    /* Each message arrives with SMTP's own end; -i and -t do not apply. */
    pg->args.dot_ends = false;
    pg->args.extract = false;

    c->pg = pg;
    c->s.hooks = (struct smtpd_hooks){hook_mail, hook_rcpt, hook_reset, hook_refused, hook_trace,
                                      hook_auth, c};
    c->s.hostname = pg->cfg.myhostname;
    c->s.size_limit = pg->cfg.message_size_limit;
    c->s.error_limit = pg->cfg.smtpd_hard_error_limit;
    c->s.message_limit = pg->cfg.smtpd_message_limit;

    bool trusted;
    identify(c, &trusted);
    /* mynetworks first: AUTH is offered only to a client already let in,
     * and not to a local pipe, trusted as any local submission. */
    c->s.auth_offered = trusted && pg->cfg.smtpd_sasl_enable && strcmp(c->s.client, "local") != 0;
    c->s.auth_required = pg->cfg.smtpd_sasl_required;
    maillog_plain(&pg->log, "connect from %s", c->s.client);
    char why[200];
    snprintf(why, sizeof why, "access denied: client %s is not in mynetworks", c->s.client);
    smtpd_start(&c->s, !trusted, why);

    while (c->s.state != SMTPD_CLOSED) {
        const char *line;
        size_t len;
        bool too_long;
        if (c->s.out_len > SMTPD_OUT / 2)
            flush_out(c);
        if (next_line(c, &line, &len, &too_long) == 0) {
            if (c->timed_out)
                smtpd_timed_out(&c->s);
            break;
        }
        /* An AUTH line or a SASL response carries the password in base64:
         * wiped from the input buffer once the session has read it. */
        bool secret = c->s.state == SMTPD_AUTH || (len >= 4 && strncasecmp(line, "AUTH", 4) == 0);
        enum smtpd_action a = smtpd_line(&c->s, line, len, too_long);
        if (secret)
            wipe((char *)line, len);
        if (a == SMTPD_RECEIVE) {
            flush_out(c); /* the client waits for 354 */
            receive(c);
        }
        if (a == SMTPD_CLOSE || c->lost)
            break;
    }
    flush_out(c);
    /* The connection is done with: a client that waits for its end (a
     * pipe's reader) goes on while the messages are tried. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    if (c->eof && c->s.state != SMTPD_CLOSED)
        maillog_plain(&pg->log, "lost connection from %s", c->s.client);
    maillog_plain(&pg->log, "disconnect from %s: %u message%s accepted, %u error%s", c->s.client,
                  c->s.messages, c->s.messages == 1 ? "" : "s", c->s.errors,
                  c->s.errors == 1 ? "" : "s");
    if (c->d != NULL) {
        attempt_held(c);
        delivery_end(c->d);
    }
    clear_rcpts(pg);
    wipe(c->in, sizeof c->in); /* moved-over copies of AUTH lines */
    wipe(&c->s, sizeof c->s);
    free(c);
    return EX_OK;
}
