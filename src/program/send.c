/*
 * send.c - delivery from the queue: a message is spooled first
 * (submit_message), then sent from its queue file; each attempt's outcome
 * is reported per recipient (a line on stderr for a person, a maillog
 * record per recipient) and turned into the message's next step:
 * removed (sent), kept with a later retry time (deferred), or bounced
 * with a non-delivery report to the sender (dsn.c) and moved to failed/.
 * docs/queue.md describes the policy; queue.c keeps the files.
 *
 * Only a server's permanent reply (5xx) bounces.  Everything else --
 * network, TLS, a 4xx, a refused login under smtp_sasl_auth_soft_bounce,
 * and this host's own configuration -- defers: the message waits until
 * the cause is fixed or maximal_queue_lifetime runs out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "hato.h"

#include "content.h"
#include "dsn.h"
#include "exitcode.h"
#include "maillog.h"
#include "privilege.h"
#include "program.h"
#include "queue.h"

/* ------------------------------------------------------------------ */
/* The spool and the client of one run                                */

struct delivery {
    struct program *pg;
    struct queue_spool q;
    hato_client *cl;        /* NULL until the first send; per message with
                               smtp_sender_dependent_authentication */
    char *cl_sender;        /* the sender cl was built for, owned */
    char *cl_relay;         /* with sender_dependent_relayhost_maps: the
                               relay cl sends to, owned */
    int options_ex;         /* build_options' exit code when it failed */
    bool one_message;       /* sendmail's own message: no connection kept */
};

/* The spool named by queue_directory.  A Postfix main.cf read with -C
 * names Postfix's own queue there: hato must never write into it. */
static int open_spool(struct program *pg, struct queue_spool *q)
{
    char err[1024], path[4096];
    const char *dir = pg->cfg.queue_directory;
    struct stat sb;
    snprintf(path, sizeof path, "%s/maildrop", dir);
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        say("warning: queue_directory = %s holds Postfix's queue (it has maildrop/); hato uses "
            "its own, /var/spool/hato (set queue_directory in %s to silence this)", dir,
            pg->cfg.path);
        dir = "/var/spool/hato";
    }
    enum queue_status st = queue_spool_open(q, dir, err, sizeof err);
    if (st != QUEUE_OK) {
        say("%s", err);
        return EX_TEMPFAIL;
    }
    /* A setgid submission may use only its share of the shared spool
     * (docs/security.md); root and a plain program's own spool have no
     * share to keep. */
    if (privilege_restricted()) {
        q->limit_uid = (long)getuid();
        q->max_messages = pg->cfg.user_queue_limit;
        q->max_bytes = pg->cfg.user_queue_size_limit;
    }
    return EX_OK;
}

struct delivery *delivery_start(struct program *pg, int *ex)
{
    struct delivery *d = calloc(1, sizeof *d);
    if (d == NULL) {
        say("out of memory");
        *ex = EX_TEMPFAIL;
        return NULL;
    }
    d->pg = pg;
    if ((*ex = open_spool(pg, &d->q)) != EX_OK) {
        free(d);
        return NULL;
    }
    return d;
}

void delivery_end(struct delivery *d)
{
    if (d == NULL)
        return;
    hato_client_free(d->cl);
    free(d->cl_sender);
    free(d->cl_relay);
    queue_spool_close(&d->q);
    free(d);
}

struct queue_spool *delivery_spool(struct delivery *d)
{
    return &d->q;
}

/* How long a flush keeps the connection between two messages; far above
 * the time to prepare the next one, far below a server's idle timeout. */
#define FLUSH_KEEP_ALIVE_MS (30 * 1000)

/* A client for sender: built once per run, again when the sender's relay
 * (sender_dependent_relayhost_maps) differs from the last one's, and per
 * sender when the credentials depend on it.  NULL with d->options_ex set
 * on failure. */
static hato_client *client_for(struct delivery *d, const char *sender)
{
    struct program *pg = d->pg;
    /* Each relay of sender_dependent_relayhost_maps has its own client. */
    char *relay = NULL;
    if (pg->cfg.nrelayhost_maps > 0) {
        struct config_relay r;
        if ((d->options_ex = relay_for_sender(pg, sender, &r)) != EX_OK)
            return NULL;
        size_t len = strlen(r.host) + 16;
        if ((relay = malloc(len)) != NULL)
            snprintf(relay, len, "%s%s%s:%u", r.bracketed ? "[" : "", r.host,
                     r.bracketed ? "]" : "", (unsigned)r.port);
        free(r.host);
        if (relay == NULL) {
            d->options_ex = EX_TEMPFAIL;
            return NULL;
        }
    }
    bool same_relay = relay == NULL || (d->cl_relay != NULL && strcmp(d->cl_relay, relay) == 0);
    if (d->cl != NULL && same_relay &&
        (!pg->cfg.sender_dependent || strcmp(d->cl_sender, sender) == 0)) {
        free(relay);
        return d->cl;
    }
    free(d->cl_relay);
    d->cl_relay = relay;
    hato_client_free(d->cl);
    d->cl = NULL;
    free(d->cl_sender);
    d->cl_sender = strdup(sender);
    /* build_options reads the envelope sender for
     * smtp_sender_dependent_authentication. */
    char *saved = pg->sender;
    pg->sender = d->cl_sender;
    hato_options *o = hato_options_new();
    d->options_ex = o == NULL || d->cl_sender == NULL ? EX_TEMPFAIL : build_options(pg, o);
    pg->sender = saved;
    /* A flush sends every due message over one connection: the client
     * keeps it (and its TLS session and login) between messages.  For one
     * message, QUIT goes with the end of data instead: one round trip
     * less before the program exits. */
    if (d->options_ex == EX_OK && !d->one_message)
        hato_options_set_keep_alive(o, FLUSH_KEEP_ALIVE_MS);
    if (d->options_ex == EX_OK) {
        d->cl = hato_client_new(o);
        if (d->cl == NULL)
            d->options_ex = EX_TEMPFAIL;
    }
    hato_options_free(o); /* wipes the password: the client has its copy */
    return d->cl;
}

/* ------------------------------------------------------------------ */
/* One attempt                                                        */

struct file_reader {
    int fd;
    off_t off, end;
};

/* The library's reader over the message part of a queue file. */
static ptrdiff_t file_read(void *user, char *buf, size_t cap)
{
    struct file_reader *r = user;
    if (r->off >= r->end)
        return 0;
    if ((off_t)cap > r->end - r->off)
        cap = (size_t)(r->end - r->off);
    ssize_t n;
    do
        n = pread(r->fd, buf, cap, r->off);
    while (n < 0 && errno == EINTR);
    if (n <= 0) /* a queue file cannot shrink: 0 is an error too */
        return -1;
    r->off += n;
    return (ptrdiff_t)n;
}

static void log_recipient(struct program *pg, const struct queue_entry *e, const char *rcpt,
                          const char *relay, const char *dsn, const char *status,
                          const char *reason)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    double d = (double)(now.tv_sec - e->arrival_sec) + (double)(now.tv_usec - e->arrival_usec) / 1e6;
    if (d < 0)
        d = 0;
    maillog_record(&pg->log, "to=<%s>, relay=%s, delay=%.*f, dsn=%s, status=%s (%s)", rcpt, relay,
                   d < 10 ? 2 : 1, d, dsn, status, reason);
}

/* What one attempt came to. */
struct attempt {
    size_t sent, deferred, bounced; /* recipients, counted in this attempt */
    bool relay_down;      /* no connection at all: later messages would fail too */
    int ex;               /* the exit code the old, queue-less hato gave */
    char error[2600];     /* the failure, for the state file and mailq */
};

static void set_rcpt(struct queue_rcpt *r, enum queue_rcpt_status status, const char *dsn,
                     const char *reply)
{
    r->status = status;
    snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
    queue_set_text(&r->reply, reply); /* on failure the old text stays: harmless */
    if (status == QUEUE_RCPT_BOUNCED)
        r->fresh_bounce = true;
}

/* Tells the library what the spool measured and what the sender asked
 * (content.h), so that it never has to guess for the program. */
static hato_code apply_content(hato_message *m, const struct queue_entry *e,
                               const struct config *c)
{
    struct content_decision cd;
    content_decide(e, c->smtputf8_enable, &cd);
    hato_code rc = hato_message_set_body(m, cd.body);
    if (rc == HATO_OK && cd.size_known)
        rc = hato_message_set_size(m, cd.size);
    if (rc == HATO_OK && cd.smtputf8)
        rc = hato_message_set_smtputf8(m, true);
    if (rc == HATO_OK && cd.dsn)
        rc = hato_message_set_dsn(m, e->dsn_notify, e->dsn_ret,
                                  e->dsn_envid[0] ? e->dsn_envid : NULL);
    if (rc == HATO_OK && e->requiretls)
        rc = hato_message_set_requiretls(m, true);
    return rc;
}

/* Sends e to its pending recipients over d's client and records each
 * recipient's outcome in e. */
static void attempt(struct delivery *d, struct queue_entry *e, bool interactive, struct attempt *a)
{
    struct program *pg = d->pg;
    hato_message *m = hato_message_new();
    size_t *idx = calloc(e->nrcpts, sizeof *idx);
    size_t n = 0;
    hato_code rc = HATO_OK;

    memset(a, 0, sizeof *a);
    a->ex = EX_OK;
    snprintf(pg->log.queue_id, sizeof pg->log.queue_id, "%s", e->id);
    if (m == NULL || idx == NULL) {
        snprintf(a->error, sizeof a->error, "out of memory");
        goto defer_all;
    }
    if ((rc = hato_message_set_sender(m, e->sender)) != HATO_OK) {
        snprintf(a->error, sizeof a->error, "sender <%s> refused: %s", e->sender,
                 hato_code_name(rc));
        goto defer_all;
    }
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (e->rcpts[i].status != QUEUE_RCPT_PENDING)
            continue;
        if ((rc = hato_message_add_recipient(m, e->rcpts[i].address)) != HATO_OK) {
            snprintf(a->error, sizeof a->error, "recipient <%s> refused: %s", e->rcpts[i].address,
                     hato_code_name(rc));
            goto defer_all;
        }
        idx[n++] = i;
    }
    struct file_reader fr = {e->fd, e->body_offset, e->body_offset + e->size};
    if ((rc = hato_message_set_reader(m, file_read, &fr)) != HATO_OK) {
        snprintf(a->error, sizeof a->error, "cannot set the message reader: %s", hato_code_name(rc));
        goto defer_all;
    }
    if ((rc = apply_content(m, e, &pg->cfg)) != HATO_OK) {
        snprintf(a->error, sizeof a->error, "queue file %s: its BODY, SIZE or DSN request was "
                 "refused by the library: %s", e->id, hato_code_name(rc));
        goto defer_all;
    }
    hato_client *cl = client_for(d, e->sender);
    if (cl == NULL) {
        snprintf(a->error, sizeof a->error, "the configuration in %s keeps hato from sending "
                 "(see the message above)", pg->cfg.path);
        a->ex = d->options_ex;
        goto defer_all;
    }

    rc = hato_client_send(cl, m);
    const char *peer = hato_client_peer(cl);
    const char *relay = peer[0] ? peer : "none";
    queue_set_text(&e->relay, peer[0] ? peer : NULL);

    if (rc == HATO_OK || rc == HATO_E_RECIPIENTS) {
        int data_code = 0;
        const char *data_enh = "", *data_text = "";
        data_code = hato_message_data_reply(m, &data_enh, &data_text);
        char data_reply[600] = "accepted by the relay";
        if (data_code != 0)
            snprintf(data_reply, sizeof data_reply, "%d%s%s %s", data_code, data_enh[0] ? " " : "",
                     data_enh, data_text);
        int codes[64];
        const char *enhs[64];
        int nref = 0;
        for (size_t k = 0; k < n; k++) {
            struct queue_rcpt *r = &e->rcpts[idx[k]];
            const char *enh = "", *text = "";
            int code = hato_message_recipient_reply(m, k, &enh, &text);
            char reason[1200];
            if (code >= 200 && code < 300 && rc == HATO_OK) {
                set_rcpt(r, QUEUE_RCPT_SENT, data_enh[0] ? data_enh : "2.0.0", data_reply);
                log_recipient(pg, e, r->address, relay, r->dsn, "sent", data_reply);
                a->sent++;
                continue;
            }
            if (code == 0 || (code >= 200 && code < 300))
                snprintf(reason, sizeof reason, "not tried");
            else
                snprintf(reason, sizeof reason, "%d%s%s%s%s", code, enh[0] ? " " : "", enh,
                         text[0] ? " " : "", text);
            bool temp = code < 500;
            if (interactive || pg->args.verbose > 0)
                say("recipient <%s> refused by %s: %s", r->address, relay, reason);
            set_rcpt(r, temp ? QUEUE_RCPT_PENDING : QUEUE_RCPT_BOUNCED,
                     enh[0] ? enh : temp ? "4.0.0" : "5.0.0", reason);
            log_recipient(pg, e, r->address, relay, r->dsn, temp ? "deferred" : "bounced", reason);
            if (temp)
                a->deferred++;
            else
                a->bounced++;
            if (nref < 64) {
                codes[nref] = code;
                /* The server's own enhanced code, not r->dsn, which has
                 * 5.0.0 filled in: "550 Invalid recipient" without one
                 * (OpenSMTPD 6.8) must still read as "no such user" (67). */
                enhs[nref] = enh;
                nref++;
            }
            snprintf(a->error, sizeof a->error, "<%s>: %s", r->address, reason);
        }
        if (nref > 0)
            a->ex = exitcode_for_refusals(codes, enhs, nref);
        goto out;
    }

    /* The whole message failed. */
    const hato_error *err = hato_client_error(cl);
    bool temp = err ? hato_error_temporary(err) : true;
    const char *msg = err ? hato_error_message(err) : hato_code_name(rc);
    const char *enh = err ? hato_error_enhanced_code(err) : "";
    int ex = exitcode_for_error(rc, temp, pg->cfg.auth_soft_bounce);
    char line[2048], hint[512], reason[1200];
    failure_line(pg, rc, err, ex, relay, line, sizeof line);
    content_explain(e, rc, hint, sizeof hint);
    snprintf(a->error, sizeof a->error, "%s%s", line, hint);
    snprintf(reason, sizeof reason, "%s%s", msg, hint);
    a->relay_down = peer[0] == '\0' || rc == HATO_E_CONNECT || rc == HATO_E_RESOLVE;
    /* Bounce only on the server's own permanent word, or when the message
     * itself cannot pass this relay (exitcode_bounces). */
    bool bounce = ex != EX_TEMPFAIL && err != NULL &&
                  exitcode_bounces(rc, temp, hato_error_reply_code(err));
    char dsn[16];
    snprintf(dsn, sizeof dsn, "%s", enh[0] ? enh : exitcode_dsn(rc, !bounce));
    if (!bounce)
        dsn[0] = '4'; /* a deferral never carries 5.x.x (soft bounce of a 535) */
    if (interactive || pg->args.verbose > 0)
        say("%s", a->error);
    for (size_t k = 0; k < n; k++) {
        struct queue_rcpt *r = &e->rcpts[idx[k]];
        set_rcpt(r, bounce ? QUEUE_RCPT_BOUNCED : QUEUE_RCPT_PENDING, dsn, a->error);
        log_recipient(pg, e, r->address, relay, dsn, bounce ? "bounced" : "deferred", reason);
        if (bounce)
            a->bounced++;
        else
            a->deferred++;
    }
    a->ex = bounce ? ex : (ex == EX_TEMPFAIL ? EX_OK : ex);
    goto out;

defer_all:
    if (interactive || pg->args.verbose > 0)
        say("%s", a->error);
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (e->rcpts[i].status != QUEUE_RCPT_PENDING)
            continue;
        set_rcpt(&e->rcpts[i], QUEUE_RCPT_PENDING, "4.3.0", a->error);
        log_recipient(pg, e, e->rcpts[i].address, "none", "4.3.0", "deferred", a->error);
        a->deferred++;
    }
out:
    hato_message_free(m);
    free(idx);
}
/* The one line that describes a failed send or probe. */
void failure_line(struct program *pg, hato_code rc, const hato_error *e, int ex,
                  const char *relay, char *line, size_t size)
{
    bool temp = e ? hato_error_temporary(e) : true;
    const char *msg = e ? hato_error_message(e) : hato_code_name(rc);
    const char *server = e ? hato_error_server_text(e) : "";
    const char *enh = e ? hato_error_enhanced_code(e) : "";
    int rcode = e ? hato_error_reply_code(e) : 0;
    int k;
    if (rc == HATO_E_BODY && pg->in_errno != 0)
        k = snprintf(line, size, "cannot read the message from standard input: %s; "
                     "nothing was delivered", strerror(pg->in_errno));
    else if (rc == HATO_E_AUTH && strstr(msg, pg->cfg.relay_host) == NULL)
        k = snprintf(line, size, "authentication to %s failed: %s", relay, msg);
    else
        k = snprintf(line, size, "%s", msg);
    if (k >= 0 && (size_t)k < size && server[0] != '\0' && strstr(msg, server) == NULL)
        k += snprintf(line + k, size - (size_t)k, " (the server said: %d%s%s %s)", rcode,
                      enh[0] ? " " : "", enh, server);
    if (k >= 0 && (size_t)k < size && rc == HATO_E_AUTH && ex == EX_TEMPFAIL && !temp)
        snprintf(line + k, size - (size_t)k, "; exit status 75 (try later) because "
                 "smtp_sasl_auth_soft_bounce = yes");
}


/* ------------------------------------------------------------------ */
/* After an attempt: remove, retry later, or bounce                   */

struct mem_reader {
    const char *p;
    size_t left;
};

static ptrdiff_t mem_read(void *user, char *buf, size_t cap)
{
    struct mem_reader *r = user;
    size_t n = r->left < cap ? r->left : cap;
    memcpy(buf, r->p, n);
    r->p += n;
    r->left -= n;
    return (ptrdiff_t)n;
}

static int deliver(struct delivery *d, struct queue_entry *e, bool interactive,
                   const char *skip_error, bool *relay_down);

/* Queues a report on e's fresh bounces for its sender and tries to send
 * it at once.  Returns 0, or -1 when it could not be queued (the caller
 * then keeps the recipients pending, so the report is not lost). */
// NOLINTNEXTLINE(misc-no-recursion): bounded, depth 2: a report comes from <>, which is never reported
static int send_report(struct delivery *d, struct queue_entry *e, bool expired)
{
    struct program *pg = d->pg;
    char err[1024];
    struct dsn_input in = {e, pg->cfg.myhostname, e->relay, expired, time(NULL)};
    char *text = NULL;
    size_t len = 0;
    if (dsn_build(&in, &text, &len) != 0) {
        say("cannot build the non-delivery report for %s: out of memory or unreadable queue file",
            e->id);
        return -1;
    }
    struct mem_reader mr = {text, len};
    struct queue_entry report;
    bool read_failed;
    const char *to[] = {e->sender};
    enum queue_status st = queue_write(&d->q, "", to, 1, (long)getuid(), NULL, mem_read, &mr,
                                       &report, &read_failed, err, sizeof err);
    free(text);
    if (st != QUEUE_OK) {
        say("cannot queue the non-delivery report for %s: %s", e->id, err);
        queue_entry_free(&report);
        return -1;
    }
    maillog_record(&pg->log, "sender non-delivery notification: %s", report.id);
    snprintf(pg->log.queue_id, sizeof pg->log.queue_id, "%s", report.id);
    maillog_record(&pg->log, "from=<>, size=%lld, nrcpt=1 (queue active)", (long long)report.size);
    bool down = false;
    deliver(d, &report, false, NULL, &down);
    queue_entry_free(&report);
    snprintf(pg->log.queue_id, sizeof pg->log.queue_id, "%s", e->id);
    return 0;
}

/* The wait before the next attempt: minimal_backoff_time, doubled with
 * each attempt up to maximal_backoff_time. */
static unsigned backoff(const struct config *c, unsigned attempts)
{
    unsigned long long t = c->min_backoff;
    for (unsigned i = 1; i < attempts && t < c->max_backoff; i++)
        t *= 2;
    return t > c->max_backoff ? c->max_backoff : (unsigned)t;
}

static void human_time(char *out, size_t size, long long s)
{
    if (s < 120)
        snprintf(out, size, "%llds", s);
    else if (s < 7200)
        snprintf(out, size, "%lldm", s / 60);
    else if (s < 172800)
        snprintf(out, size, "%lldh", s / 3600);
    else
        snprintf(out, size, "%lldd", s / 86400);
}

/* One message's attempt (none with skip_error: the relay is known to be
 * down in this run) and its consequences.  Returns the exit code for a
 * submitter. */
// NOLINTNEXTLINE(misc-no-recursion): bounded, depth 2: a report comes from <>, which is never reported
static int deliver(struct delivery *d, struct queue_entry *e, bool interactive,
                   const char *skip_error, bool *relay_down)
{
    struct program *pg = d->pg;
    const struct config *c = &pg->cfg;
    struct attempt a;
    char err[1024];
    size_t pending = 0;

    memset(&a, 0, sizeof a);
    snprintf(pg->log.queue_id, sizeof pg->log.queue_id, "%s", e->id);
    /* A setgid submission by an ordinary user only queues: the relay's
     * password is root's, and root's flush sends (docs/security.md). */
    if (privilege_restricted()) {
        if (interactive && pg->args.verbose > 0)
            say("message queued as %s; the next queue run (hato -q as root, the flush timer) "
                "sends it", e->id);
        return EX_OK;
    }
    for (size_t i = 0; i < e->nrcpts; i++)
        pending += e->rcpts[i].status == QUEUE_RCPT_PENDING;
    if (pending > 0 && skip_error == NULL) {
        attempt(d, e, interactive, &a);
        *relay_down = a.relay_down;
        e->attempts++;
        e->last_attempt = time(NULL);
    } else if (pending > 0) {
        snprintf(a.error, sizeof a.error, "%s", skip_error);
    }

    time_t now = time(NULL);
    unsigned lifetime = e->sender[0] ? c->max_queue_lifetime : c->bounce_queue_lifetime;
    bool expired = false;
    pending = 0;
    for (size_t i = 0; i < e->nrcpts; i++)
        pending += e->rcpts[i].status == QUEUE_RCPT_PENDING;
    if (pending > 0 && now - e->arrival_sec >= (long long)lifetime) {
        char age[32], why[2800];
        human_time(age, sizeof age, now - e->arrival_sec);
        for (size_t i = 0; i < e->nrcpts; i++) {
            struct queue_rcpt *r = &e->rcpts[i];
            if (r->status != QUEUE_RCPT_PENDING)
                continue;
            snprintf(why, sizeof why, "message expired after %s in the queue (%s = %us); "
                     "last error: %s", age, e->sender[0] ? "maximal_queue_lifetime"
                     : "bounce_queue_lifetime", lifetime,
                     r->reply ? r->reply : a.error[0] ? a.error : "none");
            if (r->dsn[0] == '\0')
                snprintf(r->dsn, sizeof r->dsn, "4.4.7");
            log_recipient(pg, e, r->address, "none", r->dsn, "bounced", why);
            r->status = QUEUE_RCPT_BOUNCED;
            r->fresh_bounce = true;
        }
        if (interactive || pg->args.verbose > 0)
            say("message %s expired after %s in the queue; a non-delivery report goes to <%s>",
                e->id, age, e->sender);
        expired = true;
        pending = 0;
    }

    bool fresh = false, any_bounced = false;
    for (size_t i = 0; i < e->nrcpts; i++) {
        fresh |= e->rcpts[i].fresh_bounce;
        any_bounced |= e->rcpts[i].status == QUEUE_RCPT_BOUNCED;
    }
    bool report = fresh && e->sender[0] != '\0' && dsn_failure_wanted(e);
    if (fresh && e->sender[0] == '\0') {
        /* RFC 5321 section 4.5.5: never bounce a bounce; it stays in
         * failed/ for the admin. */
        maillog_record(&pg->log, "sender is <>: no non-delivery report; kept in %s/failed/%s",
                       d->q.dir, e->id);
    } else if (fresh && !report) {
        /* RFC 3461 section 4.1: -N never, or without failure. */
        maillog_record(&pg->log, "sender asked for no failure notice (NOTIFY=%s): no "
                       "non-delivery report; kept in %s/failed/%s",
                       e->dsn_notify & HATO_DSN_NEVER ? "NEVER" : "without FAILURE", d->q.dir,
                       e->id);
    } else if (fresh && send_report(d, e, expired) != 0) {
        /* Not reported: keep them pending so a later run reports them. */
        for (size_t i = 0; i < e->nrcpts; i++) {
            if (e->rcpts[i].fresh_bounce) {
                e->rcpts[i].status = QUEUE_RCPT_PENDING;
                pending++;
            }
        }
    }
    for (size_t i = 0; i < e->nrcpts; i++)
        e->rcpts[i].fresh_bounce = false;
    if (report && interactive)
        say("a non-delivery report for message %s goes to <%s>", e->id, e->sender);
    else if (fresh && interactive && e->sender[0] != '\0')
        say("no non-delivery report for message %s, as -N asked; it is kept in %s/failed/",
            e->id, d->q.dir);

    enum queue_status st;
    if (pending == 0 && !any_bounced) {
        st = queue_remove(&d->q, e, err, sizeof err);
        if (st == QUEUE_OK)
            maillog_record(&pg->log, "removed");
    } else if (pending == 0) {
        st = queue_move_failed(&d->q, e, err, sizeof err);
        if (st == QUEUE_OK)
            maillog_record(&pg->log, "moved to %s/failed/%s", d->q.dir, e->id);
    } else {
        if (skip_error == NULL) {
            unsigned wait = backoff(c, e->attempts);
            e->next_attempt = (long long)now + wait;
            queue_set_text(&e->error, a.error);
            if (interactive) {
                char w[32];
                human_time(w, sizeof w, wait);
                say("message queued as %s in %s; delivery deferred, next attempt in %s or at "
                    "the next \"hato -q\"", e->id, d->q.dir, w);
            }
            st = queue_save_state(&d->q, e, err, sizeof err);
        } else {
            st = QUEUE_OK; /* not tried: its schedule stays */
        }
    }
    if (st != QUEUE_OK)
        say("queue %s: %s", e->id, err);
    /* Deferred recipients are safe in the queue: that is success for the
     * caller, as with sendmail. */
    return a.ex == EX_TEMPFAIL ? EX_OK : a.ex;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                       */

int delivery_run(struct delivery *d, struct queue_entry *e, const char *skip_error,
                 bool *relay_down)
{
    return deliver(d, e, false, skip_error, relay_down);
}

/* sendmail's -N, -R, -V and -B as the queue keeps them. */
static struct queue_request request_of(const struct args *a)
{
    static const struct {
        unsigned arg, dsn;
    } bits[] = {
        {ARGS_NOTIFY_NEVER, HATO_DSN_NEVER},
        {ARGS_NOTIFY_SUCCESS, HATO_DSN_SUCCESS},
        {ARGS_NOTIFY_FAILURE, HATO_DSN_FAILURE},
        {ARGS_NOTIFY_DELAY, HATO_DSN_DELAY},
    };
    struct queue_request r = {0};
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (a->notify & bits[i].arg)
            r.notify |= bits[i].dsn;
    r.ret = a->ret == ARGS_RET_HDRS   ? HATO_DSN_RET_HDRS
            : a->ret == ARGS_RET_FULL ? HATO_DSN_RET_FULL
                                      : HATO_DSN_RET_DEFAULT;
    r.envid = a->envid;
    r.body = a->body == ARGS_BODY_7BIT       ? HATO_BODY_7BIT
             : a->body == ARGS_BODY_8BITMIME ? HATO_BODY_8BITMIME
                                             : HATO_BODY_AUTO;
    return r;
}

int submit_spool(struct delivery *d, struct queue_entry *e, bool *read_failed, char *err,
                 size_t errlen)
{
    struct program *pg = d->pg;
    *read_failed = false;
    struct queue_request req = request_of(&pg->args);
    enum queue_status st = queue_write(&d->q, pg->sender, (const char *const *)pg->rcpts,
                                       pg->nrcpts, (long)getuid(), &req, body_reader, pg, e,
                                       read_failed, err, errlen);
    if (st == QUEUE_LIMIT) /* for the admin: who is filling the spool */
        maillog_record(&pg->log, "uid=%ld from=<%s>: refused: %s", (long)getuid(), pg->sender,
                       err);
    if (st != QUEUE_OK)
        return st;
    snprintf(pg->log.queue_id, sizeof pg->log.queue_id, "%s", e->id);
    maillog_record(&pg->log, "uid=%ld from=<%s>", (long)getuid(), pg->sender);
    maillog_record(&pg->log, "from=<%s>, size=%lld, nrcpt=%zu (queue active)", e->sender,
                   (long long)e->size, e->nrcpts);
    return QUEUE_OK;
}

int submit_attempt(struct delivery *d, struct queue_entry *e)
{
    bool down = false;
    return deliver(d, e, false, NULL, &down);
}

int submit_message(struct program *pg)
{
    int ex;
    struct delivery *d = delivery_start(pg, &ex);
    if (d == NULL) {
        say("the message was NOT accepted: it could not be queued (exit status %d: try again "
            "later)", ex);
        return ex;
    }
    d->one_message = true;
    struct queue_entry e;
    bool read_failed = false;
    char err[1024];
    enum queue_status st = submit_spool(d, &e, &read_failed, err, sizeof err);
    if (st != QUEUE_OK) {
        if (read_failed) {
            say("cannot read the message from standard input: %s; the message was NOT accepted",
                strerror(pg->in_errno));
            ex = EX_IOERR;
        } else if (st == QUEUE_LIMIT) {
            say("cannot queue the message: %s; the message was NOT accepted (exit status 75: "
                "try again once the queue run has sent your queued mail, or ask the admin to "
                "raise the limit)", err);
            ex = EX_TEMPFAIL;
        } else {
            say("cannot queue the message: %s; the message was NOT accepted (nothing was sent, "
                "exit status 75: try again later)", err);
            ex = EX_TEMPFAIL;
        }
        queue_entry_free(&e);
        delivery_end(d);
        return ex;
    }
    if (e.body_request == HATO_BODY_7BIT && e.body_8bit)
        say("warning: -B 7BIT, but the body of message %s holds 8-bit bytes; it is declared "
            "8BITMIME, as it is (a relay without 8BITMIME refuses it; leave -B out, or "
            "encode the body as quoted-printable or base64)", e.id);
    if (pg->args.queue_only) {
        if (pg->args.verbose > 0)
            say("message queued as %s in %s (-odq: not sent now)", e.id, d->q.dir);
        ex = EX_OK;
    } else {
        bool down = false;
        ex = deliver(d, &e, true, NULL, &down);
    }
    queue_entry_free(&e);
    delivery_end(d);
    return ex;
}
