/*
 * commands.c - the commands that read no message: --probe, which lets the
 * library diagnose the relay with the same options a send would use,
 * --tofu-accept, which removes one pinned key from the state directory,
 * -q, which runs over the queue once, and -bp (mailq), which lists it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "hato.h"

#include "config.h"
#include "exitcode.h"
#include "privilege.h"
#include "program.h"
#include "queue.h"

static void on_probe_line(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
    (void)fflush(stdout); /* each line as it comes: a slow port shows where it waits */
}

int probe(struct program *pg)
{
    hato_options *o = hato_options_new();
    hato_client *cl = NULL;
    int ex = EX_OK;

    if (o == NULL) {
        say("out of memory");
        return EX_TEMPFAIL;
    }
    if ((ex = build_options(pg, o)) != EX_OK)
        goto out;
    cl = hato_client_new(o);
    hato_options_free(o); /* wipes the password: the client has its copy */
    o = NULL;
    if (cl == NULL) {
        say("out of memory");
        ex = EX_TEMPFAIL;
        goto out;
    }
    hato_code rc = hato_client_probe(cl, on_probe_line, pg);
    if (rc != HATO_OK) {
        const hato_error *e = hato_client_error(cl);
        const char *peer = hato_client_peer(cl);
        char line[2048];
        ex = exitcode_for_error(rc, e ? hato_error_temporary(e) : true, pg->cfg.auth_soft_bounce);
        failure_line(pg, rc, e, ex, peer[0] ? peer : pg->cfg.relay_host, line, sizeof line);
        say("%s", line);
    }
out:
    hato_client_free(cl);
    hato_options_free(o);
    return ex;
}

/* What a TOFU record pins, for a person: its "pkey-sha256 ..." line
 * (the format src/session/session.c writes), else its first line. */
static void describe_record(const char *text, char *out, size_t size)
{
    const char *line = strstr(text, "pkey-sha256 ");
    if (line == NULL || (line != text && line[-1] != '\n'))
        line = text;
    size_t n = strcspn(line, "\r\n");
    snprintf(out, size, "%.*s", (int)n, line);
    for (char *q = out; *q != '\0'; q++)
        if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
            *q = '?';
}

int tofu_accept(struct program *pg)
{
    const struct config *c = &pg->cfg;
    char *host = NULL;
    uint16_t port = 0;
    bool bracketed;
    int ex = EX_OK;

    if (pg->args.tofu_target != NULL) {
        const char *why;
        int r = config_parse_relay(pg->args.tofu_target, &host, &port, &bracketed, &why);
        if (r == -2) {
            say("out of memory");
            return EX_TEMPFAIL;
        }
        if (r == -1) {
            say("--tofu-accept %s: %s; give the relay as [host]:port", pg->args.tofu_target, why);
            return EX_USAGE;
        }
        if (port == 0)
            port = relay_port(c);
    } else if (c->relay_host == NULL) {
        say("relayhost is not set in %s: name the relay, as in hato --tofu-accept [host]:port",
            c->path);
        return EX_CONFIG;
    } else {
        host = strdup(c->relay_host);
        port = relay_port(c);
        if (host == NULL) {
            say("out of memory");
            return EX_TEMPFAIL;
        }
    }
    char *dir = find_state_dir(pg);
    if (dir == NULL) {
        free(host);
        return EX_CONFIG;
    }
    /* The library's layout (src/tls/state.c): tofu/HOST:PORT, with bytes
     * other than letters, digits, ':', '_', '-' and a '.' after the first
     * replaced by '_'. */
    char path[4096];
    int k = snprintf(path, sizeof path, "%s/tofu/", dir);
    for (size_t i = 0; host[i] != '\0' && k > 0 && (size_t)k + 1 < sizeof path; i++) {
        char ch = host[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == ':' || ch == '_' || ch == '-' ||
                  (ch == '.' && i > 0);
        path[k++] = ok ? ch : '_';
        path[k] = '\0';
    }
    if (k > 0 && (size_t)k < sizeof path)
        snprintf(path + k, sizeof path - (size_t)k, ":%u", (unsigned)port);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            say("no key is pinned for [%s]:%u (no file %s); the next connection records the "
                "server's key", host, (unsigned)port, path);
            ex = EX_NOINPUT;
        } else {
            say("cannot open %s: %s", path, strerror(errno));
            ex = errno == EACCES ? EX_NOPERM : EX_IOERR;
        }
        goto out;
    }
    char record[4096];
    ssize_t n = read(fd, record, sizeof record - 1);
    close(fd);
    record[n > 0 ? n : 0] = '\0';
    char shown[300] = "";
    describe_record(record, shown, sizeof shown);
    if (unlink(path) != 0) {
        say("cannot remove %s: %s", path, strerror(errno));
        ex = errno == EACCES || errno == EPERM ? EX_NOPERM : EX_IOERR;
        goto out;
    }
    printf("removed the key pinned for [%s]:%u (%s) from %s; the next connection records the "
           "server's current key: check it first with hato --probe\n", host, (unsigned)port,
           shown[0] ? shown : "an empty record", path);
    if (c->tls_level != HATO_TLS_TOFU)
        say("warning: smtp_tls_security_level is not tofu in %s, so keys are not pinned",
            c->path);
out:
    free(dir);
    free(host);
    return ex;
}


/* ------------------------------------------------------------------ */
/* The queue                                                          */

int flush_queue(struct program *pg)
{
    char err[1024];
    int ex = EX_OK;

    /* Sending needs the relay's password, which is root's: an ordinary
     * user's mail waits for root's run (docs/security.md). */
    if (privilege_restricted()) {
        say("only root runs the queue (hato -q); queued mail is sent by the next queue run "
            "(the flush timer, or root running hato -q)");
        return EX_NOPERM;
    }
    if (!pg->log_open) {
        if (maillog_open(&pg->log, pg->cfg.maillog_file, pg->cfg.myhostname, err, sizeof err) != 0)
            say("warning: %s", err);
        pg->log_open = true;
    }
    struct delivery *d = delivery_start(pg, &ex);
    if (d == NULL)
        return ex;
    struct queue_spool *q = delivery_spool(d);
    char **ids = NULL;
    size_t n = 0;
    if (queue_list(q, &ids, &n, err, sizeof err) != QUEUE_OK) {
        say("%s", err);
        delivery_end(d);
        return EX_TEMPFAIL;
    }
    /* -q alone flushes everything now (Postfix's sendmail -q, postqueue
     * -f); -qTIME, the form for cron and timers, takes only messages whose
     * backoff has passed. */
    bool force = pg->args.flush_interval == 0;
    bool down = false;
    char down_error[2700] = "";
    size_t tried = 0, busy = 0, waiting = 0;
    for (size_t i = 0; i < n; i++) {
        struct queue_entry e;
        enum queue_status st = queue_load(q, ids[i], true, &e, err, sizeof err);
        if (st == QUEUE_BUSY || st == QUEUE_GONE) {
            busy += st == QUEUE_BUSY;
        } else if (st != QUEUE_OK) {
            say("queue %s: %s; left in place", ids[i], err);
        } else if (!force && e.next_attempt > (long long)time(NULL)) {
            waiting++;
        } else {
            bool relay_down = false;
            tried++;
            delivery_run(d, &e, down ? down_error : NULL, &relay_down);
            /* With sender_dependent_relayhost_maps the next message
             * may go elsewhere: one relay down stops nothing. */
            if (!down && relay_down && pg->cfg.nrelayhost_maps == 0) {
                /* Every later message would wait for the same timeout:
                 * they keep their schedule, only expiry applies. */
                down = true;
                snprintf(down_error, sizeof down_error, "not tried: %s",
                         e.error ? e.error : "the relay did not answer");
            }
        }
        queue_entry_free(&e);
    }
    if (pg->args.verbose > 0)
        say("queue run: %zu message%s tried, %zu busy with another hato, %zu waiting for their "
            "retry time%s", tried, tried == 1 ? "" : "s", busy, waiting,
            down ? "; the relay did not answer" : "");
    queue_list_free(ids, n);
    delivery_end(d);
    return EX_OK;
}

static size_t count_failed(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/failed", dir);
    DIR *dh = opendir(p);
    size_t n = 0;
    if (dh == NULL)
        return 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL)
        if (de->d_name[0] != '.' && strchr(de->d_name, '.') == NULL)
            n++;
    closedir(dh);
    return n;
}

int list_queue(struct program *pg)
{
    char err[1024];
    struct queue_spool q;
    const char *dir = pg->cfg.queue_directory;
    char probe_path[4096];
    snprintf(probe_path, sizeof probe_path, "%s/maildrop", dir);
    if (access(probe_path, F_OK) == 0)
        dir = "/var/spool/hato"; /* Postfix's queue: the same rule as send.c */
    if (queue_spool_open(&q, dir, err, sizeof err) != QUEUE_OK) {
        say("%s", err);
        return errno == EACCES ? EX_NOPERM : EX_TEMPFAIL;
    }
    char **ids = NULL;
    size_t n = 0;
    if (queue_list(&q, &ids, &n, err, sizeof err) != QUEUE_OK) {
        say("%s", err);
        queue_spool_close(&q);
        return EX_TEMPFAIL;
    }
    unsigned long long bytes = 0;
    size_t shown = 0;
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        struct queue_entry e;
        if (queue_load(&q, ids[i], false, &e, err, sizeof err) != QUEUE_OK) {
            queue_entry_free(&e);
            continue;
        }
        /* Through the spool group an ordinary user sees their own
         * messages only: the file's owner and the envelope must both be
         * theirs (docs/security.md). */
        if (privilege_restricted() && (e.owner != getuid() || e.uid != (long)getuid())) {
            queue_entry_free(&e);
            continue;
        }
        if (shown++ == 0)
            printf("-Queue ID-      --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
        char when[64] = "";
        time_t t = (time_t)e.arrival_sec;
        struct tm tm;
        if (localtime_r(&t, &tm) != NULL)
            strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm);
        bool active = queue_locked_by_other(&q, e.id);
        printf("%s%c %8lld %-20s  %s\n", e.id, active ? '*' : ' ', (long long)e.size, when,
               e.sender[0] ? e.sender : "MAILER-DAEMON");
        long long age = (long long)now - e.arrival_sec;
        if (e.attempts > 0) {
            long long next = e.next_attempt - (long long)now;
            printf("%46s(%u attempt%s, age %llds, next %s%llds: %s)\n", "", e.attempts,
                   e.attempts == 1 ? "" : "s", age, next > 0 ? "in " : "due, ",
                   next > 0 ? next : 0, e.error ? e.error : "no error recorded");
        } else {
            printf("%46s(not tried yet, age %llds)\n", "", age);
        }
        for (size_t k = 0; k < e.nrcpts; k++)
            if (e.rcpts[k].status == QUEUE_RCPT_PENDING)
                printf("%46s%s\n", "", e.rcpts[k].address);
        printf("\n");
        bytes += (unsigned long long)e.size;
        queue_entry_free(&e);
    }
    if (shown == 0)
        printf("Mail queue is empty\n");
    else
        printf("-- %llu Kbytes in %zu Request%s.\n", (bytes + 1023) / 1024, shown,
               shown == 1 ? "" : "s");
    size_t failed = privilege_restricted() ? 0 : count_failed(q.dir);
    if (failed > 0)
        printf("(%zu failed message%s kept in %s/failed)\n", failed, failed == 1 ? "" : "s",
               q.dir);
    queue_list_free(ids, n);
    queue_spool_close(&q);
    return EX_OK;
}
