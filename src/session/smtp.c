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
    SMTP_QUIT,
    SMTP_DONE,
} smtp_state;

static const char *const state_names[] = {
    "greeting", "ehlo", "helo", "starttls", "tls-handshake", "auth",
    "envelope", "body", "end-of-data", "quit", "done",
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

    /* Envelope: command 0 is MAIL, 1..n the RCPTs, n+1 DATA. */
    bool pipelining;
    size_t env_sent, env_answered;
    bool mail_refused;
    hato_error first_refusal; /* why the envelope failed, kept for the error */

    body_encoder body;
    bool body_done;
    bool quit_sent;

    hato_error err;
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

void smtp_fail(smtp *s, hato_code code, hato_layer layer, bool temporary, const char *fmt, ...)
{
    if (error_is_set(&s->err) || s->state == SMTP_DONE)
        return;
    error_clear(&s->err);
    s->err.code = code;
    s->err.layer = layer;
    s->err.temporary = temporary;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err.message, sizeof s->err.message, fmt, ap);
    va_end(ap);
    log_line(s->log, HATO_LOG_DEBUG, "smtp: failed in %s: %s", state_names[s->state],
             s->err.message);
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

static void enter_auth(smtp *s)
{
    const hato_options *o = s->opt;
    char err[512];
    if (s->sasl == NULL && (s->sasl = sasl_lib_new(err, sizeof err)) == NULL) {
        smtp_fail(s, HATO_E_SASL, HATO_LAYER_SASL, true, "%s", err);
        return;
    }
    unsigned security = link_is_secure(s) ? o->sasl_tls_link | SASL_LINK_TLS : o->sasl_plain_link;
    char why[1024];
    if (!sasl_select(s->caps.auth, o->mech_filter, sasl_lib_mechanisms(s->sasl), security,
                     o->password != NULL, s->mech, why, sizeof why)) {
        /* Postfix defers here (4.7.0): the settings may be fixed before
         * the message expires, so nothing is lost. */
        error_set(&s->err, HATO_E_AUTH_MECH, HATO_LAYER_SASL, true,
                  "cannot authenticate to %s: %s", o->host, why);
        enter_quit(s);
        return;
    }
    s->auth = sasl_exchange_new(s->sasl, s->mech, o->user, o->password, o->host, err, sizeof err);
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
    if (initial != NULL)
        /* RFC 4954 section 4: "=" stands for an empty initial response. */
        send_line(s, trace, "AUTH %s %s", s->mech, initial[0] ? initial : "=");
    else
        send_line(s, trace, "AUTH %s", s->mech);
    secret_free(initial);
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
    if (r->code == 220)
        enter_ehlo(s);
    else
        fail_reply(s, HATO_E_REPLY, r, "the server refused the connection");
}

static void on_ehlo(smtp *s, const reply *r)
{
    if (reply_class(r) == 2) {
        ehlo_parse(&s->caps, r);
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

static void on_auth(smtp *s, const reply *r)
{
    char err[512];
    if (r->code == 334) {
        char *response = NULL;
        const char *challenge = r->nlines > 0 ? r->lines[0] : "";
        sasl_status st = sasl_exchange_step(s->auth, challenge, &response, err, sizeof err);
        s->auth_last = st;
        if (st == SASL_FAIL) {
            /* RFC 4954 section 4: "*" cancels the exchange. */
            send_line(s, NULL, "*");
            error_set(&s->err, HATO_E_SASL, HATO_LAYER_SASL, true,
                      "SASL %s with %s failed: %s", s->mech, s->opt->host, err);
            enter_quit(s);
            return;
        }
        send_line(s, "[redacted]", "%s", response ? response : "");
        secret_free(response);
        return;
    }
    sasl_exchange_free(s->auth);
    s->auth = NULL;
    if (reply_class(r) == 2 && s->auth_last != SASL_DONE && strncmp(s->mech, "SCRAM-", 6) == 0) {
        /* RFC 5802 section 5: the server proves it knows the password in
         * its final message; a server that skips it may be an impostor. */
        error_set(&s->err, HATO_E_AUTH, HATO_LAYER_SASL, true,
                  "%s accepted %s without proving it knows the password (no SCRAM "
                  "server signature); not sending", s->opt->host, s->mech);
        enter_quit(s);
        return;
    }
    if (reply_class(r) == 2) {
        log_line(s->log, HATO_LOG_INFO, "authenticated to %s as %s with %s", s->opt->host,
                 s->opt->user, s->mech);
        enter_envelope(s);
        return;
    }
    char what[256];
    snprintf(what, sizeof what, "authentication as %s with %s failed at %s", s->opt->user,
             s->mech, s->opt->host);
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
        if (r->code == 354) {
            /* The server wants data we will not send: an empty message
             * closes the transaction; the refusal is reported below. */
            buf_append(&s->out, ".\r\n", 3);
            log_line(s->log, HATO_LOG_TRACE, "> .");
        }
        if (s->mail_refused)
            s->err = s->first_refusal;
        else if (message_accepted(m) == 0)
            error_set(&s->err, HATO_E_RECIPIENTS, HATO_LAYER_SMTP,
                      m->rcpts[0].reply_code / 100 == 4,
                      "the server refused every recipient; first: <%s>: %d %s",
                      m->rcpts[0].address, m->rcpts[0].reply_code, m->rcpts[0].text);
        else
            error_set_reply(&s->err, HATO_E_REPLY, r, "DATA refused");
        if (s->err.code == HATO_E_RECIPIENTS) {
            s->err.reply_code = m->rcpts[0].reply_code;
            snprintf(s->err.enhanced, sizeof s->err.enhanced, "%s", m->rcpts[0].enhanced);
            snprintf(s->err.server_text, sizeof s->err.server_text, "%s", m->rcpts[0].text);
        }
        enter_quit(s);
        return;
    }
    if (s->pipelining)
        return;
    /* One command at a time: decide whether the next one is worth sending. */
    if (s->mail_refused) {
        s->err = s->first_refusal;
        enter_quit(s);
    } else if (s->env_sent == envelope_total(s) - 1 && message_accepted(m) == 0) {
        /* Every RCPT refused: DATA would only be refused too. */
        error_set(&s->err, HATO_E_RECIPIENTS, HATO_LAYER_SMTP, m->rcpts[0].reply_code / 100 == 4,
                  "the server refused every recipient; first: <%s>: %d %s",
                  m->rcpts[0].address, m->rcpts[0].reply_code, m->rcpts[0].text);
        s->err.reply_code = m->rcpts[0].reply_code;
        snprintf(s->err.enhanced, sizeof s->err.enhanced, "%s", m->rcpts[0].enhanced);
        snprintf(s->err.server_text, sizeof s->err.server_text, "%s", m->rcpts[0].text);
        enter_quit(s);
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
        enter_quit(s);
        return;
    }
    fail_reply(s, HATO_E_REPLY, r, "message refused at end of data");
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
    case SMTP_QUIT: smtp_set_state(s, SMTP_DONE); break;
    case SMTP_TLS:
    case SMTP_BODY:
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
    reply_parser_free(&s->parser);
    /* The output may hold an AUTH line. */
    buf_free_wipe(&s->out);
    sasl_exchange_free(s->auth);
    sasl_lib_free(s->sasl);
    free(s);
}

static bool awaiting_reply(const smtp *s)
{
    switch (s->state) {
    case SMTP_ENVELOPE: return s->env_answered < s->env_sent;
    case SMTP_TLS:
    case SMTP_BODY:
    case SMTP_DONE: return false;
    default: return true;
    }
}

size_t smtp_input(smtp *s, const char *data, size_t len)
{
    size_t used = 0;
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
        if (ok && s->pipelining) {
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
    if (s->state == SMTP_DONE)
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

void smtp_eof(smtp *s)
{
    if (s->state == SMTP_QUIT || s->state == SMTP_DONE) {
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
    if (s->state == SMTP_QUIT) {
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
