/*
 * send.c - one message handed to the library, and the outcome reported:
 * a line on stderr for each refusal or failure, a maillog record for
 * each recipient, and the exit code from exitcode.c's table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sysexits.h>

#include "hato.h"

#include "exitcode.h"
#include "maillog.h"
#include "program.h"

/* Seconds since the program started, for the maillog's delay=. */
static double elapsed(const struct program *pg)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - pg->start.tv_sec) + (double)(now.tv_usec - pg->start.tv_usec) / 1e6;
}

static void log_recipient(struct program *pg, const char *rcpt, const char *relay,
                          const char *dsn, const char *status, const char *reason)
{
    double d = elapsed(pg);
    maillog_record(&pg->log, "to=<%s>, relay=%s, delay=%.*f, dsn=%s, status=%s (%s)", rcpt, relay,
                   d < 10 ? 2 : 1, d, dsn, status, reason);
}

/* Reports each recipient after a send that reached RCPT; returns the
 * exit code. */
static int report_recipients(struct program *pg, hato_message *m, const char *relay)
{
    size_t n = hato_message_recipient_count(m);
    int *codes = calloc(n ? n : 1, sizeof *codes);
    const char **enh = calloc(n ? n : 1, sizeof *enh);
    int nrefused = 0;
    /* dsn= of a sent recipient: the enhanced code of the reply to the
     * final dot ("250 2.0.0 Ok: queued as X"), as Postfix logs it. */
    const char *data_enh = "", *data_text = "";
    int data_code = hato_message_data_reply(m, &data_enh, &data_text);
    const char *data_dsn = data_enh[0] ? data_enh : "2.0.0";
    char data_reply[600] = "accepted by the relay";
    if (data_code != 0)
        snprintf(data_reply, sizeof data_reply, "%d%s%s %s", data_code, data_enh[0] ? " " : "",
                 data_enh, data_text);

    for (size_t i = 0; i < n; i++) {
        const char *e = "", *text = "";
        const char *rcpt = hato_message_recipient(m, i);
        int code = hato_message_recipient_reply(m, i, &e, &text);
        char reason[1024];
        if (code >= 200 && code < 300) {
            log_recipient(pg, rcpt, relay, data_dsn, "sent", data_reply);
            continue;
        }
        snprintf(reason, sizeof reason, "%d%s%s%s%s", code, e[0] ? " " : "", e, text[0] ? " " : "", text);
        if (code == 0)
            snprintf(reason, sizeof reason, "not tried");
        say("recipient <%s> refused by %s: %s", rcpt, relay, reason);
        bool temp = code < 500;
        log_recipient(pg, rcpt, relay, e[0] ? e : temp ? "4.0.0" : "5.0.0",
                      temp ? "deferred" : "bounced", reason);
        if (codes != NULL && enh != NULL) {
            codes[nrefused] = code;
            enh[nrefused] = e;
        }
        nrefused++;
    }
    int ex = EX_OK;
    if (nrefused > 0)
        ex = codes && enh ? exitcode_for_refusals(codes, enh, nrefused) : EX_UNAVAILABLE;
    free(codes);
    free(enh);
    return ex;
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

int send_message(struct program *pg)
{
    hato_options *o = hato_options_new();
    hato_message *m = hato_message_new();
    hato_client *cl = NULL;
    int ex = EX_OK;

    if (o == NULL || m == NULL) {
        say("out of memory");
        ex = EX_TEMPFAIL;
        goto out;
    }
    if ((ex = build_options(pg, o)) != EX_OK)
        goto out;
    hato_code rc = hato_message_set_sender(m, pg->sender);
    if (rc != HATO_OK) {
        say("sender <%s> refused: %s", pg->sender, hato_code_name(rc));
        ex = rc == HATO_E_NOMEM ? EX_TEMPFAIL : EX_USAGE;
        goto out;
    }
    for (size_t i = 0; i < pg->nrcpts; i++) {
        rc = hato_message_add_recipient(m, pg->rcpts[i]);
        if (rc != HATO_OK) {
            say("recipient <%s> refused: %s", pg->rcpts[i], hato_code_name(rc));
            ex = rc == HATO_E_NOMEM ? EX_TEMPFAIL : pg->args.extract ? EX_DATAERR : EX_USAGE;
            goto out;
        }
    }
    if ((rc = hato_message_set_reader(m, body_reader, pg)) != HATO_OK) {
        ex = options_fail(rc, "the message reader");
        goto out;
    }
    cl = hato_client_new(o);
    /* The password now lives only in the client's copy: free ours. */
    hato_options_free(o);
    o = NULL;
    if (cl == NULL) {
        say("out of memory");
        ex = EX_TEMPFAIL;
        goto out;
    }

    rc = hato_client_send(cl, m);
    const char *peer = hato_client_peer(cl);
    const char *relay = peer[0] ? peer : "none";
    maillog_record(&pg->log, "from=<%s>, size=%llu, nrcpt=%zu", pg->sender, pg->size, pg->nrcpts);

    if (rc == HATO_OK) {
        ex = report_recipients(pg, m, relay);
        goto out;
    }
    const hato_error *e = hato_client_error(cl);
    bool temp = e ? hato_error_temporary(e) : true;
    const char *msg = e ? hato_error_message(e) : hato_code_name(rc);
    const char *enh = e ? hato_error_enhanced_code(e) : "";

    if (rc == HATO_E_RECIPIENTS) {
        /* One line per refused recipient says it all. */
        ex = report_recipients(pg, m, relay);
        if (ex == EX_OK)
            ex = exitcode_for_error(rc, temp, pg->cfg.auth_soft_bounce);
        goto out;
    }
    ex = exitcode_for_error(rc, temp, pg->cfg.auth_soft_bounce);
    char line[2048];
    failure_line(pg, rc, e, ex, relay, line, sizeof line);
    say("%s", line);
    /* A deferral never carries a 5.x.x code, even when a soft bounce
     * turned a permanent refusal into one (Postfix logs 4.7.8 for 535). */
    char dsn_buf[16];
    const char *dsn = exitcode_dsn(rc, ex == EX_TEMPFAIL);
    if (enh[0] != '\0') {
        snprintf(dsn_buf, sizeof dsn_buf, "%s", enh);
        if (ex == EX_TEMPFAIL)
            dsn_buf[0] = '4';
        dsn = dsn_buf;
    }
    for (size_t i = 0; i < pg->nrcpts; i++)
        log_recipient(pg, pg->rcpts[i], relay, dsn, exitcode_status(ex), msg);

out:
    hato_client_free(cl);
    hato_message_free(m);
    hato_options_free(o);
    return ex;
}
