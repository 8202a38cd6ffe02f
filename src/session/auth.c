/*
 * auth.c - SMTP AUTH (RFC 4954): choosing the mechanism, running the SASL
 * exchange, the failure policy, and pipelining the transaction behind a
 * one-step login.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/smtp_private.h"
#include "util/secret.h"

/* hato.h's HATO_SASL_* and sasl.h's SASL_* are the same bits: the options
 * pass straight through. */
_Static_assert((unsigned)HATO_SASL_NOPLAINTEXT == (unsigned)SASL_NOPLAINTEXT &&
                   (unsigned)HATO_SASL_NOANONYMOUS == (unsigned)SASL_NOANONYMOUS &&
                   (unsigned)HATO_SASL_NODICTIONARY == (unsigned)SASL_NODICTIONARY &&
                   (unsigned)HATO_SASL_MUTUAL_AUTH == (unsigned)SASL_MUTUAL_AUTH,
               "HATO_SASL_* and SASL_* differ");

/* At most this many AUTH commands per session: the first choice and one
 * fallback after a refusal of the mechanism itself (see auth_may_fall_back). */
#define AUTH_ATTEMPTS_MAX 2

/* The TLS channel binding the session handed over, if any, for the -PLUS
 * variants: tls-exporter when the link has it (RFC 9266: the one type
 * defined for TLS 1.3, and preferred where both exist), else tls-unique
 * (TLS 1.2, RFC 5929).  The bytes stay in s; p borrows them. */
static void auth_binding(const smtp *s, sasl_params *p)
{
    if (!s->tls_active)
        return;
    if (s->cb_exporter_len > 0) {
        p->cb_type = "tls-exporter";
        p->cb_data = s->cb_exporter;
        p->cb_len = s->cb_exporter_len;
    } else if (s->cb_unique_len > 0) {
        p->cb_type = "tls-unique";
        p->cb_data = s->cb_unique;
        p->cb_len = s->cb_unique_len;
    }
}

/* What the link offers the mechanisms beyond the security options. */
static unsigned auth_link_flags(const smtp *s)
{
    const hato_options *o = s->opt;
    unsigned f = s->tls_active ? o->sasl_tls_link | SASL_LINK_TLS : o->sasl_plain_link;
    sasl_params cb = { 0 };
    auth_binding(s, &cb);
    if (cb.cb_len > 0)
        f |= SASL_HAVE_BINDING;
    /* A client certificate is configured, so the TLS link carries one when
     * the server asks (servers that offer EXTERNAL do): EXTERNAL can work. */
    if (s->tls_active && o->cert_file != NULL)
        f |= SASL_HAVE_CERT;
    return f;
}

/* Drops name from the space-separated list (each occurrence, any case). */
static void auth_forget(char *list, const char *name)
{
    size_t n = strlen(name);
    char *p = list;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        char *end = p + strcspn(p, " ");
        bool same = (size_t)(end - p) == n;
        for (size_t i = 0; same && i < n; i++) {
            char c = p[i] >= 'a' && p[i] <= 'z' ? (char)(p[i] - 'a' + 'A') : p[i];
            same = c == name[i];
        }
        if (same)
            memset(p, ' ', n);
        p = end;
    }
}

/* Chooses the next mechanism among those not tried yet: true with s->mech
 * set, or false with why saying why none fits. */
static bool auth_choose(smtp *s, char *why, size_t whylen)
{
    const hato_options *o = s->opt;
    if (!sasl_select(s->auth_left, o->mech_filter, sasl_lib_mechanisms(s->sasl),
                     auth_link_flags(s), o->password != NULL, s->mech, why, whylen))
        return false;
    auth_forget(s->auth_left, s->mech);
    log_line(s->log, HATO_LOG_DEBUG, "sasl: chose %s%s%s", s->mech, why[0] ? "; " : "", why);
    smtp_report(s, "SASL: hato chooses %s%s%s", s->mech, why[0] ? "; passed over: " : "", why);
    return true;
}

/* RFC 4954 section 4: AUTH may lead a pipelined group only with an initial
 * response, for a mechanism known to finish in that one step with no
 * security layer: PLAIN and EXTERNAL.  (The OAuth mechanisms are one step
 * when they succeed, but answer a failure with a 334 challenge that the
 * pipelined MAIL would be taken as the response to.) */
static bool auth_may_pipeline(const smtp *s)
{
    return (s->caps.flags & EHLO_PIPELINING) && s->report == NULL && s->msg != NULL &&
           (strcmp(s->mech, "PLAIN") == 0 || strcmp(s->mech, "EXTERNAL") == 0);
}

/* Starts the exchange for s->mech and sends AUTH, with the initial
 * response when the mechanism speaks first; the transaction follows in the
 * same write when auth_may_pipeline. */
static void auth_begin(smtp *s)
{
    const hato_options *o = s->opt;
    char err[512];
    sasl_params p = {
        .user = o->user,
        .password = o->password,
        .host = o->host,
        .port = options_port(o),
    };
    auth_binding(s, &p);
    sasl_exchange_free(s->auth);
    s->auth = sasl_exchange_start(s->sasl, s->mech, &p, err, sizeof err);
    if (s->auth == NULL) {
        smtp_fail(s, HATO_E_SASL, HATO_LAYER_SASL, true, "SASL %s: %s", s->mech, err);
        return;
    }
    char *initial = NULL;
    s->auth_last = SASL_MORE;
    if (sasl_client_first(s->mech)) {
        s->auth_last = sasl_exchange_step(s->auth, NULL, &initial, err, sizeof err);
        if (s->auth_last == SASL_FAIL) {
            smtp_fail(s, HATO_E_SASL, HATO_LAYER_SASL, true, "SASL %s: %s", s->mech, err);
            return;
        }
    }
    char trace[64];
    snprintf(trace, sizeof trace, "AUTH %s%s", s->mech, initial ? " [redacted]" : "");
    smtp_set_state(s, SMTP_AUTH);
    s->auth_attempts++;
    s->auth_pipelined = initial != NULL && auth_may_pipeline(s);
    s->auth_failed = s->auth_retry = s->auth_answered = false;
    if (initial != NULL)
        /* RFC 4954 section 4: "=" stands for an empty initial response. */
        smtp_command(s, EXPECT_AUTH, trace, "AUTH %s %s", s->mech, initial[0] ? initial : "=");
    else
        smtp_command(s, EXPECT_AUTH, trace, "AUTH %s", s->mech);
    secret_free(initial);
    if (s->auth_pipelined && s->state == SMTP_AUTH)
        txn_start(s);
}

void auth_enter(smtp *s)
{
    const hato_options *o = s->opt;
    char err[512];
    if (s->sasl == NULL && (s->sasl = sasl_lib_new(err, sizeof err)) == NULL) {
        smtp_fail(s, HATO_E_SASL, HATO_LAYER_SASL, true, "%s", err);
        return;
    }
    free(s->auth_left);
    s->auth_attempts = 0;
    if ((s->auth_left = strdup(s->caps.auth)) == NULL) {
        smtp_fail(s, HATO_E_NOMEM, HATO_LAYER_SASL, true, "out of memory");
        return;
    }
    smtp_report(s, "SASL: %s offers %s", o->host, s->caps.auth[0] ? s->caps.auth : "nothing");
    char why[1024];
    if (!auth_choose(s, why, sizeof why)) {
        /* Postfix defers here (4.7.0): the settings may be fixed before
         * the message expires, so nothing is lost. */
        error_set(&s->err, HATO_E_AUTH_MECH, HATO_LAYER_SASL, true,
                  "cannot authenticate to %s: %s", o->host, why);
        smtp_report(s, "SASL: %s", why);
        smtp_enter_quit(s);
        return;
    }
    auth_begin(s);
}

/*
 * After a refusal, another mechanism is tried only when the refusal is about
 * the mechanism, not the credentials (RFC 4954 section 6): 504 unrecognised
 * mechanism, 534 too weak, 538 needs encryption.  Never after 535 or any
 * other reply: the server has judged the credentials, and trying them again
 * with another mechanism would count twice toward the account's lockout
 * (Gmail, Microsoft 365 and fail2ban setups lock after a few).  At most one
 * fallback (AUTH_ATTEMPTS_MAX), so a server that refuses everything this way
 * costs one extra round trip.
 */
static bool auth_may_fall_back(const smtp *s, const reply *r)
{
    return (r->code == 504 || r->code == 534 || r->code == 538) &&
           s->auth_attempts < AUTH_ATTEMPTS_MAX;
}

/* Tries the next mechanism; false (s->mech unchanged) when none is left. */
static bool auth_next_mechanism(smtp *s, int code, const char *text)
{
    char why[1024];
    char refused[SASL_MECH_MAX];
    memcpy(refused, s->mech, sizeof refused);
    if (!auth_choose(s, why, sizeof why)) {
        memcpy(s->mech, refused, sizeof refused);
        return false;
    }
    log_line(s->log, HATO_LOG_INFO, "%s refused %s (%d %s); trying %s", s->opt->host, refused,
             code, text, s->mech);
    auth_begin(s);
    return true;
}

/* The message for a refused login; hint says what else may be wrong. */
static void auth_refusal(smtp *s, const reply *r, const char *server_said, hato_error *into)
{
    const hato_options *o = s->opt;
    /* A -PLUS login refused with the right password: something between
     * client and server terminates TLS (an inspecting proxy), so the
     * binding differs.  Said, since the remedy is not the password. */
    const char *hint = "";
    if (r->code == 535 && strstr(s->mech, "-PLUS") != NULL)
        hint = "; if the password is right, a TLS proxy in between may break "
               "channel binding (smtp_sasl_mechanism_filter without -plus "
               "variants avoids it)";
    error_set_reply(into, HATO_E_AUTH, r, "authentication as %s with %s failed at %s%s%s", o->user,
                    s->mech, o->host, server_said, hint);
}

static void on_challenge(smtp *s, const reply *r)
{
    char err[512];
    if (s->auth_pipelined) {
        /* The lines after AUTH are the transaction, not a response: the
         * server broke RFC 4954's promise for this mechanism. */
        smtp_fail(s, HATO_E_PROTOCOL, HATO_LAYER_SASL, true,
                  "%s sent a challenge to AUTH %s with an initial response; aborting",
                  s->opt->host, s->mech);
        return;
    }
    char *response = NULL;
    const char *challenge = r->nlines > 0 ? r->lines[0] : "";
    sasl_status st = sasl_exchange_step(s->auth, challenge, &response, err, sizeof err);
    s->auth_last = st;
    if (st == SASL_FAIL) {
        /* RFC 4954 section 4: "*" cancels the exchange. */
        smtp_command(s, EXPECT_AUTH, NULL, "*");
        error_set(&s->err, HATO_E_SASL, HATO_LAYER_SASL, true, "SASL %s with %s failed: %s",
                  s->mech, s->opt->host, err);
        smtp_enter_quit(s);
        return;
    }
    smtp_command(s, EXPECT_AUTH, "[redacted]", "%s", response ? response : "");
    secret_free(response);
}

void auth_on_reply(smtp *s, const reply *r)
{
    const hato_options *o = s->opt;
    if (s->settled || s->state == SMTP_QUIT || s->state == SMTP_DONE)
        return; /* the answer to a "*" that cancelled, or after the end */
    if (r->code == 334) {
        on_challenge(s, r);
        return;
    }
    /* Kept until the message is made: it may hold the OAuth server's
     * reason. */
    char server_said[400] = "";
    const char *summary = sasl_exchange_server_error(s->auth);
    if (summary != NULL)
        snprintf(server_said, sizeof server_said, " (the server's error: %s)", summary);
    sasl_exchange_free(s->auth);
    s->auth = NULL;
    s->auth_answered = true;
    if (reply_class(r) == 2 && s->auth_last != SASL_DONE && sasl_mutual(s->mech)) {
        /* RFC 5802 section 5, RFC 2831 section 2.1.3: the server proves it
         * knows the password in its final message; a server that skips it
         * may be an impostor.  This is what mutual_auth relies on. */
        error_set(&s->err, HATO_E_AUTH, HATO_LAYER_SASL, true,
                  "%s accepted %s without proving it knows the password (no %s "
                  "server signature); not sending", o->host, s->mech,
                  strncmp(s->mech, "SCRAM-", 6) == 0 ? "SCRAM" : s->mech);
        smtp_enter_quit(s);
        return;
    }
    if (reply_class(r) == 2) {
        log_line(s->log, HATO_LOG_INFO, "authenticated to %s as %s with %s", o->host, o->user,
                 s->mech);
        smtp_report(s, "SASL: login as %s with %s succeeded", o->user, s->mech);
        if (!s->auth_pipelined)
            txn_start(s);
        return;
    }
    if (s->auth_pipelined) {
        /* The transaction is already on its way; its replies decide, and
         * this refusal is the reason given if it fails (auth_fall_back). */
        s->auth_failed = true;
        s->auth_retry = auth_may_fall_back(s, r);
        auth_refusal(s, r, server_said, &s->auth_err);
        log_line(s->log, HATO_LOG_DEBUG, "smtp: %s", s->auth_err.message);
        return;
    }
    if (auth_may_fall_back(s, r) &&
        auth_next_mechanism(s, r->code, r->nlines ? r->lines[0] : ""))
        return;
    auth_refusal(s, r, server_said, &s->err);
    log_line(s->log, HATO_LOG_DEBUG, "smtp: %s", s->err.message);
    smtp_enter_quit(s);
}

bool auth_fall_back(smtp *s)
{
    hato_message *m = s->msg;
    /* A reader cannot rewind: once a BDAT chunk took content from it, the
     * transaction cannot be made again on this connection.  (The one-step
     * mechanisms pipelined here are PLAIN and EXTERNAL, which a server that
     * offers them refuses this way only on a plain-text link.) */
    if (!s->auth_retry || s->quit_sent || (m->reader != NULL && s->body.bytes_in > 0))
        return false;
    s->auth_retry = false;
    /* The refused transaction may have left a MAIL in effect: RSET it in
     * the same write as the next AUTH (RFC 2920 lets RSET lead a group). */
    message_reset(m);
    smtp_command(s, EXPECT_RSET, NULL, "RSET");
    return auth_next_mechanism(s, s->auth_err.reply_code, s->auth_err.server_text);
}

void auth_free(smtp *s)
{
    sasl_exchange_free(s->auth);
    s->auth = NULL;
    sasl_lib_free(s->sasl);
    s->sasl = NULL;
    free(s->auth_left);
    s->auth_left = NULL;
}
