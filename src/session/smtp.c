/*
 * smtp.c - the SMTP client state machine (RFC 5321, 3207, 4954, 2920).
 *
 * Each state has an entry action that writes its command (enter_*), and one
 * handler that chooses the next state from a complete reply (on_reply).
 * smtp_set_state() is the only way the state changes, so every transition
 * shows in the trace.
 */
#include "session/smtp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "message/body.h"
#include "reply/ehlo.h"
#include "reply/reply.h"
#include "sasl/sasl.h"
#include "util/secret.h"

/* Commands are short and the body goes out in pieces, so the output never
 * needs more than a body piece plus an envelope. */
#define OUT_LIMIT (1024 * 1024)
/* Content pulled per piece: large writes and full TLS records, in fixed
 * memory whatever the message size. */
#define BODY_PIECE (64 * 1024)
/* RFC 4954 section 4: an AUTH line may reach 12288 octets. */
#define AUTH_LINE_MAX 12288

typedef enum smtp_state {
    SMTP_GREETING,
    SMTP_EHLO,
    SMTP_HELO,
    SMTP_STARTTLS,
    SMTP_TLS,      /* waiting for session.c to run the handshake */
    SMTP_AUTH,
    SMTP_ENVELOPE, /* MAIL, RCPT..., DATA, pipelined when the server allows */
    SMTP_BODY,
    SMTP_DOT,      /* waiting for the reply to the final dot */
    SMTP_RSET,     /* after a refused transaction, before the next */
    SMTP_IDLE,     /* a message is done; the connection waits for the next */
    SMTP_QUIT,
    SMTP_DONE,
} smtp_state;

static const char *const state_names[] = {
    "greeting", "ehlo", "helo", "starttls", "tls-handshake", "auth",
    "envelope", "body", "end-of-data", "rset", "idle", "quit", "done",
};

struct smtp {
    smtp_state state;
    const hato_options *opt; /* borrowed */
    hato_message *msg;       /* borrowed */
    const logger *log;       /* borrowed, inside opt */
    reply_parser parser;
    buf out;                 /* owned: plaintext to send */
    ehlo_caps caps;
    bool tls_active;
    char helo_name[256];

    sasl_lib *sasl;          /* owned, made when AUTH starts */
    sasl_exchange *auth;     /* owned, during SMTP_AUTH */
    char mech[SASL_MECH_MAX];
    sasl_status auth_last;   /* the exchange's last step */
    char *auth_left;         /* owned: the offered mechanisms not tried yet,
                                for the one fallback after 504/534/538 */
    unsigned auth_attempts;  /* AUTH commands sent */

    /* Envelope: command 0 is MAIL, 1..n the RCPTs, n+1 DATA. */
    bool pipelining;
    size_t env_sent, env_answered;
    bool mail_refused;
    hato_error first_refusal; /* why the envelope failed, kept for the error */

    body_encoder body;
    bool body_done;
    bool quit_sent;
    bool settled;            /* the message's outcome is final; the message
                                may be freed by its owner from here on */

    hato_error err;

    /* Channel bindings of the TLS link (smtp_set_channel_binding), for
     * enter_auth; len 0 when the link offers none of that type.  Wiped in
     * smtp_free. */
    unsigned char cb_exporter[SMTP_CB_MAX];
    size_t cb_exporter_len;
    unsigned char cb_unique[SMTP_CB_MAX];
    size_t cb_unique_len;

    /* Probe mode (hato_client_probe): report what is learnt, stop before MAIL. */
    hato_probe_fn report;    /* NULL when sending */
    void *report_user;
};

static void smtp_set_state(smtp *s, smtp_state next)
{
    if (s->state != next)
        log_line(s->log, HATO_LOG_DEBUG, "smtp: %s -> %s", state_names[s->state],
                 state_names[next]);
    s->state = next;
}

const char *smtp_state_name(const smtp *s)
{
    return state_names[s->state];
}

void smtp_report(const smtp *s, const char *fmt, ...)
{
    if (s->report == NULL)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->report(s->report_user, line);
}

void smtp_set_probe(smtp *s, hato_probe_fn fn, void *user)
{
    s->report = fn;
    s->report_user = user;
}

/* The reply's lines after the first, joined by spaces: an EHLO's
 * capabilities as one line. */
static void report_capabilities(const smtp *s, const reply *r)
{
    if (s->report == NULL)
        return;
    char caps[900] = "";
    size_t used = 0;
    for (size_t i = 1; i < r->nlines && used < sizeof caps; i++)
        used += (size_t)snprintf(caps + used, sizeof caps - used, "%s%s", used ? ", " : "",
                                 r->lines[i]);
    smtp_report(s, "capabilities %s: %s", s->tls_active ? "with TLS" : "before TLS",
                caps[0] ? caps : "(none)");
}

/* Writes one command line; trace is what the log shows instead of the line
 * when the line carries a secret. */
static void send_line(smtp *s, const char *trace, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void send_line(smtp *s, const char *trace, const char *fmt, ...)
{
    char line[AUTH_LINE_MAX + 3];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 2) {
        secret_wipe(line, sizeof line);
        smtp_fail(s, HATO_E_ARGUMENT, HATO_LAYER_SMTP, false,
                  "command line longer than %d bytes", AUTH_LINE_MAX);
        return;
    }
    log_line(s->log, HATO_LOG_TRACE, "> %s", trace ? trace : line);
    memcpy(line + n, "\r\n", 2);
    bool ok = buf_append(&s->out, line, (size_t)n + 2);
    secret_wipe(line, (size_t)n + 2);
    if (!ok)
        smtp_fail(s, HATO_E_NOMEM, HATO_LAYER_SMTP, true, "out of memory for the output buffer");
}

static void trace_reply(const smtp *s, const reply *r)
{
    if (!log_wants(s->log, HATO_LOG_TRACE))
        return;
    for (size_t i = 0; i < r->nlines; i++) {
        char sep = i + 1 < r->nlines ? '-' : ' ';
        /* SASL challenges are not shown: they may carry what a secret is
         * derived from (RFC 4954 section 4). */
        if (s->state == SMTP_AUTH && r->code == 334)
            log_line(s->log, HATO_LOG_TRACE, "< %d%c[redacted]", r->code, sep);
        else
            log_line(s->log, HATO_LOG_TRACE, "< %d%c%s%s%s", r->code, sep, r->enhanced,
                     r->enhanced[0] ? " " : "", r->lines[i]);
    }
}

/* Ends politely: QUIT when the connection can still carry it. */
static void enter_quit(smtp *s)
{
    smtp_set_state(s, SMTP_QUIT);
    if (!s->quit_sent) {
        send_line(s, NULL, "QUIT");
        s->quit_sent = true;
    }
}

/* The message's transaction is over, sent or refused.  With keep-alive the
 * connection stays for the next message (RSET first after a refusal, RFC
 * 5321 4.1.1.5); otherwise, and in probe mode, goodbye. */
static void end_transaction(smtp *s, bool clean)
{
    s->settled = true;
    if (s->opt->keep_alive_ms == 0 || s->report != NULL) {
        enter_quit(s);
    } else if (clean) {
        smtp_set_state(s, SMTP_IDLE);
    } else {
        smtp_set_state(s, SMTP_RSET);
        send_line(s, NULL, "RSET");
    }
}

/* Every RCPT was refused: the first refusal stands for all. */
static void fail_all_refused(smtp *s)
{
    const rcpt *first = &s->msg->rcpts[0];
    error_set(&s->err, HATO_E_RECIPIENTS, HATO_LAYER_SMTP, first->reply_code / 100 == 4,
              "the server refused every recipient; first: <%s>: %d %s", first->address,
              first->reply_code, first->text);
    s->err.reply_code = first->reply_code;
    snprintf(s->err.enhanced, sizeof s->err.enhanced, "%s", first->enhanced);
    snprintf(s->err.server_text, sizeof s->err.server_text, "%s", first->text);
}

void smtp_fail(smtp *s, hato_code code, hato_layer layer, bool temporary, const char *fmt, ...)
{
    if (s->state == SMTP_DONE)
        return;
    char what[ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    log_line(s->log, HATO_LOG_DEBUG, "smtp: failed in %s: %s", state_names[s->state], what);
    /* The first failure is the message's outcome (a refusal, say); a later
     * one, such as the server hanging up before our QUIT, only ends the
     * connection. */
    if (!error_is_set(&s->err) && !s->settled) {
        error_clear(&s->err);
        s->err.code = code;
        s->err.layer = layer;
        s->err.temporary = temporary;
        snprintf(s->err.message, sizeof s->err.message, "%s", what);
    }
    /* The connection is finished: what was not written yet never will be
     * (and may hold an AUTH line). */
    secret_wipe(s->out.data, s->out.cap);
    buf_clear(&s->out);
    smtp_set_state(s, SMTP_DONE);
}

/* A refusal by the server: record it and say goodbye. */
static void fail_reply(smtp *s, hato_code code, const reply *r, const char *what)
{
    error_set_reply(&s->err, code, r, "%s", what);
    log_line(s->log, HATO_LOG_DEBUG, "smtp: %s", s->err.message);
    enter_quit(s);
}

/* ------------------------------------------------------------------ */
/* Entry actions                                                      */

static void enter_ehlo(smtp *s)
{
    memset(&s->caps, 0, sizeof s->caps);
    smtp_set_state(s, SMTP_EHLO);
    send_line(s, NULL, "EHLO %s", s->helo_name);
}

static void enter_envelope(smtp *s);

static bool link_is_secure(const smtp *s)
{
    return s->tls_active;
}

/* hato.h's HATO_SASL_* and sasl.h's SASL_* are the same bits: the options
 * pass straight through. */
_Static_assert((unsigned)HATO_SASL_NOPLAINTEXT == (unsigned)SASL_NOPLAINTEXT &&
                   (unsigned)HATO_SASL_NOANONYMOUS == (unsigned)SASL_NOANONYMOUS &&
                   (unsigned)HATO_SASL_NODICTIONARY == (unsigned)SASL_NODICTIONARY &&
                   (unsigned)HATO_SASL_MUTUAL_AUTH == (unsigned)SASL_MUTUAL_AUTH,
               "HATO_SASL_* and SASL_* differ");

/* At most this many AUTH commands per session: the first choice and one
 * fallback after a refusal of the mechanism itself (see on_auth). */
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

/* A client certificate is configured, so the TLS link carries one when the
 * server asks (servers that offer EXTERNAL do): EXTERNAL can work. */
static bool auth_client_cert(const smtp *s)
{
    return s->tls_active && s->opt->cert_file != NULL;
}

/* What the link offers the mechanisms beyond the security options. */
static unsigned auth_link_flags(const smtp *s)
{
    const hato_options *o = s->opt;
    unsigned f = link_is_secure(s) ? o->sasl_tls_link | SASL_LINK_TLS : o->sasl_plain_link;
    sasl_params cb = { 0 };
    auth_binding(s, &cb);
    if (cb.cb_len > 0)
        f |= SASL_HAVE_BINDING;
    if (auth_client_cert(s))
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

/* Starts the exchange for s->mech and sends AUTH, with the initial
 * response when the mechanism speaks first. */
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
    if (initial != NULL)
        /* RFC 4954 section 4: "=" stands for an empty initial response. */
        send_line(s, trace, "AUTH %s %s", s->mech, initial[0] ? initial : "=");
    else
        send_line(s, trace, "AUTH %s", s->mech);
    secret_free(initial);
}

static void enter_auth(smtp *s)
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
        enter_quit(s);
        return;
    }
    auth_begin(s);
}

/* After (E)HLO, and after STARTTLS's second EHLO. */
static void enter_session(smtp *s)
{
    const hato_options *o = s->opt;
    if (!s->tls_active && o->tls_level >= HATO_TLS_ENCRYPT) {
        /* Postfix defers too: the server may offer it again later. */
        error_set(&s->err, HATO_E_TLS_REQUIRED, HATO_LAYER_TLS, true,
                  "%s offers no STARTTLS, but smtp_tls_security_level requires TLS; "
                  "nothing was sent (use smtp_tls_wrappermode = yes if this port "
                  "speaks TLS from the start)", o->host);
        enter_quit(s);
        return;
    }
    if (o->user != NULL) {
        if (s->caps.flags & EHLO_AUTH) {
            enter_auth(s);
            return;
        }
        log_line(s->log, HATO_LOG_WARNING,
                 "%s offers no AUTH%s; sending without authentication", o->host,
                 s->tls_active ? "" : " before TLS");
    }
    enter_envelope(s);
}

static void send_envelope_command(smtp *s, size_t i)
{
    hato_message *m = s->msg;
    if (i == 0)
        send_line(s, NULL, "MAIL FROM:<%s>", m->sender);
    else if (i <= m->nrcpts)
        send_line(s, NULL, "RCPT TO:<%s>", m->rcpts[i - 1].address);
    else
        send_line(s, NULL, "DATA");
    s->env_sent = i + 1;
}

static size_t envelope_total(const smtp *s)
{
    return s->msg->nrcpts + 2;
}

static void enter_envelope(smtp *s)
{
    if (s->report != NULL) {
        /* A probe ends where a message would begin. */
        smtp_report(s, "ready: a message can be sent with these settings%s",
                    s->tls_active ? "" : " (without TLS)");
        enter_quit(s);
        return;
    }
    s->pipelining = (s->caps.flags & EHLO_PIPELINING) != 0;
    s->env_sent = s->env_answered = 0;
    smtp_set_state(s, SMTP_ENVELOPE);
    /* RFC 2920: with PIPELINING, MAIL, every RCPT and DATA go in one write. */
    size_t burst = s->pipelining ? envelope_total(s) : 1;
    for (size_t i = 0; i < burst && s->state == SMTP_ENVELOPE; i++)
        send_envelope_command(s, i);
}

static void enter_body(smtp *s)
{
    body_init(&s->body);
    s->body_done = false;
    smtp_set_state(s, SMTP_BODY);
}

/* ------------------------------------------------------------------ */
/* Reply handlers                                                     */

static void on_greeting(smtp *s, const reply *r)
{
    char text[512];
    reply_join(r, text, sizeof text);
    smtp_report(s, "greeting: %d %s", r->code, text);
    if (r->code == 220)
        enter_ehlo(s);
    else
        fail_reply(s, HATO_E_REPLY, r, "the server refused the connection");
}

static void on_ehlo(smtp *s, const reply *r)
{
    if (reply_class(r) == 2) {
        ehlo_parse(&s->caps, r);
        report_capabilities(s, r);
        const hato_options *o = s->opt;
        if (!s->tls_active && o->tls_level >= HATO_TLS_MAY && (s->caps.flags & EHLO_STARTTLS)) {
            smtp_set_state(s, SMTP_STARTTLS);
            send_line(s, NULL, "STARTTLS");
            return;
        }
        enter_session(s);
    } else if (reply_class(r) == 5) {
        /* RFC 5321 section 3.2: a server that does not know EHLO gets HELO. */
        memset(&s->caps, 0, sizeof s->caps);
        smtp_set_state(s, SMTP_HELO);
        send_line(s, NULL, "HELO %s", s->helo_name);
    } else {
        fail_reply(s, HATO_E_REPLY, r, "EHLO refused");
    }
}

static void on_helo(smtp *s, const reply *r)
{
    if (reply_class(r) == 2)
        enter_session(s);
    else
        fail_reply(s, HATO_E_REPLY, r, "HELO refused");
}

static void on_starttls(smtp *s, const reply *r)
{
    if (r->code == 220) {
        smtp_set_state(s, SMTP_TLS);
        return;
    }
    if (s->opt->tls_level == HATO_TLS_MAY) {
        log_line(s->log, HATO_LOG_WARNING, "STARTTLS refused (%d); going on without TLS "
                 "as smtp_tls_security_level = may allows", r->code);
        enter_session(s);
        return;
    }
    fail_reply(s, HATO_E_TLS, r, "STARTTLS refused");
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

static void on_auth(smtp *s, const reply *r)
{
    char err[512];
    const hato_options *o = s->opt;
    if (r->code == 334) {
        char *response = NULL;
        const char *challenge = r->nlines > 0 ? r->lines[0] : "";
        sasl_status st = sasl_exchange_step(s->auth, challenge, &response, err, sizeof err);
        s->auth_last = st;
        if (st == SASL_FAIL) {
            /* RFC 4954 section 4: "*" cancels the exchange. */
            send_line(s, NULL, "*");
            error_set(&s->err, HATO_E_SASL, HATO_LAYER_SASL, true,
                      "SASL %s with %s failed: %s", s->mech, o->host, err);
            enter_quit(s);
            return;
        }
        send_line(s, "[redacted]", "%s", response ? response : "");
        secret_free(response);
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
    if (reply_class(r) == 2 && s->auth_last != SASL_DONE && sasl_mutual(s->mech)) {
        /* RFC 5802 section 5, RFC 2831 section 2.1.3: the server proves it
         * knows the password in its final message; a server that skips it
         * may be an impostor.  This is what mutual_auth relies on. */
        error_set(&s->err, HATO_E_AUTH, HATO_LAYER_SASL, true,
                  "%s accepted %s without proving it knows the password (no %s "
                  "server signature); not sending", o->host, s->mech,
                  strncmp(s->mech, "SCRAM-", 6) == 0 ? "SCRAM" : s->mech);
        enter_quit(s);
        return;
    }
    if (reply_class(r) == 2) {
        log_line(s->log, HATO_LOG_INFO, "authenticated to %s as %s with %s", o->host,
                 o->user, s->mech);
        smtp_report(s, "SASL: login as %s with %s succeeded", o->user, s->mech);
        enter_envelope(s);
        return;
    }
    if (auth_may_fall_back(s, r)) {
        char why[1024];
        char refused[SASL_MECH_MAX];
        memcpy(refused, s->mech, sizeof refused);
        if (auth_choose(s, why, sizeof why)) {
            log_line(s->log, HATO_LOG_INFO, "%s refused %s (%d %s); trying %s", o->host,
                     refused, r->code, r->nlines ? r->lines[0] : "", s->mech);
            auth_begin(s);
            return;
        }
        memcpy(s->mech, refused, sizeof refused);
    }
    /* A -PLUS login refused with the right password: something between
     * client and server terminates TLS (an inspecting proxy), so the
     * binding differs.  Said, since the remedy is not the password. */
    const char *hint = "";
    if (r->code == 535 && strstr(s->mech, "-PLUS") != NULL)
        hint = "; if the password is right, a TLS proxy in between may break "
               "channel binding (smtp_sasl_mechanism_filter without -plus "
               "variants avoids it)";
    char what[512];
    snprintf(what, sizeof what, "authentication as %s with %s failed at %s%s%s", o->user,
             s->mech, o->host, server_said, hint);
    fail_reply(s, HATO_E_AUTH, r, what);
}

static void on_envelope(smtp *s, const reply *r)
{
    hato_message *m = s->msg;
    size_t i = s->env_answered++;
    if (i == 0) {
        if (reply_class(r) != 2) {
            char what[300];
            snprintf(what, sizeof what, "sender <%s> refused", m->sender);
            error_set_reply(&s->first_refusal, HATO_E_REPLY, r, "%s", what);
            s->mail_refused = true;
        }
    } else if (i <= m->nrcpts) {
        message_record_rcpt(m, i - 1, r);
        if (reply_class(r) != 2)
            log_line(s->log, HATO_LOG_INFO, "recipient <%s> refused: %d %s", m->rcpts[i - 1].address,
                     r->code, r->nlines ? r->lines[0] : "");
    } else {
        /* The reply to DATA. */
        bool go = r->code == 354 && !s->mail_refused && message_accepted(m) > 0;
        if (go) {
            enter_body(s);
            return;
        }
        if (s->mail_refused)
            s->err = s->first_refusal;
        else if (message_accepted(m) == 0)
            fail_all_refused(s);
        else
            error_set_reply(&s->err, HATO_E_REPLY, r, "DATA refused");
        if (r->code == 354) {
            /* The server wants data we will not send: an empty message
             * closes the transaction.  Its reply would arrive where no
             * state expects one, so this connection ends here. */
            buf_append(&s->out, ".\r\n", 3);
            log_line(s->log, HATO_LOG_TRACE, "> .");
            enter_quit(s);
            return;
        }
        end_transaction(s, false);
        return;
    }
    if (s->pipelining)
        return;
    /* One command at a time: decide whether the next one is worth sending. */
    if (s->mail_refused) {
        s->err = s->first_refusal;
        end_transaction(s, false);
    } else if (s->env_sent == envelope_total(s) - 1 && message_accepted(m) == 0) {
        /* Every RCPT refused: DATA would only be refused too. */
        fail_all_refused(s);
        end_transaction(s, false);
    } else {
        send_envelope_command(s, s->env_sent);
    }
}

static void on_dot(smtp *s, const reply *r)
{
    message_record_data(s->msg, r);
    if (reply_class(r) == 2) {
        s->msg->sent = true;
        log_line(s->log, HATO_LOG_INFO, "message accepted by %s: %d %s", s->opt->host, r->code,
                 r->nlines ? r->lines[0] : "");
        end_transaction(s, true);
        return;
    }
    error_set_reply(&s->err, HATO_E_REPLY, r, "message refused at end of data");
    log_line(s->log, HATO_LOG_DEBUG, "smtp: %s", s->err.message);
    /* A refusal of the data ends the transaction on the server too. */
    end_transaction(s, true);
}

static void on_rset(smtp *s, const reply *r)
{
    if (reply_class(r) == 2)
        smtp_set_state(s, SMTP_IDLE);
    else
        enter_quit(s);
}

static void on_reply(smtp *s, const reply *r)
{
    trace_reply(s, r);
    switch (s->state) {
    case SMTP_GREETING: on_greeting(s, r); break;
    case SMTP_EHLO: on_ehlo(s, r); break;
    case SMTP_HELO: on_helo(s, r); break;
    case SMTP_STARTTLS: on_starttls(s, r); break;
    case SMTP_AUTH: on_auth(s, r); break;
    case SMTP_ENVELOPE: on_envelope(s, r); break;
    case SMTP_DOT: on_dot(s, r); break;
    case SMTP_RSET: on_rset(s, r); break;
    case SMTP_QUIT: smtp_set_state(s, SMTP_DONE); break;
    case SMTP_TLS:
    case SMTP_BODY:
    case SMTP_IDLE:
    case SMTP_DONE:
        smtp_fail(s, HATO_E_PROTOCOL, HATO_LAYER_SMTP, true,
                  "unexpected reply from %s during %s: %d %s", s->opt->host,
                  state_names[s->state], r->code, r->nlines ? r->lines[0] : "");
        break;
    }
}

/* ------------------------------------------------------------------ */
/* Interface                                                          */

smtp *smtp_new(const hato_options *opt, hato_message *m)
{
    smtp *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->opt = opt;
    s->msg = m;
    s->log = &opt->log;
    reply_parser_init(&s->parser);
    buf_init(&s->out, OUT_LIMIT);
    if (opt->helo_name != NULL)
        snprintf(s->helo_name, sizeof s->helo_name, "%s", opt->helo_name);
    else if (gethostname(s->helo_name, sizeof s->helo_name - 1) != 0 || s->helo_name[0] == '\0')
        snprintf(s->helo_name, sizeof s->helo_name, "localhost");
    s->state = SMTP_GREETING;
    return s;
}

void smtp_free(smtp *s)
{
    if (s == NULL)
        return;
    secret_wipe(s->cb_exporter, sizeof s->cb_exporter);
    secret_wipe(s->cb_unique, sizeof s->cb_unique);
    reply_parser_free(&s->parser);
    /* The output may hold an AUTH line. */
    buf_free_wipe(&s->out);
    sasl_exchange_free(s->auth);
    sasl_lib_free(s->sasl);
    free(s->auth_left);
    free(s);
}

static bool awaiting_reply(const smtp *s)
{
    switch (s->state) {
    case SMTP_ENVELOPE: return s->env_answered < s->env_sent;
    case SMTP_TLS:
    case SMTP_BODY:
    case SMTP_IDLE:
    case SMTP_DONE: return false;
    default: return true;
    }
}

size_t smtp_input(smtp *s, const char *data, size_t len)
{
    size_t used = 0;
    if (s->state == SMTP_IDLE) {
        /* A server speaks to an idle client only to hang up (421 on its
         * idle timeout): the connection is over, the last message's
         * outcome stands. */
        log_line(s->log, HATO_LOG_DEBUG, "smtp: %s spoke while idle: closing", s->opt->host);
        smtp_set_state(s, SMTP_DONE);
        return len;
    }
    while (used < len && s->state != SMTP_DONE) {
        if (!awaiting_reply(s)) {
            smtp_fail(s, HATO_E_PROTOCOL, HATO_LAYER_SMTP, true,
                      "%s sent %zu unexpected bytes during %s", s->opt->host, len - used,
                      state_names[s->state]);
            break;
        }
        size_t consumed = 0;
        reply r;
        const char *why = NULL;
        reply_status st = reply_parse(&s->parser, data + used, len - used, &consumed, &r, &why);
        used += consumed;
        if (st == REPLY_MORE)
            break;
        if (st == REPLY_ERROR && strcmp(why, REPLY_WHY_NOMEM) == 0) {
            smtp_fail(s, HATO_E_NOMEM, HATO_LAYER_SMTP, true, "out of memory reading a reply");
            break;
        }
        if (st == REPLY_ERROR) {
            smtp_fail(s, HATO_E_PROTOCOL, HATO_LAYER_SMTP, true, "bad reply from %s during %s: %s",
                      s->opt->host, state_names[s->state], why);
            break;
        }
        on_reply(s, &r);
        reply_free(&r);
        if (s->state == SMTP_TLS && (used < len || reply_parser_busy(&s->parser))) {
            /* RFC 3207 section 4: nothing may follow the 220 before the
             * handshake; bytes here were injected (CVE-2011-0411 class). */
            smtp_fail(s, HATO_E_PROTOCOL, HATO_LAYER_TLS, true,
                      "%s sent %zu bytes after its 220 reply to STARTTLS, before the "
                      "TLS handshake (possible command injection); aborting",
                      s->opt->host, len - used);
            break;
        }
    }
    return used;
}

static void pump_body(smtp *s)
{
    char piece[BODY_PIECE];
    ptrdiff_t n = message_read(s->msg, piece, sizeof piece);
    if (n < 0) {
        /* Never send the final dot for a body we could not read whole:
         * the server would deliver it truncated.  Drop the connection. */
        smtp_fail(s, HATO_E_BODY, HATO_LAYER_MESSAGE, true,
                  "reading the message failed after %llu bytes; the message was not sent",
                  s->body.bytes_in);
        return;
    }
    if (n == 0) {
        char end[8];
        size_t k = body_finish(&s->body, end);
        bool ok = buf_append(&s->out, end, k);
        log_line(s->log, HATO_LOG_TRACE, "> [%llu bytes of message]", s->body.bytes_in);
        log_line(s->log, HATO_LOG_TRACE, "> .");
        s->body_done = true;
        smtp_set_state(s, SMTP_DOT);
        if (ok && s->pipelining && s->opt->keep_alive_ms == 0 && s->report == NULL) {
            /* RFC 2920: QUIT may follow the end of data in one write. */
            send_line(s, NULL, "QUIT");
            s->quit_sent = true;
        }
        if (!ok)
            smtp_fail(s, HATO_E_NOMEM, HATO_LAYER_SMTP, true, "out of memory for the output buffer");
        return;
    }
    unsigned char *dst = buf_reserve(&s->out, body_max_output((size_t)n));
    if (dst == NULL) {
        smtp_fail(s, HATO_E_NOMEM, HATO_LAYER_SMTP, true, "out of memory for the output buffer");
        return;
    }
    buf_commit(&s->out, body_encode(&s->body, piece, (size_t)n, (char *)dst));
}

buf *smtp_output(smtp *s)
{
    if (s->state == SMTP_BODY && buf_size(&s->out) < BODY_PIECE)
        pump_body(s);
    return &s->out;
}

unsigned smtp_want(const smtp *s)
{
    unsigned w = 0;
    if (buf_size(&s->out) > 0 || s->state == SMTP_BODY)
        w |= SMTP_WANT_WRITE;
    if (s->state == SMTP_DONE || s->state == SMTP_IDLE)
        return w ? w : SMTP_WANT_DONE;
    if (s->state == SMTP_TLS)
        return w ? w : SMTP_WANT_TLS;
    if (awaiting_reply(s))
        w |= SMTP_WANT_READ;
    return w;
}

void smtp_tls_started(smtp *s)
{
    s->tls_active = true;
    /* RFC 3207 section 4.2: forget everything learnt before TLS. */
    enter_ehlo(s);
}

void smtp_tls_wrapped(smtp *s)
{
    s->tls_active = true;
}

bool smtp_idle(const smtp *s)
{
    return s->state == SMTP_IDLE;
}

bool smtp_next(smtp *s, hato_message *m)
{
    if (s->state != SMTP_IDLE)
        return false;
    s->msg = m;
    error_clear(&s->err);
    s->mail_refused = false;
    s->settled = false;
    enter_envelope(s);
    return true;
}

void smtp_quit(smtp *s)
{
    if (s->state == SMTP_IDLE)
        enter_quit(s);
}

void smtp_eof(smtp *s)
{
    if (s->state == SMTP_QUIT || s->state == SMTP_DONE || s->state == SMTP_IDLE) {
        smtp_set_state(s, SMTP_DONE);
        return;
    }
    if (s->state == SMTP_BODY || s->state == SMTP_DOT)
        smtp_fail(s, HATO_E_NETWORK, HATO_LAYER_TRANSPORT, true,
                  "%s closed the connection in the middle of the message; it was not delivered",
                  s->opt->host);
    else
        smtp_fail(s, HATO_E_NETWORK, HATO_LAYER_TRANSPORT, true,
                  "%s closed the connection during %s", s->opt->host, state_names[s->state]);
}

hato_timeout smtp_timeout_kind(const smtp *s)
{
    switch (s->state) {
    case SMTP_STARTTLS:
    case SMTP_TLS: return HATO_TIMEOUT_STARTTLS;
    case SMTP_ENVELOPE:
        if (s->env_answered == 0)
            return HATO_TIMEOUT_MAIL;
        return s->env_answered <= s->msg->nrcpts ? HATO_TIMEOUT_RCPT : HATO_TIMEOUT_DATA_INIT;
    case SMTP_BODY: return HATO_TIMEOUT_DATA_XFER;
    case SMTP_DOT: return HATO_TIMEOUT_DATA_DONE;
    case SMTP_RSET:
    case SMTP_IDLE:
    case SMTP_QUIT:
    case SMTP_DONE: return HATO_TIMEOUT_QUIT;
    default: return HATO_TIMEOUT_HELO;
    }
}

/* Postfix's key for each timeout: the setting a user changes. */
static const char *const timeout_keys[HATO_TIMEOUT_COUNT_] = {
    [HATO_TIMEOUT_CONNECT] = "smtp_connect_timeout",
    [HATO_TIMEOUT_HELO] = "smtp_helo_timeout",
    [HATO_TIMEOUT_STARTTLS] = "smtp_starttls_timeout",
    [HATO_TIMEOUT_MAIL] = "smtp_mail_timeout",
    [HATO_TIMEOUT_RCPT] = "smtp_rcpt_timeout",
    [HATO_TIMEOUT_DATA_INIT] = "smtp_data_init_timeout",
    [HATO_TIMEOUT_DATA_XFER] = "smtp_data_xfer_timeout",
    [HATO_TIMEOUT_DATA_DONE] = "smtp_data_done_timeout",
    [HATO_TIMEOUT_QUIT] = "smtp_quit_timeout",
};

const char *smtp_timeout_key(hato_timeout kind)
{
    return (unsigned)kind < HATO_TIMEOUT_COUNT_ ? timeout_keys[kind] : "";
}

void smtp_timed_out(smtp *s, unsigned ms)
{
    if (s->state == SMTP_QUIT || s->state == SMTP_IDLE) {
        /* The message is already settled; a server slow to say goodbye
         * changes nothing. */
        smtp_set_state(s, SMTP_DONE);
        return;
    }
    smtp_fail(s, HATO_E_TIMEOUT, HATO_LAYER_TRANSPORT, true,
              "timed out: %s did not answer within %u s during %s (%s)", s->opt->host,
              (ms + 999) / 1000, state_names[s->state], timeout_keys[smtp_timeout_kind(s)]);
}

const hato_error *smtp_error(const smtp *s)
{
    return error_is_set(&s->err) ? &s->err : NULL;
}

/* ---- channel binding (set by session.c after the TLS handshake) ---- */

void smtp_set_channel_binding(smtp *s, const char *type, const unsigned char *data, size_t len)
{
    unsigned char *dst;
    size_t *dst_len;
    if (strcmp(type, "tls-exporter") == 0) {
        dst = s->cb_exporter;
        dst_len = &s->cb_exporter_len;
    } else if (strcmp(type, "tls-unique") == 0) {
        dst = s->cb_unique;
        dst_len = &s->cb_unique_len;
    } else {
        return;
    }
    secret_wipe(dst, SMTP_CB_MAX);
    *dst_len = 0;
    if (len == 0 || len > SMTP_CB_MAX)
        return;
    memcpy(dst, data, len);
    *dst_len = len;
}
