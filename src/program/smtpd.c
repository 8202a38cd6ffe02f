/*
 * smtpd.c - the -bs server dialogue without I/O: the command parser, the
 * session state machine and the DATA decoder (smtpd.h).  smtpd_io.c is
 * the loop on standard input and output around them.
 *
 * One state setter traces every transition; each command is checked
 * against the state first (503), then its syntax (501/555), then handed
 * to the program's hooks.  Every 4xx/5xx reply counts as an error, and
 * smtpd_hard_error_limit of them end the session with 421, as Postfix's
 * smtpd does.
 */
#include "smtpd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const state_names[SMTPD_STATE_COUNT_] = {
    "refused", "greeted", "ready", "mail", "rcpt", "data", "closed",
};

const char *smtpd_state_name(enum smtpd_state s)
{
    return (unsigned)s < SMTPD_STATE_COUNT_ ? state_names[s] : "?";
}

/* ------------------------------------------------------------------ */
/* The parser                                                         */

static const struct {
    const char *name;
    enum smtpd_verb verb;
} verbs[] = {
    {"EHLO", SMTPD_CMD_EHLO}, {"HELO", SMTPD_CMD_HELO}, {"MAIL", SMTPD_CMD_MAIL}, {"RCPT", SMTPD_CMD_RCPT},
    {"DATA", SMTPD_CMD_DATA}, {"RSET", SMTPD_CMD_RSET}, {"NOOP", SMTPD_CMD_NOOP}, {"QUIT", SMTPD_CMD_QUIT},
    {"VRFY", SMTPD_CMD_VRFY}, {"HELP", SMTPD_CMD_HELP}, {"AUTH", SMTPD_CMD_NOT_OFFERED},
    {"STARTTLS", SMTPD_CMD_NOT_OFFERED}, {"EXPN", SMTPD_CMD_NOT_OFFERED}, {"BDAT", SMTPD_CMD_NOT_OFFERED},
    {"ETRN", SMTPD_CMD_NOT_OFFERED}, {"TURN", SMTPD_CMD_NOT_OFFERED},
};

static int parse_error(struct smtpd_command *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int parse_error(struct smtpd_command *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reply, sizeof c->reply, fmt, ap);
    va_end(ap);
    return -1;
}

/* The path in <...> at *p: copied to c->path without the brackets and
 * without an RFC 5321 4.1.2 source route ("@a,@b:"), which is to be
 * ignored.  Returns 0 with *p after '>', or -1 with c->reply set. */
static int parse_path(const char **p, const char *end, struct smtpd_command *c, const char *usage)
{
    const char *s = *p;
    if (s == end || *s != '<')
        return parse_error(c, "501 5.5.4 Syntax: %s", usage);
    s++;
    size_t n = 0;
    bool quoted = false;
    while (s < end && (quoted || *s != '>')) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x80)
            return parse_error(c, "553 5.6.7 Error: a non-ASCII address needs SMTPUTF8, "
                                  "which this server does not offer");
        if (ch < 0x20 || ch == 0x7f || (ch == ' ' && !quoted) || (ch == '<' && !quoted))
            return parse_error(c, "501 5.1.7 Error: bad character in the address; syntax: %s",
                               usage);
        if (ch == '\\' && quoted && s + 1 < end) {
            if (n + 2 > SMTPD_MAX_PATH - 2)
                goto too_long;
            c->path[n++] = *s++;
        } else if (ch == '"') {
            quoted = !quoted;
        }
        if (n + 1 > SMTPD_MAX_PATH - 2)
            goto too_long;
        c->path[n++] = *s++;
    }
    if (s == end)
        return parse_error(c, "501 5.5.4 Syntax: %s (no closing '>')", usage);
    c->path[n] = '\0';
    if (c->path[0] == '@') {
        char *colon = strchr(c->path, ':');
        if (colon == NULL)
            return parse_error(c, "501 5.1.7 Error: bad source route in the address");
        memmove(c->path, colon + 1, strlen(colon + 1) + 1);
    }
    *p = s + 1;
    return 0;
too_long:
    return parse_error(c, "501 5.1.7 Error: the address is longer than %d characters "
                          "(RFC 5321 4.5.3.1.3)", SMTPD_MAX_PATH - 2);
}

/* MAIL's ESMTP parameters (RFC 5321 4.1.2 Mail-parameters). */
static int parse_mail_params(const char *s, const char *end, struct smtpd_command *c)
{
    while (s < end) {
        while (s < end && *s == ' ')
            s++;
        if (s == end)
            break;
        const char *kw = s;
        while (s < end && *s != ' ' && *s != '=')
            s++;
        size_t kwlen = (size_t)(s - kw);
        const char *val = NULL;
        size_t vlen = 0;
        if (s < end && *s == '=') {
            val = ++s;
            while (s < end && *s != ' ')
                s++;
            vlen = (size_t)(s - val);
        }
        if (kwlen == 4 && strncasecmp(kw, "SIZE", 4) == 0 && val != NULL) {
            unsigned long long v = 0;
            if (vlen == 0 || vlen > 19)
                return parse_error(c, "501 5.5.4 Bad SIZE parameter: use SIZE=<bytes>");
            for (size_t i = 0; i < vlen; i++) {
                if (val[i] < '0' || val[i] > '9')
                    return parse_error(c, "501 5.5.4 Bad SIZE parameter: use SIZE=<bytes>");
                v = v * 10 + (unsigned)(val[i] - '0');
            }
            c->has_size = true;
            c->size = v;
        } else if (kwlen == 4 && strncasecmp(kw, "BODY", 4) == 0 && val != NULL) {
            if (vlen == 4 && strncasecmp(val, "7BIT", 4) == 0)
                c->body = SMTPD_BODY_7BIT;
            else if (vlen == 8 && strncasecmp(val, "8BITMIME", 8) == 0)
                c->body = SMTPD_BODY_8BITMIME;
            else
                return parse_error(c, "501 5.5.4 Bad BODY parameter: use BODY=7BIT or "
                                      "BODY=8BITMIME");
        } else {
            return parse_error(c, "555 5.5.4 Unsupported option: %.*s", (int)(kwlen > 40 ? 40 : kwlen),
                               kw);
        }
    }
    return 0;
}

int smtpd_parse(const char *line, size_t len, struct smtpd_command *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return parse_error(c, "500 5.5.2 Error: control character in the command line");
    }
    const char *end = line + len;
    const char *v = line;
    while (v < end && *v != ' ')
        v++;
    size_t vlen = (size_t)(v - line);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strlen(verbs[i].name) == vlen && strncasecmp(verbs[i].name, line, vlen) == 0)
            c->verb = verbs[i].verb;
    const char *a = v;
    while (a < end && (*a == ' ' || *a == '\t'))
        a++;
    const char *ae = end;
    while (ae > a && (ae[-1] == ' ' || ae[-1] == '\t'))
        ae--;
    c->arg = a;
    c->arg_len = (size_t)(ae - a);

    switch (c->verb) {
    case SMTPD_CMD_EHLO:
    case SMTPD_CMD_HELO:
        if (c->arg_len == 0 || memchr(a, ' ', c->arg_len) != NULL)
            return parse_error(c, "501 5.5.4 Syntax: %s hostname",
                               c->verb == SMTPD_CMD_EHLO ? "EHLO" : "HELO");
        return 0;
    case SMTPD_CMD_DATA:
    case SMTPD_CMD_RSET:
    case SMTPD_CMD_QUIT:
        if (c->arg_len != 0)
            return parse_error(c, "501 5.5.4 Syntax: %s (without arguments)",
                               c->verb == SMTPD_CMD_DATA ? "DATA" : c->verb == SMTPD_CMD_RSET ? "RSET"
                                                                                     : "QUIT");
        return 0;
    case SMTPD_CMD_VRFY:
        if (c->arg_len == 0)
            return parse_error(c, "501 5.5.4 Syntax: VRFY address");
        return 0;
    case SMTPD_CMD_MAIL:
    case SMTPD_CMD_RCPT: {
        bool mail = c->verb == SMTPD_CMD_MAIL;
        const char *usage = mail ? "MAIL FROM:<address>" : "RCPT TO:<address>";
        const char *kw = mail ? "FROM:" : "TO:";
        size_t kwlen = strlen(kw);
        if (c->arg_len < kwlen || strncasecmp(a, kw, kwlen) != 0)
            return parse_error(c, "501 5.5.4 Syntax: %s", usage);
        const char *p = a + kwlen;
        while (p < ae && *p == ' ') /* not RFC 5321, but common: "FROM: <a@b>" */
            p++;
        if (parse_path(&p, ae, c, usage) != 0)
            return -1;
        if (p < ae && *p != ' ')
            return parse_error(c, "501 5.5.4 Syntax: %s", usage);
        if (mail)
            return parse_mail_params(p, ae, c);
        while (p < ae && *p == ' ')
            p++;
        if (p < ae) {
            const char *k = p;
            while (p < ae && *p != ' ' && *p != '=')
                p++;
            return parse_error(c, "555 5.5.4 Unsupported option: %.*s",
                               (int)((p - k) > 40 ? 40 : (p - k)), k);
        }
        return 0;
    }
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ */
/* The session                                                        */

/* The only way to change state. */
static void set_state(struct smtpd *s, enum smtpd_state to)
{
    if (s->hooks.trace != NULL && to != s->state)
        s->hooks.trace(s->hooks.user, s->state, to);
    s->state = to;
}

/* Appends one reply line (multi-line replies call it per line). */
static void out_line(struct smtpd *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void out_line(struct smtpd *s, const char *fmt, ...)
{
    size_t room = sizeof s->out - s->out_len;
    if (room < 3)
        return; /* the loop flushes long before this */
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(s->out + s->out_len, room - 2, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    size_t n = (size_t)k < room - 2 ? (size_t)k : room - 3;
    s->out_len += n;
    s->out[s->out_len++] = '\r';
    s->out[s->out_len++] = '\n';
}

static const char *verb_name(enum smtpd_verb v)
{
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (verbs[i].verb == v)
            return v == SMTPD_CMD_NOT_OFFERED ? "command" : verbs[i].name;
    return "command";
}

/* An error reply: written, logged through refused, counted.  Returns the
 * action: CLOSE once smtpd_hard_error_limit is reached. */
static enum smtpd_action refuse(struct smtpd *s, const char *command, const char *reply)
{
    out_line(s, "%s", reply);
    if (s->hooks.refused != NULL)
        s->hooks.refused(s->hooks.user, command, reply);
    s->errors++;
    if (s->error_limit > 0 && s->errors >= s->error_limit) {
        out_line(s, "421 4.7.0 %s Error: too many errors", s->hostname);
        if (s->hooks.refused != NULL)
            s->hooks.refused(s->hooks.user, "session", "421 4.7.0 too many errors "
                                                        "(smtpd_hard_error_limit)");
        set_state(s, SMTPD_CLOSED);
        return SMTPD_CLOSE;
    }
    return SMTPD_CONTINUE;
}

static void reset_transaction(struct smtpd *s)
{
    s->nrcpts = 0;
    if (s->hooks.reset != NULL)
        s->hooks.reset(s->hooks.user);
}

void smtpd_start(struct smtpd *s, bool refused, const char *why)
{
    s->errors = s->messages = s->nrcpts = 0;
    s->out_len = 0;
    s->state = refused ? SMTPD_REFUSED : SMTPD_GREETED;
    if (refused) {
        /* RFC 5321 3.1: a 554 greeting, then only QUIT is served. */
        char reply[300];
        snprintf(reply, sizeof reply, "554 5.7.1 %s ESMTP: %s", s->hostname, why);
        out_line(s, "%s", reply);
        if (s->hooks.refused != NULL)
            s->hooks.refused(s->hooks.user, "CONNECT", reply);
    } else {
        out_line(s, "220 %s ESMTP hato", s->hostname);
    }
}

static void ehlo_reply(struct smtpd *s, bool ehlo)
{
    if (!ehlo) {
        out_line(s, "250 %s", s->hostname);
        return;
    }
    out_line(s, "250-%s", s->hostname);
    out_line(s, "250-PIPELINING");
    if (s->size_limit > 0)
        out_line(s, "250-SIZE %llu", s->size_limit);
    else
        out_line(s, "250-SIZE");
    out_line(s, "250-8BITMIME");
    out_line(s, "250 ENHANCEDSTATUSCODES");
}

enum smtpd_action smtpd_line(struct smtpd *s, const char *line, size_t len, bool too_long)
{
    struct smtpd_command c;
    char reply[400];

    if (s->state == SMTPD_CLOSED || s->state == SMTPD_DATA)
        return SMTPD_CLOSE; /* the loop never feeds lines here */
    if (too_long) {
        snprintf(reply, sizeof reply, "500 5.5.2 Error: line too long (more than %d characters)",
                 SMTPD_MAX_LINE);
        return refuse(s, "command", reply);
    }
    int prc = smtpd_parse(line, len, &c);
    if (s->state == SMTPD_REFUSED) {
        if (prc == 0 && c.verb == SMTPD_CMD_QUIT) {
            out_line(s, "221 2.0.0 Bye");
            set_state(s, SMTPD_CLOSED);
            return SMTPD_CLOSE;
        }
        snprintf(reply, sizeof reply, "503 5.7.1 Error: access denied for %s; only QUIT is "
                 "accepted", s->client);
        return refuse(s, prc == 0 ? verb_name(c.verb) : "command", reply);
    }
    if (prc != 0)
        return refuse(s, verb_name(c.verb), c.reply);

    switch (c.verb) {
    case SMTPD_CMD_UNKNOWN:
        return refuse(s, "command", "500 5.5.2 Error: command not recognized");
    case SMTPD_CMD_NOT_OFFERED:
        return refuse(s, "command", "502 5.5.1 Error: command not implemented");
    case SMTPD_CMD_EHLO:
    case SMTPD_CMD_HELO:
        /* RFC 5321 4.1.4: EHLO in a transaction resets it. */
        if (s->state == SMTPD_MAIL || s->state == SMTPD_RCPT)
            reset_transaction(s);
        ehlo_reply(s, c.verb == SMTPD_CMD_EHLO);
        set_state(s, SMTPD_READY);
        return SMTPD_CONTINUE;
    case SMTPD_CMD_NOOP:
        out_line(s, "250 2.0.0 Ok");
        return SMTPD_CONTINUE;
    case SMTPD_CMD_HELP:
        out_line(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
        return SMTPD_CONTINUE;
    case SMTPD_CMD_VRFY:
        out_line(s, "252 2.5.2 Cannot VRFY; send the message and the relay decides");
        return SMTPD_CONTINUE;
    case SMTPD_CMD_QUIT:
        out_line(s, "221 2.0.0 Bye");
        set_state(s, SMTPD_CLOSED);
        return SMTPD_CLOSE;
    case SMTPD_CMD_RSET:
        if (s->state == SMTPD_MAIL || s->state == SMTPD_RCPT) {
            reset_transaction(s);
            set_state(s, SMTPD_READY);
        }
        out_line(s, "250 2.0.0 Ok");
        return SMTPD_CONTINUE;
    case SMTPD_CMD_MAIL: {
        if (s->state == SMTPD_GREETED)
            return refuse(s, "MAIL", "503 5.5.1 Error: send HELO/EHLO first");
        if (s->state != SMTPD_READY)
            return refuse(s, "MAIL", "503 5.5.1 Error: nested MAIL command");
        if (s->message_limit > 0 && s->messages >= s->message_limit) {
            snprintf(reply, sizeof reply, "452 4.7.0 Error: too many messages in one connection "
                     "(smtpd_client_message_rate_limit = %u); send the rest in a new connection",
                     s->message_limit);
            return refuse(s, "MAIL", reply);
        }
        if (s->size_limit > 0 && c.has_size && c.size > s->size_limit) {
            snprintf(reply, sizeof reply, "552 5.3.4 Error: message size %llu exceeds the limit "
                     "of %llu bytes (message_size_limit)", c.size, s->size_limit);
            return refuse(s, "MAIL", reply);
        }
        const char *r = s->hooks.mail ? s->hooks.mail(s->hooks.user, c.path) : NULL;
        if (r != NULL)
            return refuse(s, "MAIL", r);
        s->nrcpts = 0;
        out_line(s, "250 2.1.0 Ok");
        set_state(s, SMTPD_MAIL);
        return SMTPD_CONTINUE;
    }
    case SMTPD_CMD_RCPT: {
        if (s->state != SMTPD_MAIL && s->state != SMTPD_RCPT)
            return refuse(s, "RCPT", "503 5.5.1 Error: need MAIL command");
        if (c.path[0] == '\0')
            return refuse(s, "RCPT", "501 5.1.3 Error: empty recipient address <>");
        if (s->nrcpts >= SMTPD_MAX_RCPTS)
            return refuse(s, "RCPT", "452 4.5.3 Error: too many recipients");
        const char *r = s->hooks.rcpt ? s->hooks.rcpt(s->hooks.user, c.path) : NULL;
        if (r != NULL)
            return refuse(s, "RCPT", r);
        s->nrcpts++;
        out_line(s, "250 2.1.5 Ok");
        set_state(s, SMTPD_RCPT);
        return SMTPD_CONTINUE;
    }
    case SMTPD_CMD_DATA:
        if (s->state != SMTPD_RCPT)
            return refuse(s, "DATA", s->state == SMTPD_MAIL
                                         ? "503 5.5.1 Error: need RCPT command"
                                         : "503 5.5.1 Error: need MAIL command");
        out_line(s, "354 End data with <CR><LF>.<CR><LF>");
        set_state(s, SMTPD_DATA);
        return SMTPD_RECEIVE;
    }
    return SMTPD_CONTINUE;
}

void smtpd_data_done(struct smtpd *s, const char *reply)
{
    set_state(s, SMTPD_READY);
    if (reply[0] == '2') {
        s->messages++;
        out_line(s, "%s", reply);
    } else {
        out_line(s, "%s", reply);
        if (s->hooks.refused != NULL)
            s->hooks.refused(s->hooks.user, "DATA", reply);
    }
    reset_transaction(s);
}

void smtpd_timed_out(struct smtpd *s)
{
    out_line(s, "421 4.4.2 %s Error: timeout exceeded", s->hostname);
    if (s->hooks.refused != NULL)
        s->hooks.refused(s->hooks.user, "session", "421 4.4.2 timeout exceeded (smtpd_timeout)");
    set_state(s, SMTPD_CLOSED);
}

/* ------------------------------------------------------------------ */
/* DATA                                                               */

enum { D_BOL = 0, D_MID, D_CR, D_DOT, D_DOT_CR };

size_t smtpd_data_decode(struct smtpd_data *d, const char *in, size_t len, size_t *used,
                         char *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < len && !d->ended && cap - o >= 2) {
        char ch = in[i++];
        switch (d->state) {
        case D_BOL:
            if (ch == '.') {
                d->state = D_DOT;
                break;
            }
            /* fall through */
        case D_MID:
            if (ch == '\r') {
                d->state = D_CR;
            } else {
                out[o++] = ch;
                d->state = ch == '\n' ? D_BOL : D_MID; /* a bare LF ends a line too */
            }
            break;
        case D_CR:
            if (ch == '\n') {
                out[o++] = '\n';
                d->state = D_BOL;
            } else if (ch == '\r') {
                out[o++] = '\r';
            } else {
                out[o++] = '\r';
                out[o++] = ch;
                d->state = D_MID;
            }
            break;
        case D_DOT:
            /* RFC 5321 4.5.2: the first dot of a line is removed. */
            if (ch == '\r') {
                d->state = D_DOT_CR;
            } else if (ch == '\n') {
                d->ended = true;
            } else {
                out[o++] = ch;
                d->state = D_MID;
            }
            break;
        case D_DOT_CR:
            if (ch == '\n') {
                d->ended = true;
            } else {
                out[o++] = '\r';
                i--; /* seen again as the line's next byte */
                d->state = D_MID;
            }
            break;
        }
    }
    *used = i;
    return o;
}
