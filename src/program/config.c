/*
 * config.c - reading main.cf-style configuration.
 *
 * Two passes: the text is split into logical lines and "key = value"
 * entries (the last assignment of a key wins, as in Postfix), then each key
 * hato knows is expanded and checked.  Only the second pass knows what a
 * value means, so a whole Postfix main.cf with keys for other parts of
 * Postfix loads without complaint.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* $name references nest at most this deep; deeper means a loop such as
 * myhostname = $myorigin, myorigin = $myhostname. */
#define EXPAND_MAX_DEPTH 10

struct entry {
    char *key;
    char *value;   /* as written, continuation lines joined by one space */
    unsigned line;
};

struct parser {
    struct config *c;
    const struct config_env *env;
    const char *name;
    struct entry *v;
    size_t n, cap;
    char *hostname;  /* the system's name, for the myhostname default */
    char *err;
    size_t errlen;
};

/* Keys hato reads, with the default used when the file does not set them
 * (NULL: no default value to expand; handled in resolve). */
static const struct known {
    const char *key;
    const char *fallback;
} known_keys[] = {
    {"relayhost", ""},
    {"smtp_tls_security_level", "verify"},
    {"smtp_tls_wrappermode", "no"},
    {"smtp_tls_CAfile", ""},
    {"smtp_tls_CApath", ""},
    {"smtp_tls_loglevel", "0"},
    {"smtp_sasl_auth_enable", "no"},
    {"smtp_sasl_password_maps", ""},
    {"smtp_sasl_security_options", "noplaintext, noanonymous"},
    /* Not Postfix's $smtp_sasl_security_options: inside TLS (verified by
     * default) PLAIN and LOGIN reveal nothing, and most providers offer
     * only those.  See docs/config.md. */
    {"smtp_sasl_tls_security_options", "noanonymous"},
    {"smtp_sasl_mechanism_filter", ""},
    {"smtp_sasl_auth_soft_bounce", "yes"},
    {"inet_protocols", "all"},
    {"myhostname", NULL},
    {"mydomain", NULL},
    {"myorigin", "$myhostname"},
    {"smtp_helo_name", "$myhostname"},
    {"maillog_file", ""},
    {"smtp_connect_timeout", "30s"},
    {"smtp_helo_timeout", "300s"},
    {"smtp_starttls_timeout", "300s"},
    {"smtp_mail_timeout", "300s"},
    {"smtp_rcpt_timeout", "300s"},
    {"smtp_data_init_timeout", "120s"},
    {"smtp_data_xfer_timeout", "180s"},
    {"smtp_data_done_timeout", "600s"},
    {"smtp_quit_timeout", "300s"},
};

/* Indexed by hato_timeout. */
static const char *const timeout_keys[HATO_TIMEOUT_COUNT_] = {
    "smtp_connect_timeout", "smtp_helo_timeout", "smtp_starttls_timeout",
    "smtp_mail_timeout", "smtp_rcpt_timeout", "smtp_data_init_timeout",
    "smtp_data_xfer_timeout", "smtp_data_done_timeout", "smtp_quit_timeout",
};

/* Real Postfix keys that are within two edits of one of ours and must not
 * be taken for misspellings. */
static const char *const not_misspellings[] = {
    "smtp_rset_timeout",
};

const char *config_timeout_key(hato_timeout which)
{
    return (unsigned)which < HATO_TIMEOUT_COUNT_ ? timeout_keys[which] : "";
}

static void warnf(struct parser *p, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (p->env == NULL || p->env->warn == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    p->env->warn(p->env->warn_user, line);
}

static enum config_status fail(struct parser *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    return CONFIG_INVALID;
}

static enum config_status nomem(struct parser *p)
{
    snprintf(p->err, p->errlen, "out of memory reading %s", p->name);
    return CONFIG_NOMEM;
}

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* ------------------------------------------------------------------ */
/* Pass 1: logical lines                                              */

static struct entry *find_entry(struct parser *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].key, key) == 0)
            return &p->v[i];
    return NULL;
}

/* Takes one logical line (continuations already joined). */
static enum config_status add_line(struct parser *p, const char *s, size_t n, unsigned line)
{
    const char *eq = memchr(s, '=', n);
    if (eq == NULL) {
        char shown[80];
        size_t k = n < sizeof shown - 1 ? n : sizeof shown - 1;
        memcpy(shown, s, k);
        shown[k] = '\0';
        return fail(p, "%s:%u: \"%s\" is not a \"key = value\" line", p->name, line, shown);
    }
    size_t klen = (size_t)(eq - s);
    while (klen > 0 && is_blank(s[klen - 1]))
        klen--;
    if (klen == 0)
        return fail(p, "%s:%u: a line starts with \"=\" and has no key", p->name, line);
    for (size_t i = 0; i < klen; i++)
        if (is_blank(s[i]))
            return fail(p, "%s:%u: key \"%.*s\" holds a space; expected \"key = value\"",
                        p->name, line, (int)klen, s);
    const char *val = eq + 1;
    size_t vlen = n - (size_t)(val - s);
    while (vlen > 0 && is_blank(*val)) {
        val++;
        vlen--;
    }
    while (vlen > 0 && is_blank(val[vlen - 1]))
        vlen--;

    char *key = dup_range(s, klen);
    char *value = dup_range(val, vlen);
    if (key == NULL || value == NULL) {
        free(key);
        free(value);
        return nomem(p);
    }
    struct entry *e = find_entry(p, key);
    if (e != NULL) {
        /* Later assignments win, as in Postfix. */
        free(key);
        free(e->value);
        e->value = value;
        e->line = line;
        return CONFIG_OK;
    }
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 32;
        struct entry *nv = realloc(p->v, ncap * sizeof *nv);
        if (nv == NULL) {
            free(key);
            free(value);
            return nomem(p);
        }
        p->v = nv;
        p->cap = ncap;
    }
    p->v[p->n++] = (struct entry){key, value, line};
    return CONFIG_OK;
}

/* Splits text into logical lines: a line starting with white space
 * continues the one before; blank lines and lines whose first non-blank
 * character is '#' are skipped (and do not end a logical line). */
static enum config_status split_lines(struct parser *p, const char *text, size_t len)
{
    char *acc = NULL;      /* the logical line being built */
    size_t acc_len = 0, acc_cap = 0;
    unsigned acc_line = 0, lineno = 0;
    enum config_status st = CONFIG_OK;
    size_t pos = 0;

    while (pos < len) {
        const char *ls = text + pos;
        const char *nl = memchr(ls, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - ls) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n > 0 && ls[n - 1] == '\r')
            n--;
        if (memchr(ls, '\0', n) != NULL) {
            st = fail(p, "%s:%u: the line holds a NUL byte; is this a text file?", p->name, lineno);
            break;
        }
        size_t i = 0;
        while (i < n && is_blank(ls[i]))
            i++;
        if (i == n || ls[i] == '#')
            continue;
        if (i > 0) {
            if (acc == NULL) {
                st = fail(p, "%s:%u: a continuation line (it starts with white space) "
                             "with no \"key = value\" line before it", p->name, lineno);
                break;
            }
        } else if (acc != NULL) {
            st = add_line(p, acc, acc_len, acc_line);
            acc_len = 0;
            free(acc);
            acc = NULL;
            acc_cap = 0;
            if (st != CONFIG_OK)
                break;
        }
        /* Append ls[i..n) to acc, joined by one space. */
        size_t need = acc_len + 1 + (n - i) + 1;
        if (need > acc_cap) {
            char *na = realloc(acc, need);
            if (na == NULL) {
                st = nomem(p);
                break;
            }
            acc = na;
            acc_cap = need;
        }
        if (acc_len > 0)
            acc[acc_len++] = ' ';
        else
            acc_line = lineno;
        memcpy(acc + acc_len, ls + i, n - i);
        acc_len += n - i;
        acc[acc_len] = '\0';
    }
    if (st == CONFIG_OK && acc != NULL)
        st = add_line(p, acc, acc_len, acc_line);
    free(acc);
    return st;
}

/* ------------------------------------------------------------------ */
/* $name expansion                                                    */

static const struct known *find_known(const char *key)
{
    for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
        if (strcmp(known_keys[i].key, key) == 0)
            return &known_keys[i];
    return NULL;
}

struct sbuf {
    char *s;
    size_t len, cap;
    bool failed;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *ns = realloc(b->s, ncap);
        if (ns == NULL) {
            b->failed = true;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static enum config_status expand_into(struct parser *p, const char *key, const char *value,
                                      unsigned line, int depth, struct sbuf *out);

/* The raw value of a parameter (from the file, else hato's default), or
 * NULL when hato does not know it.  myhostname and mydomain defaults are
 * computed. */
static const char *raw_value(struct parser *p, const char *key, unsigned *line,
                             char *scratch, size_t scratch_len)
{
    struct entry *e = find_entry(p, key);
    if (e != NULL) {
        *line = e->line;
        return e->value;
    }
    *line = 0;
    if (strcmp(key, "myhostname") == 0)
        return p->hostname;
    if (strcmp(key, "mydomain") == 0) {
        /* Postfix: $myhostname minus its first label, else "localdomain". */
        unsigned l;
        const char *h = raw_value(p, "myhostname", &l, scratch, scratch_len);
        const char *dot = h ? strchr(h, '.') : NULL;
        if (dot == NULL || dot[1] == '\0')
            return "localdomain";
        snprintf(scratch, scratch_len, "%s", dot + 1);
        return scratch;
    }
    const struct known *k = find_known(key);
    return k ? k->fallback : NULL;
}

static enum config_status expand_ref(struct parser *p, const char *name, int depth,
                                     struct sbuf *out, bool *found)
{
    char scratch[256];
    unsigned line;
    const char *v = raw_value(p, name, &line, scratch, sizeof scratch);
    *found = v != NULL;
    if (v == NULL)
        return CONFIG_OK;
    /* The computed mydomain default lives in scratch: copy before recursing. */
    char *copy = strdup(v);
    if (copy == NULL)
        return nomem(p);
    enum config_status st = expand_into(p, name, copy, line, depth + 1, out);
    free(copy);
    return st;
}

static enum config_status expand_into(struct parser *p, const char *key, const char *value,
                                      unsigned line, int depth, struct sbuf *out)
{
    if (depth > EXPAND_MAX_DEPTH)
        return fail(p, "%s:%u: %s = %s: $name references nest too deep (a loop?)",
                    p->name, line, key, value);
    const char *s = value;
    while (*s != '\0') {
        const char *d = strchr(s, '$');
        if (d == NULL) {
            sb_add(out, s, strlen(s));
            break;
        }
        sb_add(out, s, (size_t)(d - s));
        const char *nstart = d + 1;
        char close = '\0';
        if (*nstart == '{')
            close = '}';
        else if (*nstart == '(')
            close = ')';
        if (close != '\0')
            nstart++;
        const char *nend = nstart;
        while (isalnum((unsigned char)*nend) || *nend == '_')
            nend++;
        const char *after = nend;
        bool ok = nend > nstart;
        if (close != '\0') {
            ok = ok && *nend == close;
            after = nend + 1;
        }
        if (!ok) {
            /* Not a plain reference (e.g. ${name?text}): left as written. */
            sb_add(out, "$", 1);
            s = d + 1;
            continue;
        }
        char name[128];
        size_t nlen = (size_t)(nend - nstart);
        bool found = false;
        if (nlen < sizeof name) {
            memcpy(name, nstart, nlen);
            name[nlen] = '\0';
            enum config_status st = expand_ref(p, name, depth, out, &found);
            if (st != CONFIG_OK)
                return st;
        }
        if (!found)
            sb_add(out, d, (size_t)(after - d)); /* unknown: leave it */
        s = after;
    }
    if (out->failed)
        return nomem(p);
    return CONFIG_OK;
}

/* The expanded value of a known key into *value (malloc'd) and its line. */
static enum config_status get(struct parser *p, const char *key, char **value, unsigned *line)
{
    char scratch[256];
    struct sbuf b = {0};
    const char *raw = raw_value(p, key, line, scratch, sizeof scratch);
    char *copy = strdup(raw ? raw : "");
    if (copy == NULL)
        return nomem(p);
    enum config_status st = expand_into(p, key, copy, *line, 0, &b);
    free(copy);
    if (st == CONFIG_OK && b.s == NULL) {
        b.s = strdup("");
        if (b.s == NULL)
            st = nomem(p);
    }
    if (st != CONFIG_OK) {
        free(b.s);
        return st;
    }
    *value = b.s;
    return CONFIG_OK;
}

/* "file:12: " or "file: " (for defaults), for messages. */
static const char *where(struct parser *p, unsigned line, char *buf, size_t n)
{
    if (line > 0)
        snprintf(buf, n, "%s:%u: ", p->name, line);
    else
        snprintf(buf, n, "%s: ", p->name);
    return buf;
}

/* ------------------------------------------------------------------ */
/* Pass 2: values                                                     */

int config_parse_time(const char *value, unsigned *ms)
{
    const char *s = value;
    unsigned long long n = 0;

    if (!isdigit((unsigned char)*s))
        return -1;
    while (isdigit((unsigned char)*s)) {
        n = n * 10 + (unsigned)(*s - '0');
        if (n > UINT_MAX)
            return -1;
        s++;
    }
    unsigned long long mult = 1;
    switch (*s) {
    case '\0': break;
    case 's': mult = 1; s++; break;
    case 'm': mult = 60; s++; break;
    case 'h': mult = 3600; s++; break;
    case 'd': mult = 86400; s++; break;
    case 'w': mult = 604800; s++; break;
    default: return -1;
    }
    if (*s != '\0')
        return -1;
    n = n * mult * 1000;
    if (n > UINT_MAX)
        return -1;
    *ms = (unsigned)n;
    return 0;
}

static enum config_status get_bool(struct parser *p, const char *key, bool *out)
{
    char *v, w[512];
    unsigned line;
    enum config_status st = get(p, key, &v, &line);
    if (st != CONFIG_OK)
        return st;
    if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0)
        *out = true;
    else if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0)
        *out = false;
    else
        st = fail(p, "%s%s = %s: not a boolean; use yes or no", where(p, line, w, sizeof w), key, v);
    free(v);
    return st;
}

static enum config_status get_string(struct parser *p, const char *key, char **out)
{
    unsigned line;
    char *v;
    enum config_status st = get(p, key, &v, &line);
    if (st != CONFIG_OK)
        return st;
    if (v[0] == '\0') {
        free(v);
        v = NULL;
    }
    *out = v;
    return CONFIG_OK;
}

static int parse_port(const char *s, uint16_t *port)
{
    static const struct {
        const char *name;
        uint16_t port;
    } services[] = {{"smtp", 25}, {"submission", 587}, {"smtps", 465}, {"submissions", 465}};
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        if (strcmp(s, services[i].name) == 0) {
            *port = services[i].port;
            return 0;
        }
    if (*s == '\0')
        return -1;
    unsigned long n = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        n = n * 10 + (unsigned)(*s - '0');
        if (n > 65535)
            return -1;
    }
    if (n == 0)
        return -1;
    *port = (uint16_t)n;
    return 0;
}

static enum config_status resolve_relay(struct parser *p)
{
    char *v, w[512];
    unsigned line;
    enum config_status st = get(p, "relayhost", &v, &line);
    if (st != CONFIG_OK)
        return st;
    struct config *c = p->c;
    c->relay_line = line;
    const char *why = NULL;
    char *host = NULL;
    const char *port = NULL;

    if (v[0] == '\0') {
        free(v);
        return CONFIG_OK;
    }
    if (strpbrk(v, ", \t") != NULL) {
        why = "hato sends through one relay; give a single [host]:port";
    } else if (v[0] == '[') {
        char *close = strchr(v, ']');
        if (close == NULL || close == v + 1) {
            why = "a \"[\" without a host and \"]\"";
        } else {
            const char *h = v + 1;
            if (strncasecmp(h, "ipv6:", 5) == 0)
                h += 5;
            host = dup_range(h, (size_t)(close - h));
            if (close[1] == ':')
                port = close + 2;
            else if (close[1] != '\0')
                why = "text after \"]\" must be \":port\"";
            c->relay_bracketed = true;
        }
    } else {
        char *colon = strchr(v, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            why = "an IPv6 address must be in brackets, as in [2001:db8::1]:587";
        } else if (colon != NULL) {
            host = dup_range(v, (size_t)(colon - v));
            port = colon + 1;
        } else {
            host = strdup(v);
        }
    }
    if (why == NULL && host == NULL)
        st = nomem(p);
    else if (why == NULL && host[0] == '\0')
        why = "the host is empty";
    else if (why == NULL && port != NULL && parse_port(port, &c->relay_port) != 0)
        why = "the port must be a number from 1 to 65535 (or smtp, submission, submissions)";
    if (why != NULL) {
        st = fail(p, "%srelayhost = %s: %s; accepted: [host]:port, host:port, [ipv6address]:port, [host], host",
                  where(p, line, w, sizeof w), v, why);
        free(host);
        free(v);
        return st;
    }
    if (st != CONFIG_OK) {
        free(host);
        free(v);
        return st;
    }
    c->relay_host = host;
    if (!c->relay_bracketed)
        warnf(p, "%srelayhost = %s: hato does not look up MX records; it connects to %s directly "
                 "(write [%s]%s%s to silence this warning)", where(p, line, w, sizeof w), v, host,
              host, port ? ":" : "", port ? port : "");
    free(v);
    return CONFIG_OK;
}

static enum config_status resolve_tls(struct parser *p)
{
    char *v, w[512];
    unsigned line;
    struct config *c = p->c;
    enum config_status st = get(p, "smtp_tls_security_level", &v, &line);
    if (st != CONFIG_OK)
        return st;
    static const char *const later[] = {"dane", "dane-only", "fingerprint", "secure", "halfdane"};
    if (v[0] == '\0' || strcasecmp(v, "verify") == 0)
        c->tls_level = HATO_TLS_VERIFY;
    else if (strcasecmp(v, "none") == 0)
        c->tls_level = HATO_TLS_NONE;
    else if (strcasecmp(v, "may") == 0)
        c->tls_level = HATO_TLS_MAY;
    else if (strcasecmp(v, "encrypt") == 0)
        c->tls_level = HATO_TLS_ENCRYPT;
    else {
        bool is_later = false;
        for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
            if (strcasecmp(v, later[i]) == 0)
                is_later = true;
        if (is_later)
            st = fail(p, "%ssmtp_tls_security_level = %s: level %s comes in a later version of hato; "
                         "use none, may, encrypt or verify", where(p, line, w, sizeof w), v, v);
        else
            st = fail(p, "%ssmtp_tls_security_level = %s: unknown level; use none, may, encrypt or verify",
                      where(p, line, w, sizeof w), v);
    }
    free(v);
    if (st != CONFIG_OK)
        return st;

    if ((st = get_bool(p, "smtp_tls_wrappermode", &c->tls_wrapper)) != CONFIG_OK)
        return st;

    if ((st = get(p, "smtp_tls_loglevel", &v, &line)) != CONFIG_OK)
        return st;
    if (strlen(v) == 1 && v[0] >= '0' && v[0] <= '4')
        c->tls_loglevel = v[0] - '0';
    else
        st = fail(p, "%ssmtp_tls_loglevel = %s: use a number from 0 to 4",
                  where(p, line, w, sizeof w), v);
    free(v);
    if (st != CONFIG_OK)
        return st;

    if ((st = get_string(p, "smtp_tls_CAfile", &c->ca_file)) != CONFIG_OK)
        return st;
    char *capath;
    if ((st = get(p, "smtp_tls_CApath", &capath, &line)) != CONFIG_OK)
        return st;
    if (capath[0] == '\0') {
        free(capath);
        return CONFIG_OK;
    }
    struct stat sb;
    if (stat(capath, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        /* The guide's mistake: a bundle file given to the directory key.
         * It works as a CA file, so use it that way and say so. */
        if (c->ca_file == NULL) {
            warnf(p, "%ssmtp_tls_CApath = %s names a file, not a directory; using it as "
                     "smtp_tls_CAfile (write smtp_tls_CAfile = %s instead to silence this warning)",
                  where(p, line, w, sizeof w), capath, capath);
            c->ca_file = capath;
        } else {
            warnf(p, "%ssmtp_tls_CApath = %s names a file, not a directory; ignored "
                     "(smtp_tls_CAfile = %s is used)", where(p, line, w, sizeof w), capath, c->ca_file);
            free(capath);
        }
    } else {
        c->ca_path = capath;
    }
    return CONFIG_OK;
}

static enum config_status parse_security(struct parser *p, const char *key, unsigned *flags)
{
    char *v, w[512];
    unsigned line;
    enum config_status st = get(p, key, &v, &line);
    if (st != CONFIG_OK)
        return st;
    *flags = 0;
    for (char *tok = v; *tok != '\0';) {
        size_t n = strcspn(tok, ", \t");
        if (n > 0) {
            char save = tok[n];
            tok[n] = '\0';
            if (strcasecmp(tok, "noanonymous") == 0)
                *flags |= HATO_SASL_NOANONYMOUS;
            else if (strcasecmp(tok, "noplaintext") == 0)
                *flags |= HATO_SASL_NOPLAINTEXT;
            else
                warnf(p, "%s%s: option %s is not used by hato and is ignored "
                         "(hato knows noanonymous and noplaintext)",
                      where(p, line, w, sizeof w), key, tok);
            tok[n] = save;
        }
        tok += n;
        tok += strspn(tok, ", \t");
    }
    free(v);
    return CONFIG_OK;
}

static enum config_status resolve_sasl(struct parser *p)
{
    struct config *c = p->c;
    enum config_status st;
    char *v, w[512];
    unsigned line;

    if ((st = get_bool(p, "smtp_sasl_auth_enable", &c->sasl_enable)) != CONFIG_OK)
        return st;
    if ((st = get_bool(p, "smtp_sasl_auth_soft_bounce", &c->auth_soft_bounce)) != CONFIG_OK)
        return st;
    if ((st = get_string(p, "smtp_sasl_mechanism_filter", &c->mech_filter)) != CONFIG_OK)
        return st;
    if ((st = parse_security(p, "smtp_sasl_security_options", &c->sasl_plain)) != CONFIG_OK)
        return st;
    if ((st = parse_security(p, "smtp_sasl_tls_security_options", &c->sasl_tls)) != CONFIG_OK)
        return st;

    if ((st = get(p, "smtp_sasl_password_maps", &v, &line)) != CONFIG_OK)
        return st;
    c->password_maps_line = line;
    for (char *tok = v; *tok != '\0';) {
        size_t n = strcspn(tok, ", \t");
        if (n > 0) {
            char save = tok[n];
            tok[n] = '\0';
            const char *path = tok;
            char *colon = strchr(tok, ':');
            if (colon != NULL && tok[0] != '/') {
                *colon = '\0';
                if (strcmp(tok, "hash") != 0 && strcmp(tok, "texthash") != 0 &&
                    strcmp(tok, "btree") != 0) {
                    st = fail(p, "%ssmtp_sasl_password_maps = %s: table type %s: is not supported; "
                                 "hato reads the text file of a hash:, btree: or texthash: table "
                                 "(write hash:/path/to/file)", where(p, line, w, sizeof w), v, tok);
                    *colon = ':';
                    tok[n] = save;
                    break;
                }
                *colon = ':';
                path = colon + 1;
            }
            if (path[0] != '/') {
                st = fail(p, "%ssmtp_sasl_password_maps = %s: %s is not an absolute path",
                          where(p, line, w, sizeof w), v, path);
                tok[n] = save;
                break;
            }
            char **nm = realloc(c->password_maps, (c->npassword_maps + 1) * sizeof *nm);
            char *copy = strdup(path);
            if (nm != NULL)
                c->password_maps = nm;
            if (nm == NULL || copy == NULL) {
                free(copy);
                st = nomem(p);
                break;
            }
            c->password_maps[c->npassword_maps++] = copy;
            tok[n] = save;
        }
        tok += n;
        tok += strspn(tok, ", \t");
    }
    free(v);
    return st;
}

static enum config_status resolve_general(struct parser *p)
{
    struct config *c = p->c;
    enum config_status st;
    char *v, w[512];
    unsigned line;

    if ((st = get(p, "inet_protocols", &v, &line)) != CONFIG_OK)
        return st;
    bool v4 = false, v6 = false, bad = false;
    for (char *tok = v; *tok != '\0';) {
        size_t n = strcspn(tok, ", \t");
        if (n == 3 && strncasecmp(tok, "all", 3) == 0)
            v4 = v6 = true;
        else if (n == 4 && strncasecmp(tok, "ipv4", 4) == 0)
            v4 = true;
        else if (n == 4 && strncasecmp(tok, "ipv6", 4) == 0)
            v6 = true;
        else if (n > 0)
            bad = true;
        tok += n;
        tok += strspn(tok, ", \t");
    }
    if (bad || (!v4 && !v6))
        st = fail(p, "%sinet_protocols = %s: use all, ipv4, ipv6 or \"ipv4, ipv6\"",
                  where(p, line, w, sizeof w), v);
    c->family = v4 && v6 ? HATO_FAMILY_ANY : v4 ? HATO_FAMILY_IPV4 : HATO_FAMILY_IPV6;
    free(v);
    if (st != CONFIG_OK)
        return st;

    static const struct {
        const char *key;
        size_t off;
    } names[] = {
        {"myhostname", offsetof(struct config, myhostname)},
        {"mydomain", offsetof(struct config, mydomain)},
        {"myorigin", offsetof(struct config, myorigin)},
        {"smtp_helo_name", offsetof(struct config, helo_name)},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char **slot = (char **)((char *)c + names[i].off);
        if ((st = get(p, names[i].key, slot, &line)) != CONFIG_OK)
            return st;
        if ((*slot)[0] == '\0' || strpbrk(*slot, " \t$") != NULL)
            return fail(p, "%s%s = %s: use a domain name such as example.com",
                        where(p, line, w, sizeof w), names[i].key, *slot);
    }
    if ((st = get_string(p, "maillog_file", &c->maillog_file)) != CONFIG_OK)
        return st;

    for (int i = 0; i < HATO_TIMEOUT_COUNT_; i++) {
        if ((st = get(p, timeout_keys[i], &v, &line)) != CONFIG_OK)
            return st;
        unsigned ms;
        if (config_parse_time(v, &ms) != 0 || ms == 0)
            st = fail(p, "%s%s = %s: not a time; use a number with s, m, h, d or w "
                         "(30s, 5m, 1h; a bare number is seconds), at least 1s",
                      where(p, line, w, sizeof w), timeout_keys[i], v);
        else
            c->timeout_ms[i] = ms;
        free(v);
        if (st != CONFIG_OK)
            return st;
    }
    return CONFIG_OK;
}

/* ------------------------------------------------------------------ */
/* Misspellings                                                       */

size_t config_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    /* Keys are short; longer strings are never near each other anyway. */
    if (la > 63 || lb > 63)
        return (size_t)-1;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

static void check_misspellings(struct parser *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const char *key = p->v[i].key;
        if (find_known(key) != NULL)
            continue;
        /* Postfix's server (smtpd_) and LMTP (lmtp_) keys mirror the
         * client's smtp_ keys one edit away; they are not misspellings. */
        if (strncmp(key, "smtpd_", 6) == 0 || strncmp(key, "lmtp_", 5) == 0)
            continue;
        bool skip = false;
        for (size_t k = 0; k < sizeof not_misspellings / sizeof not_misspellings[0]; k++)
            if (strcmp(key, not_misspellings[k]) == 0)
                skip = true;
        if (skip)
            continue;
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t k = 0; k < sizeof known_keys / sizeof known_keys[0]; k++) {
            size_t dist = config_edit_distance(key, known_keys[k].key);
            if (dist < best_d) {
                best_d = dist;
                best = known_keys[k].key;
            }
        }
        if (best != NULL)
            warnf(p, "%s:%u: unknown key %s is ignored; did you mean %s?", p->name,
                  p->v[i].line, key, best);
    }
}

/* ------------------------------------------------------------------ */

static void init(struct config *c)
{
    memset(c, 0, sizeof *c);
    c->tls_level = HATO_TLS_VERIFY;
    c->auth_soft_bounce = true;
    c->sasl_plain = HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS;
    c->sasl_tls = HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS;
}

enum config_status config_parse(struct config *c, const char *name, const char *text,
                                size_t len, const struct config_env *env,
                                char *err, size_t errlen)
{
    struct parser p = {.c = c, .env = env, .name = name, .err = err, .errlen = errlen};
    enum config_status st;

    init(c);
    err[0] = '\0';
    c->path = strdup(name);
    if (c->path == NULL)
        return nomem(&p);

    char host[256];
    if (env != NULL && env->hostname != NULL) {
        snprintf(host, sizeof host, "%s", env->hostname);
    } else if (gethostname(host, sizeof host) != 0 || host[0] == '\0') {
        snprintf(host, sizeof host, "localhost");
    }
    host[sizeof host - 1] = '\0';
    p.hostname = host;

    st = split_lines(&p, text, len);
    if (st == CONFIG_OK) {
        check_misspellings(&p);
        st = resolve_general(&p);
    }
    if (st == CONFIG_OK)
        st = resolve_relay(&p);
    if (st == CONFIG_OK)
        st = resolve_tls(&p);
    if (st == CONFIG_OK)
        st = resolve_sasl(&p);

    for (size_t i = 0; i < p.n; i++) {
        free(p.v[i].key);
        free(p.v[i].value);
    }
    free(p.v);
    return st;
}

enum config_status config_load(struct config *c, const char *path,
                               const struct config_env *env, char *err, size_t errlen)
{
    init(c);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        c->open_errno = errno;
        snprintf(err, errlen, "cannot open configuration file %s: %s (give another with -C FILE)",
                 path, strerror(errno));
        return CONFIG_UNREADABLE;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uintmax_t)sb.st_size > CONFIG_MAX_FILE) {
        c->open_errno = errno;
        snprintf(err, errlen, "configuration file %s is not a regular file of at most %u bytes",
                 path, CONFIG_MAX_FILE);
        close(fd);
        return CONFIG_INVALID;
    }
    size_t cap = (size_t)sb.st_size + 1, len = 0;
    char *text = malloc(cap);
    if (text == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory reading %s", path);
        return CONFIG_NOMEM;
    }
    for (;;) {
        ssize_t r = read(fd, text + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            c->open_errno = errno;
            snprintf(err, errlen, "cannot read configuration file %s: %s", path, strerror(errno));
            free(text);
            close(fd);
            return CONFIG_UNREADABLE;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap) {
            /* The file grew since fstat; stay bounded. */
            break;
        }
    }
    close(fd);
    enum config_status st = config_parse(c, path, text, len, env, err, errlen);
    free(text);
    return st;
}

void config_free(struct config *c)
{
    free(c->path);
    free(c->relay_host);
    free(c->ca_file);
    free(c->ca_path);
    for (size_t i = 0; i < c->npassword_maps; i++)
        free(c->password_maps[i]);
    free(c->password_maps);
    free(c->mech_filter);
    free(c->myhostname);
    free(c->mydomain);
    free(c->myorigin);
    free(c->helo_name);
    free(c->maillog_file);
    memset(c, 0, sizeof *c);
}
