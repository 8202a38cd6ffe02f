/*
 * oauth.c - the client side of XOAUTH2 and OAUTHBEARER.
 *
 * XOAUTH2 is Google's (developers.google.com/gmail/imap/xoauth2-protocol),
 * also spoken by Microsoft 365; OAUTHBEARER is its standard form, RFC 7628.
 * Both send the access token as the only credential, in the initial
 * response, and both report a refused token the same way: a 334 whose
 * text is base64 JSON ({"status":...,"scope":...}), which the client must
 * answer (OAUTHBEARER: one 0x01 byte; XOAUTH2: an empty line) so that the
 * server can finish with a 535.  Dropping the connection or sending "*"
 * instead would leave the server's log with a client that vanished, and
 * the user with no reason.
 *
 * The token is a secret like a password: copied into wiped memory, never
 * in a message.  The server's JSON is hostile input: bounded, printable,
 * and a value that echoes the token is not repeated.
 */
#include "sasl/oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/secret.h"

enum oauth_kind { OAUTH_XOAUTH2, OAUTH_BEARER };

/* Longest summary of an error challenge, the "..." included. */
#define OAUTH_SUMMARY_MAX 320

struct oauth_exchange {
    enum oauth_kind kind;
    char *user;  /* owned, may be NULL */
    char *token; /* owned, secret_free */
    char *host;  /* owned, may be NULL */
    unsigned port;
    unsigned steps;
    bool failed;
    bool have_error;
    char error[OAUTH_SUMMARY_MAX]; /* the server's error challenge, summed up */
};

/* ------------------------------------------------------------------ */
/* Base64                                                              */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *oauth_b64_encode(const unsigned char *in, size_t len)
{
    size_t n = (len + 2) / 3 * 4;
    char *out = malloc(n + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        unsigned long v = (unsigned long)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned long)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool oauth_b64_decode(const char *in, size_t inlen, unsigned char *out,
                      size_t cap, size_t *outlen)
{
    size_t o = 0;

    *outlen = 0;
    if (inlen % 4 != 0)
        return false;
    for (size_t i = 0; i < inlen; i += 4) {
        int v[4];
        size_t pad = 0;
        bool last = i + 4 == inlen;

        for (size_t k = 0; k < 4; k++) {
            if (in[i + k] == '=' && last && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            /* Nothing but padding may follow padding. */
            if (pad > 0 || (v[k] = b64_value(in[i + k])) < 0)
                return false;
        }
        size_t bytes = 3 - pad;
        if (o + bytes > cap)
            return false;
        unsigned long w = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
                          (unsigned long)v[2] << 6 | (unsigned long)v[3];
        out[o++] = (unsigned char)(w >> 16);
        if (bytes > 1)
            out[o++] = (unsigned char)(w >> 8);
        if (bytes > 2)
            out[o++] = (unsigned char)w;
    }
    *outlen = o;
    return true;
}

/* ------------------------------------------------------------------ */
/* The server's error challenge                                        */

typedef struct jscan {
    const char *p, *end;
} jscan;

/* RFC 8259 section 2. */
static void skip_ws(jscan *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A JSON string at j->p (the opening quote).  Writes its content to out
 * (cap bytes with the NUL; out NULL: only skip), ASCII as is and every
 * other character as '?', so what comes out is safe to print once
 * control characters are replaced.  Longer content is cut, *cut set.
 * False when malformed. */
static bool scan_string(jscan *j, char *out, size_t cap, bool *cut)
{
    size_t n = 0;

    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        char put;

        if (c == '"') {
            if (out != NULL)
                out[n] = '\0';
            return true;
        }
        if (c < 0x20)
            return false; /* RFC 8259 section 7: must be escaped */
        if (c == '\\') {
            if (j->p >= j->end)
                return false;
            char e = *j->p++;
            switch (e) {
            case '"': put = '"'; break;
            case '\\': put = '\\'; break;
            case '/': put = '/'; break;
            case 'b': case 'f': case 'n': case 'r': case 't': put = '?'; break;
            case 'u': {
                unsigned cp = 0;
                if (j->end - j->p < 4)
                    return false;
                for (int k = 0; k < 4; k++) {
                    int d = hex_digit(j->p[k]);
                    if (d < 0)
                        return false;
                    cp = cp << 4 | (unsigned)d;
                }
                j->p += 4;
                put = cp >= 0x20 && cp < 0x7f ? (char)cp : '?';
                break;
            }
            default:
                return false;
            }
        } else {
            put = c < 0x7f ? (char)c : '?';
        }
        if (out == NULL)
            continue;
        if (n + 1 < cap)
            out[n++] = put;
        else if (cut != NULL)
            *cut = true;
    }
    return false;
}

/* Any JSON value; a number or literal is copied like a string's content
 * (so "status": 401 reads as "401").  Nesting is bounded: deeper is
 * hostile. */
#define JSON_DEPTH_MAX 16

static bool scan_value(jscan *j, char *out, size_t cap, bool *cut, int depth);

// NOLINTNEXTLINE(misc-no-recursion): bounded, nesting stops at JSON_DEPTH_MAX (16)
static bool scan_container(jscan *j, int depth)
{
    char close = *j->p == '{' ? '}' : ']';
    bool object = close == '}';

    if (depth >= JSON_DEPTH_MAX)
        return false;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return true;
    }
    for (;;) {
        if (object) {
            skip_ws(j);
            if (!scan_string(j, NULL, 0, NULL))
                return false;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return false;
            j->p++;
        }
        if (!scan_value(j, NULL, 0, NULL, depth + 1))
            return false;
        skip_ws(j);
        if (j->p >= j->end)
            return false;
        if (*j->p == close) {
            j->p++;
            return true;
        }
        if (*j->p != ',')
            return false;
        j->p++;
    }
}

// NOLINTNEXTLINE(misc-no-recursion): bounded, nesting stops at JSON_DEPTH_MAX (16)
static bool scan_value(jscan *j, char *out, size_t cap, bool *cut, int depth)
{
    skip_ws(j);
    if (j->p >= j->end)
        return false;
    if (*j->p == '"')
        return scan_string(j, out, cap, cut);
    if (*j->p == '{' || *j->p == '[') {
        if (out != NULL && cap > 0)
            snprintf(out, cap, "%s", *j->p == '{' ? "(an object)" : "(a list)");
        return scan_container(j, depth);
    }
    /* A number, true, false or null: a run of these characters. */
    const char *start = j->p;
    while (j->p < j->end && (strchr("+-.eE", *j->p) != NULL ||
                             (*j->p >= '0' && *j->p <= '9') ||
                             (*j->p >= 'a' && *j->p <= 'z')))
        j->p++;
    if (j->p == start)
        return false;
    if (out != NULL && cap > 0) {
        size_t n = (size_t)(j->p - start);
        if (n >= cap) {
            n = cap - 1;
            if (cut != NULL)
                *cut = true;
        }
        memcpy(out, start, n);
        out[n] = '\0';
    }
    return true;
}

/* A run this long shared with the token means the server echoed it (or
 * part of it); a random bearer token shares no such run with a scope or
 * URL by chance. */
#define ECHO_RUN 10

static bool echoes(const char *value, const char *token)
{
    size_t vn = strlen(value), tn = token != NULL ? strlen(token) : 0;

    if (tn == 0)
        return false;
    if (vn < ECHO_RUN || tn < ECHO_RUN)
        return strstr(value, token) != NULL;
    for (size_t i = 0; i + ECHO_RUN <= vn; i++)
        for (size_t k = 0; k + ECHO_RUN <= tn; k++)
            if (memcmp(value + i, token + k, ECHO_RUN) == 0)
                return true;
    return false;
}

static void append(char *out, size_t outlen, size_t *used, bool *cut,
                   const char *s)
{
    size_t n = strlen(s);

    if (outlen == 0 || *cut)
        return;
    if (n > outlen - 1 - *used) {
        n = outlen - 1 - *used;
        *cut = true;
    }
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
}

void oauth_error_summary(const char *json, size_t len, const char *token,
                         char *out, size_t outlen)
{
    static const char *const keys[] = { "status", "scope",
                                        "openid-configuration" };
    enum { NKEYS = sizeof keys / sizeof keys[0] };
    /* Decoded whole before cutting, so an echo of a long token is caught
     * even when only its start would be shown. */
    char *value[NKEYS] = { NULL };
    size_t used = 0;
    bool cut = false, any = false, ok = true;
    jscan j = { json, json + len };
    char key[32];

    if (outlen > 0)
        out[0] = '\0';
    if (len > OAUTH_CHALLENGE_MAX) {
        append(out, outlen, &used, &cut, "the server's error challenge is too "
               "long to read");
        goto finish;
    }
    if (len == 0) {
        append(out, outlen, &used, &cut, "the server's error challenge is empty");
        goto finish;
    }
    skip_ws(&j);
    if (j.p >= j.end || *j.p != '{')
        ok = false;
    else
        j.p++;
    skip_ws(&j);
    if (ok && j.p < j.end && *j.p == '}')
        j.p++;
    else
        while (ok) {
            bool key_cut = false;
            int which = -1;

            skip_ws(&j);
            if (!scan_string(&j, key, sizeof key, &key_cut)) {
                ok = false;
                break;
            }
            for (int k = 0; k < NKEYS && !key_cut; k++)
                if (strcmp(key, keys[k]) == 0)
                    which = k;
            skip_ws(&j);
            if (j.p >= j.end || *j.p != ':') {
                ok = false;
                break;
            }
            j.p++;
            if (which >= 0 && value[which] == NULL) {
                /* len bounds every value. */
                value[which] = malloc(len + 1);
                if (value[which] == NULL) {
                    ok = false;
                    break;
                }
                ok = scan_value(&j, value[which], len + 1, NULL, 1);
            } else {
                ok = scan_value(&j, NULL, 0, NULL, 1);
            }
            skip_ws(&j);
            if (!ok || j.p >= j.end) {
                ok = false;
                break;
            }
            if (*j.p == '}') {
                j.p++;
                break;
            }
            if (*j.p != ',')
                ok = false;
            else
                j.p++;
        }
    skip_ws(&j);
    if (!ok || j.p != j.end) {
        append(out, outlen, &used, &cut, "the server's error challenge is not "
               "valid JSON");
        goto finish;
    }

    for (int k = 0; k < NKEYS; k++) {
        char shown[OAUTH_VALUE_MAX + 4];
        size_t n = 0;

        if (value[k] == NULL)
            continue;
        if (echoes(value[k], token)) {
            snprintf(shown, sizeof shown, "[redacted]");
        } else {
            for (; value[k][n] != '\0' && n < OAUTH_VALUE_MAX; n++) {
                unsigned char c = (unsigned char)value[k][n];
                shown[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
            }
            shown[n] = '\0';
            if (value[k][n] != '\0')
                memcpy(shown + n, "...", 4);
        }
        append(out, outlen, &used, &cut, any ? ", " : "");
        append(out, outlen, &used, &cut, keys[k]);
        append(out, outlen, &used, &cut, " ");
        append(out, outlen, &used, &cut, shown[0] != '\0' ? shown : "\"\"");
        any = true;
    }
    if (!any)
        append(out, outlen, &used, &cut, "the server's error challenge names "
               "no status");

finish:
    for (int k = 0; k < NKEYS; k++)
        free(value[k]);
    if (cut && outlen >= 4)
        memcpy(out + outlen - 4, "...", 4);
}

/* ------------------------------------------------------------------ */
/* The exchange                                                        */

static void set_err(char *err, size_t errlen, const char *text)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", text);
}

bool oauth_is_mech(const char *upper)
{
    return upper != NULL &&
           (strcmp(upper, "XOAUTH2") == 0 || strcmp(upper, "OAUTHBEARER") == 0);
}

/* RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" /
 * "~" / "+" / "/" ) *"=".  Anything else (a space, a newline left by a
 * token helper, a 0x01) would change the message's structure. */
static bool is_b64token(const char *t)
{
    size_t i = 0;

    for (; t[i] != '\0'; i++) {
        char c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || strchr("-._~+/", c) != NULL))
            break;
    }
    if (i == 0)
        return false;
    while (t[i] == '=')
        i++;
    return t[i] == '\0';
}

/* No control byte: 0x01 separates the fields of both mechanisms. */
static bool is_clean(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

oauth_exchange *oauth_start(const char *upper, const sasl_params *params,
                            char *err, size_t errlen)
{
    oauth_exchange *x;

    if (!oauth_is_mech(upper)) {
        set_err(err, errlen, "not an OAuth mechanism");
        return NULL;
    }
    if (params->password == NULL || params->password[0] == '\0') {
        set_err(err, errlen, "no OAuth access token for this server (it is "
                "given as the password)");
        return NULL;
    }
    if (!is_b64token(params->password)) {
        set_err(err, errlen, "the OAuth access token holds a character a "
                "bearer token may not (RFC 6750 section 2.1); check what "
                "the password source or smtp_sasl_password_command prints");
        return NULL;
    }
    if ((params->user != NULL && !is_clean(params->user)) ||
        (params->host != NULL && !is_clean(params->host))) {
        set_err(err, errlen, "the user name or host name holds a control "
                "character");
        return NULL;
    }
    if (strcmp(upper, "XOAUTH2") == 0 &&
        (params->user == NULL || params->user[0] == '\0')) {
        set_err(err, errlen, "XOAUTH2 needs a user name");
        return NULL;
    }
    x = calloc(1, sizeof *x);
    if (x == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    x->kind = strcmp(upper, "XOAUTH2") == 0 ? OAUTH_XOAUTH2 : OAUTH_BEARER;
    x->port = params->port;
    x->token = secret_dup(params->password);
    if (params->user != NULL)
        x->user = strdup(params->user);
    if (params->host != NULL)
        x->host = strdup(params->host);
    if (x->token == NULL || (params->user != NULL && x->user == NULL) ||
        (params->host != NULL && x->host == NULL)) {
        oauth_free(x);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    return x;
}

/* RFC 5801 section 4 (saslname): ',' and '=' escaped in the GS2 header. */
static size_t escaped_len(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += *s == ',' || *s == '=' ? 3 : 1;
    return n;
}

static char *put_escaped(char *p, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == ',') {
            memcpy(p, "=2C", 3);
            p += 3;
        } else if (*s == '=') {
            memcpy(p, "=3D", 3);
            p += 3;
        } else {
            *p++ = *s;
        }
    }
    return p;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);

    memcpy(p, s, n);
    return p + n;
}

/* The initial response, raw: XOAUTH2
 *   "user=" U 0x01 "auth=Bearer " T 0x01 0x01
 * and OAUTHBEARER (RFC 7628 section 3.1)
 *   "n,a=" U "," 0x01 "host=" H 0x01 "port=" P 0x01 "auth=Bearer " T 0x01 0x01
 * with a=, host= and port= left out when unknown.  Wiped by the caller. */
static char *initial_raw(const oauth_exchange *x, size_t *len)
{
    char port[16] = "";
    size_t n;
    char *raw, *p;

    if (x->port != 0)
        snprintf(port, sizeof port, "%u", x->port);
    if (x->kind == OAUTH_XOAUTH2)
        n = 5 + strlen(x->user) + 1 + 12 + strlen(x->token) + 2;
    else
        n = 2 + (x->user != NULL && x->user[0] != '\0'
                     ? 2 + escaped_len(x->user) : 0) +
            1 + 1 + (x->host != NULL ? 5 + strlen(x->host) + 1 : 0) +
            (port[0] != '\0' ? 5 + strlen(port) + 1 : 0) + 12 +
            strlen(x->token) + 2;
    raw = malloc(n + 1);
    if (raw == NULL)
        return NULL;
    p = raw;
    if (x->kind == OAUTH_XOAUTH2) {
        p = put_str(p, "user=");
        p = put_str(p, x->user);
        p = put_str(p, "\001auth=Bearer ");
        p = put_str(p, x->token);
        p = put_str(p, "\001\001");
    } else {
        p = put_str(p, "n,");
        if (x->user != NULL && x->user[0] != '\0') {
            p = put_str(p, "a=");
            p = put_escaped(p, x->user);
        }
        p = put_str(p, ",\001");
        if (x->host != NULL) {
            p = put_str(p, "host=");
            p = put_str(p, x->host);
            p = put_str(p, "\001");
        }
        if (port[0] != '\0') {
            p = put_str(p, "port=");
            p = put_str(p, port);
            p = put_str(p, "\001");
        }
        p = put_str(p, "auth=Bearer ");
        p = put_str(p, x->token);
        p = put_str(p, "\001\001");
    }
    *p = '\0';
    *len = (size_t)(p - raw);
    return raw;
}

sasl_status oauth_step(oauth_exchange *x, const char *challenge,
                       char **response, char *err, size_t errlen)
{
    *response = NULL;
    if (x == NULL || x->failed) {
        set_err(err, errlen, "the SASL exchange has already failed");
        return SASL_FAIL;
    }
    x->steps++;
    if (x->steps == 1 && challenge == NULL) {
        size_t len = 0;
        char *raw = initial_raw(x, &len);
        if (raw == NULL) {
            x->failed = true;
            set_err(err, errlen, "out of memory");
            return SASL_FAIL;
        }
        *response = oauth_b64_encode((const unsigned char *)raw, len);
        secret_wipe(raw, len);
        free(raw);
        if (*response == NULL) {
            x->failed = true;
            set_err(err, errlen, "out of memory");
            return SASL_FAIL;
        }
        return SASL_DONE;
    }
    if (x->steps != 2 || challenge == NULL) {
        x->failed = true;
        set_err(err, errlen, "the server sent a challenge after the exchange "
                "was over");
        return SASL_FAIL;
    }

    /* The error challenge.  Whatever it holds, it is answered, so that
     * the server ends the exchange with its own reply. */
    size_t clen = strlen(challenge), len = 0;
    unsigned char *json = malloc(OAUTH_CHALLENGE_MAX + 1);
    if (json == NULL) {
        x->failed = true;
        set_err(err, errlen, "out of memory");
        return SASL_FAIL;
    }
    if (clen > (OAUTH_CHALLENGE_MAX + 2) / 3 * 4 + 4)
        snprintf(x->error, sizeof x->error, "the server's error challenge is "
                 "too long to read");
    else if (!oauth_b64_decode(challenge, clen, json, OAUTH_CHALLENGE_MAX, &len))
        snprintf(x->error, sizeof x->error, "the server's error challenge is "
                 "not valid base64");
    else
        oauth_error_summary((const char *)json, len, x->token, x->error,
                            sizeof x->error);
    free(json);
    x->have_error = true;

    /* RFC 7628 section 3.2.3: the dummy response is a single 0x01;
     * Google's XOAUTH2 wants an empty one. */
    *response = x->kind == OAUTH_BEARER ? secret_dup("AQ==") : secret_dup("");
    if (*response == NULL) {
        x->failed = true;
        set_err(err, errlen, "out of memory");
        return SASL_FAIL;
    }
    return SASL_DONE;
}

const char *oauth_server_error(const oauth_exchange *x)
{
    return x != NULL && x->have_error ? x->error : NULL;
}

void oauth_free(oauth_exchange *x)
{
    if (x == NULL)
        return;
    secret_free(x->token);
    free(x->user);
    free(x->host);
    free(x);
}
