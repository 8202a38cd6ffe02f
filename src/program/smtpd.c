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
 *
 * AUTH (RFC 4954) runs in its own state: after a 334 the next line is a
 * SASL response, never a command.  Decoded responses live on the stack
 * and are wiped before the function returns, whatever the outcome.
 */
#include "smtpd.h"

#include <crypt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "wipe.h"

static const char *const state_names[SMTPD_STATE_COUNT_] = {
    "refused", "greeted", "ready", "mail", "rcpt", "data", "auth", "closed",
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
    {"VRFY", SMTPD_CMD_VRFY}, {"HELP", SMTPD_CMD_HELP}, {"AUTH", SMTPD_CMD_AUTH},
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
    case SMTPD_CMD_AUTH: {
        /* RFC 4954 section 4: AUTH mechanism [initial-response]; RFC 4422
         * section 3.1: a mechanism name is 1 to 20 of A-Z 0-9 - _. */
        const char *p = a;
        while (p < ae && *p != ' ')
            p++;
        c->mech = a;
        c->mech_len = (size_t)(p - a);
        if (c->mech_len == 0 || c->mech_len > 20)
            return parse_error(c, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        while (p < ae && *p == ' ')
            p++;
        if (p < ae) {
            c->initial = p;
            c->initial_len = (size_t)(ae - p);
            if (memchr(p, ' ', c->initial_len) != NULL)
                return parse_error(c, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        }
        return 0;
    }
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

/* An error reply: written, logged through refused (as logged, which may
 * say more than the client is told), counted.  Returns the action: CLOSE
 * once smtpd_hard_error_limit is reached. */
static enum smtpd_action refuse_log(struct smtpd *s, const char *command, const char *reply,
                                    const char *logged)
{
    out_line(s, "%s", reply);
    if (s->hooks.refused != NULL)
        s->hooks.refused(s->hooks.user, command, logged);
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

static enum smtpd_action refuse(struct smtpd *s, const char *command, const char *reply)
{
    return refuse_log(s, command, reply, reply);
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
    s->mech = SMTPD_MECH_NONE;
    s->authenticated = false;
    s->auth_user[0] = '\0';
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
    if (s->auth_offered)
        out_line(s, "250-AUTH PLAIN LOGIN");
    out_line(s, "250 ENHANCEDSTATUSCODES");
}

/* ------------------------------------------------------------------ */
/* AUTH                                                               */

static const char *mech_name(enum smtpd_mech m)
{
    return m == SMTPD_MECH_PLAIN ? "PLAIN" : m == SMTPD_MECH_LOGIN ? "LOGIN" : "?";
}

/* A user name hato can look up and log: 1 to SMTPD_MAX_USER bytes, no
 * control character, no ':' (the password file's separator). */
static bool user_ok(const unsigned char *u, size_t n)
{
    if (n == 0 || n > SMTPD_MAX_USER)
        return false;
    for (size_t i = 0; i < n; i++)
        if (u[i] < 0x20 || u[i] == 0x7f || u[i] == ':')
            return false;
    return true;
}

/* The user name as logged: at most 64 bytes, control characters as '?',
 * so a client cannot forge maillog lines through it. */
static void user_for_log(const unsigned char *u, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && i < 64 && k + 1 < cap; i++)
        out[k++] = (u[i] < 0x20 || u[i] == 0x7f) ? '?' : (char)u[i];
    out[k] = '\0';
}

/* The end of every exchange: back to READY, the mechanism forgotten
 * unless it succeeded. */
static void auth_end(struct smtpd *s, bool ok)
{
    if (!ok) {
        s->mech = SMTPD_MECH_NONE;
        s->auth_user[0] = '\0';
    }
    set_state(s, SMTPD_READY);
}

/* The user name and password (NUL-terminated; NULL to refuse without
 * asking) through the hook: 235, 535 (logged with the user name) or 454. */
static enum smtpd_action auth_check(struct smtpd *s, const unsigned char *user, size_t ulen,
                                    const char *password)
{
    char logged[300], shown[80];
    user_for_log(user, ulen, shown, sizeof shown);
    enum smtpd_auth_result r = SMTPD_AUTH_BAD;
    if (password != NULL && user_ok(user, ulen) && s->hooks.auth != NULL) {
        memmove(s->auth_user, user, ulen);
        s->auth_user[ulen] = '\0';
        r = s->hooks.auth(s->hooks.user, s->auth_user, password);
    }
    enum smtpd_mech m = s->mech;
    if (r == SMTPD_AUTH_OK) {
        s->authenticated = true;
        auth_end(s, true);
        out_line(s, "235 2.7.0 Authentication successful");
        return SMTPD_CONTINUE;
    }
    auth_end(s, false);
    if (r == SMTPD_AUTH_TEMPFAIL) {
        snprintf(logged, sizeof logged, "454 4.7.0 Temporary authentication failure "
                 "(sasl_method=%s, sasl_username=%s)", mech_name(m), shown);
        return refuse_log(s, "AUTH", "454 4.7.0 Error: temporary authentication failure; try "
                          "again later", logged);
    }
    snprintf(logged, sizeof logged, "535 5.7.8 Error: authentication failed (sasl_method=%s, "
             "sasl_username=%s)", mech_name(m), shown);
    return refuse_log(s, "AUTH", "535 5.7.8 Error: authentication failed", logged);
}

/* PLAIN's message (RFC 4616 section 2): [authzid] NUL authcid NUL passwd.
 * An authzid other than the user itself is refused: hato has no one who
 * may act for another. */
static enum smtpd_action auth_plain(struct smtpd *s, unsigned char *m, size_t n)
{
    unsigned char *nul1 = memchr(m, '\0', n);
    unsigned char *nul2 = nul1 ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - m)) : NULL;
    if (nul2 == NULL || memchr(nul2 + 1, '\0', n - (size_t)(nul2 + 1 - m)) != NULL) {
        auth_end(s, false);
        return refuse(s, "AUTH", "501 5.5.2 Error: malformed PLAIN response (RFC 4616: "
                                 "authzid NUL user NUL password)");
    }
    unsigned char *user = nul1 + 1;
    size_t ulen = (size_t)(nul2 - user), zlen = (size_t)(nul1 - m);
    char password[SMTPD_MAX_LINE];
    size_t plen = n - (size_t)(nul2 + 1 - m);
    memcpy(password, nul2 + 1, plen); /* plen < n <= SMTPD_MAX_LINE */
    password[plen] = '\0';
    bool proxy = zlen != 0 && (zlen != ulen || memcmp(m, user, ulen) != 0);
    enum smtpd_action a = auth_check(s, user, ulen, proxy ? NULL : password);
    wipe(password, sizeof password);
    return a;
}

/* One SASL response line (state SMTPD_AUTH). */
static enum smtpd_action auth_response(struct smtpd *s, const char *line, size_t len,
                                       bool too_long)
{
    if (too_long) {
        auth_end(s, false);
        return refuse(s, "AUTH", "500 5.5.6 Error: authentication exchange line is too long");
    }
    /* RFC 4954 section 4: "*" cancels the exchange. */
    if (len == 1 && line[0] == '*') {
        auth_end(s, false);
        return refuse(s, "AUTH", "501 5.7.0 Error: authentication cancelled");
    }
    unsigned char m[SMTPD_MAX_LINE];
    ptrdiff_t n = smtpd_base64_decode(line, len, m, sizeof m - 1); /* room for LOGIN's NUL */
    enum smtpd_action a;
    if (n < 0) {
        auth_end(s, false);
        a = refuse(s, "AUTH", "501 5.5.2 Error: cannot decode the response (not base64)");
    } else if (s->mech == SMTPD_MECH_PLAIN) {
        a = auth_plain(s, m, (size_t)n);
    } else if (s->auth_user[0] == '\0') { /* LOGIN, the user name */
        if (!user_ok(m, (size_t)n)) {
            a = auth_check(s, m, (size_t)n, NULL);
        } else {
            memcpy(s->auth_user, m, (size_t)n);
            s->auth_user[n] = '\0';
            out_line(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
            a = SMTPD_CONTINUE;
        }
    } else { /* LOGIN, the password */
        char user[SMTPD_MAX_USER + 1];
        size_t ulen = strlen(s->auth_user);
        memcpy(user, s->auth_user, ulen + 1);
        m[n] = '\0'; /* n < sizeof m: decoded with one byte spare */
        a = auth_check(s, (const unsigned char *)user, ulen, (const char *)m);
    }
    wipe(m, sizeof m);
    return a;
}

/* The AUTH command (RFC 4954 section 4), its initial response included. */
static enum smtpd_action auth_command(struct smtpd *s, const struct smtpd_command *c)
{
    if (!s->auth_offered)
        return refuse(s, "AUTH", "502 5.5.1 Error: command not implemented");
    if (s->state == SMTPD_GREETED)
        return refuse(s, "AUTH", "503 5.5.1 Error: send EHLO first");
    if (s->state != SMTPD_READY)
        return refuse(s, "AUTH", "503 5.5.1 Error: MAIL transaction in progress");
    if (s->authenticated)
        return refuse(s, "AUTH", "503 5.5.1 Error: already authenticated");
    if (c->mech_len == 5 && strncasecmp(c->mech, "PLAIN", 5) == 0)
        s->mech = SMTPD_MECH_PLAIN;
    else if (c->mech_len == 5 && strncasecmp(c->mech, "LOGIN", 5) == 0)
        s->mech = SMTPD_MECH_LOGIN;
    else
        return refuse(s, "AUTH", "504 5.5.4 Error: unsupported authentication mechanism; "
                                 "use PLAIN or LOGIN");
    s->auth_user[0] = '\0';
    set_state(s, SMTPD_AUTH);
    if (c->initial != NULL) {
        /* RFC 4954 section 4: "=" is an empty initial response. */
        if (c->initial_len == 1 && c->initial[0] == '=')
            return auth_response(s, "", 0, false);
        return auth_response(s, c->initial, c->initial_len, false);
    }
    if (s->mech == SMTPD_MECH_PLAIN)
        out_line(s, "334 "); /* RFC 4954 section 4: an empty challenge */
    else
        out_line(s, "334 VXNlcm5hbWU6"); /* "Username:" */
    return SMTPD_CONTINUE;
}

enum smtpd_action smtpd_line(struct smtpd *s, const char *line, size_t len, bool too_long)
{
    struct smtpd_command c;
    char reply[400];

    if (s->state == SMTPD_CLOSED || s->state == SMTPD_DATA)
        return SMTPD_CLOSE; /* the loop never feeds lines here */
    if (s->state == SMTPD_AUTH)
        return auth_response(s, line, len, too_long);
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
    case SMTPD_CMD_AUTH:
        return auth_command(s, &c);
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
        out_line(s, "214 2.0.0 Commands: EHLO HELO %sMAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
                 s->auth_offered ? "AUTH " : "");
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
        if (s->auth_offered && s->auth_required && !s->authenticated)
            return refuse(s, "MAIL", "530 5.7.0 Error: authentication required; use AUTH first "
                                     "(smtpd_sasl_auth_required)");
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

/* ------------------------------------------------------------------ */
/* base64 and the password file                                       */

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

ptrdiff_t smtpd_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        size_t pad = 0;
        for (size_t k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)in[i + k];
            if (ch == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = b64_value(ch)) < 0) {
                return -1; /* a character after '=', or not base64 */
            }
        }
        unsigned long w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
                          ((unsigned long)v[2] << 6) | (unsigned long)v[3];
        size_t n = 3 - pad;
        if (cap - o < n)
            return -1;
        out[o++] = (unsigned char)(w >> 16);
        if (n > 1)
            out[o++] = (unsigned char)(w >> 8);
        if (n > 2)
            out[o++] = (unsigned char)w;
    }
    return (ptrdiff_t)o;
}

/* Both strings compared in full, so the time does not tell how much of
 * a hash matched. */
static bool same_string(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

enum smtpd_auth_result smtpd_password_check(const char *text, size_t len, const char *user,
                                            const char *password)
{
    size_t ulen = strlen(user);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *next = eol ? eol + 1 : end;
        if ((size_t)(le - p) > ulen && p[ulen] == ':' && memcmp(p, user, ulen) == 0 &&
            p[0] != '#') {
            const char *h = p + ulen + 1, *he = h;
            while (he < le && *he != ':' && *he != '\r' && *he != ' ' && *he != '\t')
                he++;
            char hash[512];
            size_t hlen = (size_t)(he - h);
            /* "*" and "!" lock an account, as in /etc/shadow. */
            if (hlen == 0 || hlen >= sizeof hash || h[0] == '*' || h[0] == '!')
                return SMTPD_AUTH_BAD;
            memcpy(hash, h, hlen);
            hash[hlen] = '\0';
            char *r = crypt(password, hash);
            /* libxcrypt fails with NULL or a "*0"/"*1" token that never
             * equals a real hash. */
            bool ok = r != NULL && r[0] != '*' && same_string(r, hash);
            if (r != NULL)
                wipe(r, strlen(r));
            return ok ? SMTPD_AUTH_OK : SMTPD_AUTH_BAD;
        }
        p = next;
    }
    return SMTPD_AUTH_BAD;
}
