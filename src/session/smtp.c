/*
 * smtp.c - the SMTP client state machine (RFC 5321, 3207, 2920): the
 * connection, from greeting to QUIT, and the dispatch of every reply.
 *
 * Each state has an entry action that writes its command, and every
 * command records the reply it awaits (smtp_command); a reply goes to the
 * handler of the command it answers.  smtp_set_state() is the only way the
 * state changes, so every transition shows in the trace.  AUTH is in
 * auth.c, the mail transaction in transaction.c.
 */
#include "session/smtp_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/secret.h"

/* Commands are short and the body goes out in pieces, so the output never
 * needs more than a body piece plus an envelope. */
#define OUT_LIMIT (1024 * 1024)
/* RFC 4954 section 4: an AUTH line may reach 12288 octets. */
#define LINE_MAX_OUT 12288

static const char *const state_names[] = {
    "greeting", "ehlo", "helo", "starttls", "tls-handshake", "auth",
    "envelope", "body", "end-of-data", "rset", "idle", "quit", "done",
};

const char *smtp_state_label(smtp_state st)
{
    return state_names[st];
}

void smtp_set_state(smtp *s, smtp_state next)
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

bool smtp_probing(const smtp *s)
{
    return s->report != NULL;
}

void smtp_set_probe(smtp *s, hato_probe_fn fn, void *user)
{
    s->report = fn;
    s->report_user = user;
}

/* ------------------------------------------------------------------ */
/* Awaited replies                                                    */

static void expect_push(smtp *s, smtp_expect kind)
{
    if (s->pending_runs > 0) {
        unsigned tail = (s->pending_head + s->pending_runs - 1) % SMTP_PENDING_RUNS;
        if (s->pending[tail].kind == kind) {
            s->pending[tail].count++;
            s->awaiting++;
            return;
        }
    }
    if (s->pending_runs == SMTP_PENDING_RUNS) {
        /* More kinds in flight than any command sequence makes. */
        smtp_fail(s, HATO_E_PROTOCOL, HATO_LAYER_SMTP, true,
                  "internal error: too many kinds of pipelined commands");
        return;
    }
    unsigned slot = (s->pending_head + s->pending_runs) % SMTP_PENDING_RUNS;
    s->pending[slot].kind = kind;
    s->pending[slot].count = 1;
    s->pending_runs++;
    s->awaiting++;
}

void smtp_await(smtp *s, smtp_expect kind)
{
    expect_push(s, kind);
}

static smtp_expect expect_pop(smtp *s)
{
    smtp_expect kind = s->pending[s->pending_head].kind;
    if (--s->pending[s->pending_head].count == 0) {
        s->pending_head = (s->pending_head + 1) % SMTP_PENDING_RUNS;
        s->pending_runs--;
    }
    s->awaiting--;
    return kind;
}

static smtp_expect expect_next(const smtp *s)
{
    return s->pending[s->pending_head].kind;
}

/* ------------------------------------------------------------------ */
/* Output and failure                                                 */

void smtp_command(smtp *s, smtp_expect kind, const char *trace, const char *fmt, ...)
{
    char line[LINE_MAX_OUT + 3];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 2) {
        secret_wipe(line, sizeof line);
        smtp_fail(s, HATO_E_ARGUMENT, HATO_LAYER_SMTP, false,
                  "command line longer than %d bytes", LINE_MAX_OUT);
        return;
    }
    log_line(s->log, HATO_LOG_TRACE, "> %s", trace ? trace : line);
    memcpy(line + n, "\r\n", 2);
    bool ok = buf_append(&s->out, line, (size_t)n + 2);
    secret_wipe(line, (size_t)n + 2);
    if (!ok) {
        smtp_fail(s, HATO_E_NOMEM, HATO_LAYER_SMTP, true, "out of memory for the output buffer");
        return;
    }
    expect_push(s, kind);
}

static void trace_reply(const smtp *s, const reply *r, smtp_expect kind)
{
    if (!log_wants(s->log, HATO_LOG_TRACE))
        return;
    for (size_t i = 0; i < r->nlines; i++) {
        char sep = i + 1 < r->nlines ? '-' : ' ';
        /* SASL challenges are not shown: they may carry what a secret is
         * derived from (RFC 4954 section 4). */
        if (kind == EXPECT_AUTH && r->code == 334)
            log_line(s->log, HATO_LOG_TRACE, "< %d%c[redacted]", r->code, sep);
        else
            log_line(s->log, HATO_LOG_TRACE, "< %d%c%s%s%s", r->code, sep, r->enhanced,
                     r->enhanced[0] ? " " : "", r->lines[i]);
    }
}

/* Ends politely: QUIT when the connection can still carry it. */
void smtp_enter_quit(smtp *s)
{
    smtp_set_state(s, SMTP_QUIT);
    if (!s->quit_sent) {
        smtp_command(s, EXPECT_QUIT, NULL, "QUIT");
        s->quit_sent = true;
    }
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

void smtp_fail_reply(smtp *s, hato_code code, const reply *r, const char *what)
{
    error_set_reply(&s->err, code, r, "%s", what);
    log_line(s->log, HATO_LOG_DEBUG, "smtp: %s", s->err.message);
    smtp_enter_quit(s);
}

/* ------------------------------------------------------------------ */
/* The connection                                                     */

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

static void enter_ehlo(smtp *s)
{
    memset(&s->caps, 0, sizeof s->caps);
    smtp_set_state(s, SMTP_EHLO);
    smtp_command(s, EXPECT_EHLO, NULL, "EHLO %s", s->helo_name);
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
        smtp_enter_quit(s);
        return;
    }
    /* The capabilities are final here: a message this server cannot take
     * fails before the login, so nothing at all is sent for it. */
    if (s->report == NULL && !txn_plan(s))
        return;
    if (o->user != NULL) {
        if (s->caps.flags & EHLO_AUTH) {
            auth_enter(s);
            return;
        }
        log_line(s->log, HATO_LOG_WARNING,
                 "%s offers no AUTH%s; sending without authentication", o->host,
                 s->tls_active ? "" : " before TLS");
    }
    txn_start(s);
}

static void on_greeting(smtp *s, const reply *r)
{
    char text[512];
    reply_join(r, text, sizeof text);
    smtp_report(s, "greeting: %d %s", r->code, text);
    if (r->code == 220)
        enter_ehlo(s);
    else
        smtp_fail_reply(s, HATO_E_REPLY, r, "the server refused the connection");
}

static void on_ehlo(smtp *s, const reply *r)
{
    if (reply_class(r) == 2) {
        ehlo_parse(&s->caps, r);
        report_capabilities(s, r);
        unsigned dropped = s->caps.flags & s->opt->discard_ehlo;
        if (dropped != 0) {
            log_line(s->log, HATO_LOG_DEBUG, "ehlo: treating some offers as absent "
                     "(smtp_discard_ehlo_keywords)");
            s->caps.flags &= ~dropped;
            if (dropped & EHLO_AUTH)
                s->caps.auth[0] = '\0';
        }
        const hato_options *o = s->opt;
        if (!s->tls_active && o->tls_level >= HATO_TLS_MAY && (s->caps.flags & EHLO_STARTTLS)) {
            smtp_set_state(s, SMTP_STARTTLS);
            smtp_command(s, EXPECT_STARTTLS, NULL, "STARTTLS");
            return;
        }
        enter_session(s);
    } else if (reply_class(r) == 5) {
        /* RFC 5321 section 3.2: a server that does not know EHLO gets HELO. */
        memset(&s->caps, 0, sizeof s->caps);
        smtp_set_state(s, SMTP_HELO);
        smtp_command(s, EXPECT_HELO, NULL, "HELO %s", s->helo_name);
    } else {
        smtp_fail_reply(s, HATO_E_REPLY, r, "EHLO refused");
    }
}

static void on_helo(smtp *s, const reply *r)
{
    if (reply_class(r) == 2)
        enter_session(s);
    else
        smtp_fail_reply(s, HATO_E_REPLY, r, "HELO refused");
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
    smtp_fail_reply(s, HATO_E_TLS, r, "STARTTLS refused");
}

static void on_rset(smtp *s, const reply *r)
{
    /* A RSET sent before another AUTH attempt (auth.c) is answered while
     * that goes on; only the one that ends a transaction leads to idle. */
    if (s->state != SMTP_RSET)
        return;
    if (reply_class(r) == 2)
        smtp_set_state(s, SMTP_IDLE);
    else
        smtp_enter_quit(s);
}

/* What each awaited reply answers, as a person reads it. */
static const char *const expect_what[] = {
    [EXPECT_GREETING] = "the connection", [EXPECT_EHLO] = "EHLO", [EXPECT_HELO] = "HELO",
    [EXPECT_STARTTLS] = "STARTTLS", [EXPECT_AUTH] = "AUTH", [EXPECT_MAIL] = "MAIL FROM",
    [EXPECT_RCPT] = "RCPT TO", [EXPECT_DATA] = "DATA", [EXPECT_BDAT] = "BDAT",
    [EXPECT_DOT] = "the end of data", [EXPECT_RSET] = "RSET", [EXPECT_QUIT] = "QUIT",
};

/* RFC 5321 section 3.8: 421 says the server is closing the connection, so
 * the replies still awaited will never come.  Found by the fault matrix
 * (tests/faults): handled as any 4xx, a 421 to a RCPT let the next command
 * go out and the connection's end was given as the reason ("closed the
 * connection during envelope"), and one in a pipelined group was taken
 * for an unanswered end of data ("may or may not have been delivered",
 * though the server refused the group before its data).  Called after the
 * reply's own handler has recorded it (a recipient keeps its own reply, a
 * refused sender stays the reason): nothing more is sent, and unless the
 * handler settled on a reason, the 421 is the reason. */
static void on_closing(smtp *s, const reply *r, smtp_expect kind)
{
    if (!error_is_set(&s->err) && !s->settled)
        error_set_reply(&s->err, HATO_E_REPLY, r, "%s is closing the connection (in reply to %s)",
                        s->opt->host, expect_what[kind]);
    smtp_fail(s, HATO_E_REPLY, HATO_LAYER_SMTP, true, "%s closed the connection with %d",
              s->opt->host, r->code);
}

static void on_reply(smtp *s, const reply *r)
{
    smtp_expect kind = expect_pop(s);
    trace_reply(s, r, kind);
    switch (kind) {
    case EXPECT_GREETING: on_greeting(s, r); break;
    case EXPECT_EHLO: on_ehlo(s, r); break;
    case EXPECT_HELO: on_helo(s, r); break;
    case EXPECT_STARTTLS: on_starttls(s, r); break;
    case EXPECT_AUTH: auth_on_reply(s, r); break;
    case EXPECT_MAIL:
    case EXPECT_RCPT:
    case EXPECT_DATA:
    case EXPECT_BDAT:
    case EXPECT_DOT: txn_on_reply(s, kind, r); break;
    case EXPECT_RSET: on_rset(s, r); break;
    case EXPECT_QUIT: smtp_set_state(s, SMTP_DONE); break;
    }
    /* A 421 greeting is a refusal of its own (on_greeting); one to QUIT
     * is the goodbye. */
    if (r->code == 421 && kind != EXPECT_GREETING && kind != EXPECT_QUIT)
        on_closing(s, r, kind);
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
    expect_push(s, EXPECT_GREETING);
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
    auth_free(s);
    free(s);
}

size_t smtp_input(smtp *s, const char *data, size_t len)
{
    size_t used = 0;
    if (s->state == SMTP_IDLE && s->awaiting == 0) {
        /* A server speaks to an idle client only to hang up (421 on its
         * idle timeout): the connection is over, the last message's
         * outcome stands. */
        log_line(s->log, HATO_LOG_DEBUG, "smtp: %s spoke while idle: closing", s->opt->host);
        smtp_set_state(s, SMTP_DONE);
        return len;
    }
    while (used < len && s->state != SMTP_DONE) {
        if (s->awaiting == 0 || s->state == SMTP_TLS) {
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

buf *smtp_output(smtp *s)
{
    txn_pump(s);
    return &s->out;
}

unsigned smtp_want(const smtp *s)
{
    unsigned w = 0;
    if (buf_size(&s->out) > 0 || txn_wants_write(s))
        w |= SMTP_WANT_WRITE;
    if (s->state == SMTP_DONE || (s->state == SMTP_IDLE && s->awaiting == 0))
        return w ? w : SMTP_WANT_DONE;
    if (s->state == SMTP_TLS)
        return w ? w : SMTP_WANT_TLS;
    if (s->awaiting > 0)
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
    return s->state == SMTP_IDLE && s->awaiting == 0;
}

bool smtp_next(smtp *s, hato_message *m)
{
    if (!smtp_idle(s))
        return false;
    s->msg = m;
    error_clear(&s->err);
    s->settled = false;
    /* Logged in already: this transaction is not behind an AUTH, so its
     * content need not wait for one (transaction.c, may_pump). */
    s->auth_pipelined = false;
    if (txn_plan(s))
        txn_start(s);
    return true;
}

void smtp_quit(smtp *s)
{
    if (smtp_idle(s))
        smtp_enter_quit(s);
}

void smtp_eof(smtp *s)
{
    if (s->state == SMTP_QUIT || s->state == SMTP_DONE || smtp_idle(s) || s->settled) {
        smtp_set_state(s, SMTP_DONE);
        return;
    }
    if (s->state == SMTP_BODY)
        smtp_fail(s, HATO_E_NETWORK, HATO_LAYER_TRANSPORT, true,
                  "%s closed the connection in the middle of the message; it was not delivered",
                  s->opt->host);
    else if (s->state == SMTP_DOT)
        /* RFC 1047: the end of data went out, its answer did not come. */
        smtp_fail(s, HATO_E_NETWORK, HATO_LAYER_TRANSPORT, true,
                  "%s closed the connection after the end of the message without answering "
                  "it; the message may or may not have been delivered", s->opt->host);
    else
        smtp_fail(s, HATO_E_NETWORK, HATO_LAYER_TRANSPORT, true,
                  "%s closed the connection during %s", s->opt->host, state_names[s->state]);
}

hato_timeout smtp_timeout_kind(const smtp *s)
{
    if (s->state == SMTP_BODY && txn_wants_write(s))
        return HATO_TIMEOUT_DATA_XFER;
    if (s->awaiting == 0)
        return s->state == SMTP_TLS ? HATO_TIMEOUT_STARTTLS : HATO_TIMEOUT_QUIT;
    switch (expect_next(s)) {
    case EXPECT_STARTTLS: return HATO_TIMEOUT_STARTTLS;
    case EXPECT_MAIL: return HATO_TIMEOUT_MAIL;
    case EXPECT_RCPT: return HATO_TIMEOUT_RCPT;
    case EXPECT_DATA: return HATO_TIMEOUT_DATA_INIT;
    case EXPECT_BDAT: return s->body_done ? HATO_TIMEOUT_DATA_DONE : HATO_TIMEOUT_DATA_XFER;
    case EXPECT_DOT: return HATO_TIMEOUT_DATA_DONE;
    case EXPECT_RSET:
    case EXPECT_QUIT: return HATO_TIMEOUT_QUIT;
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
    if (s->state == SMTP_QUIT || smtp_idle(s) || s->settled) {
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
