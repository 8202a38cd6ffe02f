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
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text.h"
#include "wipe.h"

/* $name references nest at most this deep; deeper means a loop such as
 * myhostname = $myorigin, myorigin = $myhostname. */
#define EXPAND_MAX_DEPTH 10

struct entry {
    char *key;
    char *value;   /* as written, continuation lines joined by one space */
    unsigned line;
};

/* hato's own key that may hold a password: never expanded, never echoed. */
#define SECRET_KEY "smtp_sasl_password"

struct parser {
    struct config *c;
    const struct config_env *env;
    const char *name;
    struct entry *v;
    size_t n, cap;
    char *hostname;  /* the system's name, for the myhostname default */
    unsigned file_mode; /* permission bits of the file; 0600 for text */
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
    /* Postfix's default, $fallback_relay, names a key gone since 2.3. */
    {"smtp_fallback_relay", ""},
    {"sender_dependent_relayhost_maps", ""},
    {"smtp_tls_security_level", "verify"},
    {"smtp_tls_wrappermode", "no"},
    {"smtp_tls_CAfile", ""},
    {"smtp_tls_CApath", ""},
    {"smtp_tls_loglevel", "0"},
    /* Postfix's defaults allow TLS 1.0; hato's minimum is 1.2 whatever
     * these say, so empty means "hato's default" here. */
    {"smtp_tls_protocols", ""},
    {"smtp_tls_mandatory_protocols", ""},
    {"smtp_tls_cert_file", ""},
    {"smtp_tls_key_file", "$smtp_tls_cert_file"},
    {"smtp_tls_fingerprint_digest", "sha256"},
    {"smtp_tls_fingerprint_cert_match", ""},
    {"smtp_tls_fingerprint_pkey_match", ""},
    {"smtp_tls_session_cache_database", ""},
    {"smtp_tls_session_cache_timeout", "3600s"},
    {"data_directory", ""},
    {"smtp_sasl_auth_enable", "no"},
    {"smtp_sasl_password_maps", ""},
    {"smtp_sasl_security_options", "noplaintext, noanonymous"},
    /* Not Postfix's $smtp_sasl_security_options: inside TLS (verified by
     * default) PLAIN and LOGIN reveal nothing, and most providers offer
     * only those.  See docs/config.md. */
    {"smtp_sasl_tls_security_options", "noanonymous"},
    {"smtp_sasl_mechanism_filter", ""},
    {"smtp_discard_ehlo_keywords", ""},
    {"smtp_sasl_auth_soft_bounce", "yes"},
    {"smtp_sender_dependent_authentication", "no"},
    /* hato's own keys. */
    {"smtp_sasl_password_command", ""},
    {"smtp_sasl_password_credential", "hato-password"},
    {"smtp_sasl_password", ""},
    {"inet_protocols", "all"},
    {"myhostname", NULL},
    {"mydomain", NULL},
    {"myorigin", "$myhostname"},
    {"smtp_helo_name", "$myhostname"},
    {"maillog_file", ""},
    /* Local recipients and sender rewriting (aliases.c, rewrite.c). */
    {"mydestination", "$myhostname, localhost.$mydomain, localhost"},
    {"alias_maps", "hash:/etc/aliases"},
    /* Not Postfix's hash:/etc/aliases: hato's newaliases checks the files
     * it reads, so by default the same ones. */
    {"alias_database", "$alias_maps"},
    {"sender_canonical_maps", ""},
    {"smtp_generic_maps", ""},
    {"smtp_connect_timeout", "30s"},
    {"smtp_helo_timeout", "300s"},
    {"smtp_starttls_timeout", "300s"},
    {"smtp_mail_timeout", "300s"},
    {"smtp_rcpt_timeout", "300s"},
    {"smtp_data_init_timeout", "120s"},
    {"smtp_data_xfer_timeout", "180s"},
    {"smtp_data_done_timeout", "600s"},
    {"smtp_quit_timeout", "300s"},
    {"queue_directory", "/var/spool/hato"},
    {"minimal_backoff_time", "300s"},
    {"maximal_backoff_time", "4000s"},
    {"maximal_queue_lifetime", "5d"},
    {"bounce_queue_lifetime", "5d"},
    {"hato_user_queue_limit", "100"},
    {"hato_user_queue_size_limit", "104857600"},
    /* The message's content (content.c). */
    {"smtputf8_enable", "yes"},
    /* LAN submission, hato -bs.  Not Postfix's mynetworks_style default
     * (every subnet of every interface): loopback only until the admin
     * names the LAN.  smtpd_client_message_rate_limit is per connection
     * in hato (Postfix: per client per time unit, through anvil). */
    {"mynetworks", "127.0.0.0/8 [::1]/128"},
    {"message_size_limit", "10240000"},
    {"smtpd_timeout", "300s"},
    {"smtpd_hard_error_limit", "20"},
    {"smtpd_client_message_rate_limit", "100"},
    /* AUTH for LAN clients: Postfix's switch, hato's own password file
     * (Postfix asks Cyrus or Dovecot) and hato's own "required" (Postfix
     * says it with smtpd_recipient_restrictions). */
    {"smtpd_sasl_auth_enable", "no"},
    {"smtpd_sasl_password_file", ""},
    {"smtpd_sasl_auth_required", "yes"},
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
    "smtp_rset_timeout", "meta_directory", "smtp_tls_dcert_file", "smtp_tls_dkey_file",
    "smtp_tls_eccert_file", "smtp_tls_eckey_file",
};

const char *config_timeout_key(hato_timeout which)
{
    return (unsigned)which < HATO_TIMEOUT_COUNT_ ? timeout_keys[which] : "";
}

/* printf-checked: clang's -Wformat-nonliteral (in -Wformat=2) asks for
 * the attribute on functions that pass their format on. */
static void warnf(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
    __attribute__((format(printf, 2, 3)));
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

/* True when a line may be an assignment of SECRET_KEY, which messages
 * must not echo. */
static bool names_secret(const char *s, size_t n)
{
    size_t k = strlen(SECRET_KEY);
    if (n < k || strncasecmp(s, SECRET_KEY, k) != 0)
        return false;
    return k == n || is_blank(s[k]) || s[k] == '=' || s[k] == ':';
}

/* Takes one logical line (continuations already joined). */
static enum config_status add_line(struct parser *p, const char *s, size_t n, unsigned line)
{
    const char *eq = memchr(s, '=', n);
    if (eq == NULL && names_secret(s, n))
        return fail(p, "%s:%u: a line starting with %s is not a \"key = value\" line "
                       "(its text is not shown: it may hold a password)", p->name, line, SECRET_KEY);
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
            return names_secret(s, n)
                   ? fail(p, "%s:%u: the key holds a space; expected \"%s = user:password\"",
                          p->name, line, SECRET_KEY)
                   : fail(p, "%s:%u: key \"%.*s\" holds a space; expected \"key = value\"",
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
        wipe_free_str(value);
        return nomem(p);
    }
    struct entry *e = find_entry(p, key);
    if (e != NULL) {
        /* Later assignments win, as in Postfix. */
        free(key);
        wipe_free_str(e->value);
        e->value = value;
        e->line = line;
        return CONFIG_OK;
    }
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 32;
        struct entry *nv = realloc(p->v, ncap * sizeof *nv);
        if (nv == NULL) {
            free(key);
            wipe_free_str(value);
            return nomem(p);
        }
        p->v = nv;
        p->cap = ncap;
    }
    p->v[p->n++] = (struct entry){key, value, line};
    return CONFIG_OK;
}

/* Splits text into logical lines (text.h) and adds each. */
static enum config_status split_lines(struct parser *p, const char *text, size_t len)
{
    struct text_lines t = {.text = text, .len = len, .reject_nul = true};
    enum config_status st = CONFIG_OK;
    enum text_status ts;

    while (st == CONFIG_OK && (ts = text_next(&t)) != TEXT_END) {
        if (ts == TEXT_LINE)
            st = add_line(p, t.buf, t.buf_len, t.line);
        else if (ts == TEXT_NUL)
            st = fail(p, "%s:%u: the line holds a NUL byte; is this a text file?", p->name, t.lineno);
        else if (ts == TEXT_ORPHAN)
            st = fail(p, "%s:%u: a continuation line (it starts with white space) "
                         "with no \"key = value\" line before it", p->name, t.lineno);
        else
            st = nomem(p);
    }
    text_lines_free(&t);
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

static enum config_status expand_into(struct parser *p, const char *key, const char *value,
                                      unsigned line, int depth, struct text_buf *out);

/* The raw value of a parameter (from the file, else hato's default), or
 * NULL when hato does not know it.  myhostname and mydomain defaults are
 * computed. */
// NOLINTNEXTLINE(misc-no-recursion): bounded, $name references nest at most EXPAND_MAX_DEPTH
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

// NOLINTNEXTLINE(misc-no-recursion): bounded, $name references nest at most EXPAND_MAX_DEPTH
static enum config_status expand_ref(struct parser *p, const char *name, int depth,
                                     struct text_buf *out, bool *found)
{
    if (strcmp(name, SECRET_KEY) == 0) {
        *found = true;
        return fail(p, "%s: $%s may not be referenced: its value is a password", p->name,
                    SECRET_KEY);
    }
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

// NOLINTNEXTLINE(misc-no-recursion): bounded, $name references nest at most EXPAND_MAX_DEPTH
static enum config_status expand_into(struct parser *p, const char *key, const char *value,
                                      unsigned line, int depth, struct text_buf *out)
{
    if (depth > EXPAND_MAX_DEPTH)
        return fail(p, "%s:%u: %s = %s: $name references nest too deep (a loop?)",
                    p->name, line, key, value);
    const char *s = value;
    while (*s != '\0') {
        const char *d = strchr(s, '$');
        if (d == NULL) {
            text_buf_add(out, s, strlen(s));
            break;
        }
        text_buf_add(out, s, (size_t)(d - s));
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
            text_buf_add(out, "$", 1);
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
            text_buf_add(out, d, (size_t)(after - d)); /* unknown: leave it */
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
    struct text_buf b = {0};
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

int config_parse_relay(const char *v, char **host_out, uint16_t *port_out, bool *bracketed,
                       const char **why)
{
    char *host = NULL;
    const char *port = NULL;

    *host_out = NULL;
    *port_out = 0;
    *bracketed = false;
    *why = NULL;
    if (v[0] == '\0') {
        *why = "the value is empty";
    } else if (strpbrk(v, ", \t") != NULL) {
        *why = "hato sends through one relay; give a single [host]:port";
    } else if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close == v + 1) {
            *why = "a \"[\" without a host and \"]\"";
        } else {
            const char *h = v + 1;
            if (strncasecmp(h, "ipv6:", 5) == 0)
                h += 5;
            host = dup_range(h, (size_t)(close - h));
            if (close[1] == ':')
                port = close + 2;
            else if (close[1] != '\0')
                *why = "text after \"]\" must be \":port\"";
            *bracketed = true;
        }
    } else {
        const char *colon = strchr(v, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            *why = "an IPv6 address must be in brackets, as in [2001:db8::1]:587";
        } else if (colon != NULL) {
            host = dup_range(v, (size_t)(colon - v));
            port = colon + 1;
        } else {
            host = strdup(v);
        }
    }
    if (*why == NULL && host == NULL)
        return -2;
    if (*why == NULL && host[0] == '\0')
        *why = "the host is empty";
    else if (*why == NULL && port != NULL && parse_port(port, port_out) != 0)
        *why = "the port must be a number from 1 to 65535 (or smtp, submission, submissions)";
    if (*why != NULL) {
        free(host);
        *port_out = 0;
        return -1;
    }
    *host_out = host;
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
    if (v[0] == '\0') {
        free(v);
        return CONFIG_OK;
    }
    const char *why;
    int r = config_parse_relay(v, &c->relay_host, &c->relay_port, &c->relay_bracketed, &why);
    if (r == -2) {
        st = nomem(p);
    } else if (r == -1) {
        st = fail(p, "%srelayhost = %s: %s; accepted: [host]:port, host:port, [ipv6address]:port, [host], host",
                  where(p, line, w, sizeof w), v, why);
    }
    free(v);
    return st;
}

/* smtp_fallback_relay: relays as relayhost writes them, separated by
 * commas or white space. */
static enum config_status resolve_fallbacks(struct parser *p)
{
    char *v, w[512];
    unsigned line;
    enum config_status st = get(p, "smtp_fallback_relay", &v, &line);
    if (st != CONFIG_OK)
        return st;
    struct config *c = p->c;
    const char *cur = v, *item;
    size_t n;
    while (st == CONFIG_OK && text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n)) {
        char *one = dup_range(item, n);
        struct config_relay r = {0};
        const char *why = NULL;
        int rc = one ? config_parse_relay(one, &r.host, &r.port, &r.bracketed, &why) : -2;
        struct config_relay *more = rc == 0 ? realloc(c->fallback_relays,
                                                      (c->nfallback_relays + 1) * sizeof *more)
                                            : NULL;
        if (rc == -1) {
            st = fail(p, "%ssmtp_fallback_relay = %s: %s: %s; accepted: [host]:port, host:port, "
                         "[ipv6address]:port, [host], host, separated by commas or spaces",
                      where(p, line, w, sizeof w), v, one, why);
        } else if (more == NULL) {
            free(r.host);
            st = nomem(p);
        } else {
            c->fallback_relays = more;
            c->fallback_relays[c->nfallback_relays++] = r;
        }
        free(one);
    }
    free(v);
    return st;
}

/* Appends a malloc'd string to a vector; false when out of memory (s is
 * then freed). */
static bool push(char ***v, size_t *n, char *s)
{
    char **nv = s ? realloc(*v, (*n + 1) * sizeof *nv) : NULL;
    if (nv == NULL) {
        free(s);
        return false;
    }
    *v = nv;
    (*v)[(*n)++] = s;
    return true;
}

/* TLS protocol versions in Postfix's names, oldest first. */
static const char *const protocol_names[] = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
enum { PROTO_COUNT = 6, PROTO_TLS12 = 4, PROTO_TLS13 = 5 };

static int protocol_index(const char *s, size_t n)
{
    for (int i = 0; i < PROTO_COUNT; i++)
        if (text_item_is(s, n, protocol_names[i]))
            return i;
    return -1;
}

/* A protocol list in Postfix's syntax: names to allow (only those), "!name"
 * to exclude, ">=name" and "<=name" (Postfix 3.6) for bounds; separated by
 * white space, commas or colons.  Empty: hato's default, TLS 1.2 and 1.3.
 * Sets bit i of *allowed for protocol_names[i]. */
static enum config_status parse_protocols(struct parser *p, const char *key, unsigned *allowed,
                                          unsigned *line)
{
    char *v, w[512];
    enum config_status st = get(p, key, &v, line);
    if (st != CONFIG_OK)
        return st;
    unsigned include = 0, exclude = 0;
    int lo = 0, hi = PROTO_COUNT - 1;
    const char *cur = v, *item;
    size_t n;
    while (st == CONFIG_OK && text_list_next(&cur, ", \t:", &item, &n)) {
        size_t skip = 0;
        int kind = 0; /* 0 include, 1 exclude, 2 at least, 3 at most */
        if (n >= 1 && item[0] == '!')
            kind = 1, skip = 1;
        else if (n >= 2 && item[0] == '>' && item[1] == '=')
            kind = 2, skip = 2;
        else if (n >= 2 && item[0] == '<' && item[1] == '=')
            kind = 3, skip = 2;
        int i = protocol_index(item + skip, n - skip);
        if (i < 0) {
            st = fail(p, "%s%s = %s: unknown protocol \"%.*s\"; use SSLv2, SSLv3, TLSv1, TLSv1.1, "
                         "TLSv1.2 or TLSv1.3, each alone, after \"!\", \">=\" or \"<=\" "
                         "(for example >=TLSv1.2)", where(p, *line, w, sizeof w), key, v, (int)n, item);
            break;
        }
        if (kind == 0)
            include |= 1u << i;
        else if (kind == 1)
            exclude |= 1u << i;
        else if (kind == 2 && i > lo)
            lo = i;
        else if (kind == 3 && i < hi)
            hi = i;
    }
    if (st == CONFIG_OK) {
        unsigned all = (1u << PROTO_COUNT) - 1;
        if (v[0] == '\0')
            *allowed = (1u << PROTO_TLS12) | (1u << PROTO_TLS13);
        else {
            unsigned range = 0;
            for (int i = lo; i <= hi; i++)
                range |= 1u << i;
            *allowed = (include ? include : all) & range & ~exclude;
        }
        if ((*allowed & ((1u << PROTO_TLS12) | (1u << PROTO_TLS13))) == 0)
            st = fail(p, "%s%s = %s: allows neither TLSv1.2 nor TLSv1.3, the only versions hato "
                         "speaks; write >=TLSv1.2", where(p, *line, w, sizeof w), key, v);
    }
    free(v);
    return st;
}

/* The minimum version from a protocol list, with warnings for what hato
 * cannot do. */
static hato_tls_version min_version(struct parser *p, const char *key, unsigned allowed,
                                    unsigned line)
{
    char w[512];
    if (allowed & ((1u << PROTO_TLS12) - 1))
        warnf(p, "%s%s allows versions older than TLSv1.2; hato never goes below TLSv1.2 "
                 "(write >=TLSv1.2 to silence this warning)", where(p, line, w, sizeof w), key);
    if (!(allowed & (1u << PROTO_TLS13)))
        warnf(p, "%s%s excludes TLSv1.3; hato cannot set a maximum version and still "
                 "accepts TLSv1.3", where(p, line, w, sizeof w), key);
    return (allowed & (1u << PROTO_TLS12)) ? HATO_TLS_V1_2 : HATO_TLS_V1_3;
}

/* Digest names and sizes hato's pins accept (hato.h). */
static const struct {
    const char *name;
    size_t bytes;
} digests[] = {{"sha256", 32}, {"sha384", 48}, {"sha512", 64}, {"sha1", 20}};

/* A fingerprint of bytes bytes, colon-separated hex ("ab:cd:...", as
 * Postfix prints them) or plain hex, as "AB:CD:..." (malloc'd); NULL with
 * *bad when it is not that, NULL alone when out of memory. */
static char *normalize_fingerprint(const char *s, size_t n, size_t bytes, bool *bad)
{
    bool colons = memchr(s, ':', n) != NULL;
    size_t step = colons ? 3 : 2;
    *bad = n != bytes * step - (colons ? 1 : 0);
    for (size_t i = 0; !*bad && i < n; i++) {
        if (colons && i % 3 == 2)
            *bad = s[i] != ':';
        else
            *bad = !isxdigit((unsigned char)s[i]);
    }
    if (*bad)
        return NULL;
    char *out = malloc(bytes * 3);
    if (out == NULL)
        return NULL;
    for (size_t k = 0; k < bytes; k++) {
        out[k * 3] = (char)toupper((unsigned char)s[k * step]);
        out[k * 3 + 1] = (char)toupper((unsigned char)s[k * step + 1]);
        out[k * 3 + 2] = k + 1 < bytes ? ':' : '\0';
    }
    return out;
}

static enum config_status parse_fingerprints(struct parser *p, const char *key, size_t bytes,
                                             const char *digest, char ***out, size_t *nout)
{
    char *v, w[512];
    unsigned line;
    enum config_status st = get(p, key, &v, &line);
    if (st != CONFIG_OK)
        return st;
    const char *cur = v, *item;
    size_t n;
    while (text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n)) {
        bool bad;
        char *fp = normalize_fingerprint(item, n, bytes, &bad);
        if (fp == NULL && bad) {
            st = fail(p, "%s%s: \"%.*s\" is not a %s fingerprint: expected %zu bytes as hex, "
                         "colon-separated as Postfix prints them (AB:CD:...), for "
                         "smtp_tls_fingerprint_digest = %s", where(p, line, w, sizeof w), key,
                      (int)n, item, digest, bytes, digest);
            break;
        }
        if (!push(out, nout, fp)) {
            st = nomem(p);
            break;
        }
    }
    free(v);
    return st;
}

static enum config_status resolve_level(struct parser *p)
{
    char *v, w[512];
    unsigned line;
    struct config *c = p->c;
    enum config_status st = get(p, "smtp_tls_security_level", &v, &line);
    if (st != CONFIG_OK)
        return st;
    static const struct {
        const char *name;
        hato_tls_level level;
    } levels[] = {
        {"none", HATO_TLS_NONE}, {"may", HATO_TLS_MAY}, {"encrypt", HATO_TLS_ENCRYPT},
        {"verify", HATO_TLS_VERIFY}, {"secure", HATO_TLS_SECURE},
        {"fingerprint", HATO_TLS_FINGERPRINT}, {"tofu", HATO_TLS_TOFU},
    };
    static const char *const accepted = "none, may, encrypt, verify, secure, fingerprint or tofu";
    bool known = v[0] == '\0';
    c->tls_level = HATO_TLS_VERIFY;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcasecmp(v, levels[i].name) == 0) {
            c->tls_level = levels[i].level;
            known = true;
        }
    if (known) {
        /* done */
    } else if (strcasecmp(v, "dane") == 0 || strcasecmp(v, "dane-only") == 0 ||
             strcasecmp(v, "halfdane") == 0) {
        st = fail(p, "%ssmtp_tls_security_level = %s: DANE needs DNSSEC-validated TLSA lookups, "
                     "which hato does not do; use %s (fingerprint pins the server's "
                     "certificate or key without DNS)", where(p, line, w, sizeof w), v, accepted);
    } else {
        st = fail(p, "%ssmtp_tls_security_level = %s: unknown level; use %s",
                  where(p, line, w, sizeof w), v, accepted);
    }
    free(v);
    return st;
}

static enum config_status resolve_tls(struct parser *p)
{
    char *v, w[512];
    unsigned line;
    struct config *c = p->c;
    enum config_status st = resolve_level(p);
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

    /* Both lists are checked; the one for the level in effect counts, as
     * in Postfix (smtp_tls_protocols is for opportunistic TLS). */
    unsigned opportunistic, mandatory, oline, mline;
    if ((st = parse_protocols(p, "smtp_tls_protocols", &opportunistic, &oline)) != CONFIG_OK)
        return st;
    if ((st = parse_protocols(p, "smtp_tls_mandatory_protocols", &mandatory, &mline)) != CONFIG_OK)
        return st;
    if (c->tls_level == HATO_TLS_MAY)
        c->tls_min_version = min_version(p, "smtp_tls_protocols", opportunistic, oline);
    else if (c->tls_level != HATO_TLS_NONE)
        c->tls_min_version = min_version(p, "smtp_tls_mandatory_protocols", mandatory, mline);

    if ((st = get_string(p, "smtp_tls_cert_file", &c->cert_file)) != CONFIG_OK)
        return st;
    if ((st = get(p, "smtp_tls_key_file", &v, &line)) != CONFIG_OK)
        return st;
    if (v[0] != '\0' && c->cert_file == NULL)
        st = fail(p, "%ssmtp_tls_key_file = %s: set without smtp_tls_cert_file; give the "
                     "certificate too (or remove the key)", where(p, line, w, sizeof w), v);
    if (st == CONFIG_OK && v[0] != '\0')
        c->key_file = v;
    else
        free(v);
    if (st != CONFIG_OK)
        return st;

    if ((st = get(p, "smtp_tls_fingerprint_digest", &v, &line)) != CONFIG_OK)
        return st;
    size_t bytes = 0;
    for (size_t i = 0; i < sizeof digests / sizeof digests[0]; i++)
        if (strcasecmp(v, digests[i].name) == 0) {
            bytes = digests[i].bytes;
            for (char *q = v; *q; q++)
                *q = (char)tolower((unsigned char)*q);
        }
    if (bytes == 0) {
        st = fail(p, "%ssmtp_tls_fingerprint_digest = %s: use sha256, sha384, sha512 or sha1%s",
                  where(p, line, w, sizeof w), v,
                  strcasecmp(v, "md5") == 0 ? " (md5 is too weak to pin a server)" : "");
        free(v);
        return st;
    }
    c->fp_digest = v;
    if ((st = parse_fingerprints(p, "smtp_tls_fingerprint_cert_match", bytes, c->fp_digest,
                                 &c->fp_cert, &c->nfp_cert)) != CONFIG_OK)
        return st;
    if ((st = parse_fingerprints(p, "smtp_tls_fingerprint_pkey_match", bytes, c->fp_digest,
                                 &c->fp_pkey, &c->nfp_pkey)) != CONFIG_OK)
        return st;
    bool pins = c->nfp_cert + c->nfp_pkey > 0;
    if (c->tls_level == HATO_TLS_FINGERPRINT && !pins) {
        unsigned l;
        char scratch[8];
        raw_value(p, "smtp_tls_security_level", &l, scratch, sizeof scratch);
        return fail(p, "%ssmtp_tls_security_level = fingerprint: no pin is set; give the "
                       "server's fingerprint in smtp_tls_fingerprint_cert_match or "
                       "smtp_tls_fingerprint_pkey_match", where(p, l, w, sizeof w));
    }
    if (c->tls_level != HATO_TLS_FINGERPRINT && pins)
        warnf(p, "%s: smtp_tls_fingerprint_cert_match and smtp_tls_fingerprint_pkey_match are "
                 "ignored: they apply only with smtp_tls_security_level = fingerprint", p->name);

    if ((st = get_string(p, "data_directory", &c->data_directory)) != CONFIG_OK)
        return st;
    if (c->data_directory != NULL && c->data_directory[0] != '/') {
        unsigned l;
        char scratch[8];
        raw_value(p, "data_directory", &l, scratch, sizeof scratch);
        return fail(p, "%sdata_directory = %s: not an absolute path", where(p, l, w, sizeof w),
                    c->data_directory);
    }
    /* Accepted so a Postfix main.cf loads: tickets are kept in hato's state
     * directory whatever table this names. */
    if ((st = get(p, "smtp_tls_session_cache_database", &v, &line)) != CONFIG_OK)
        return st;
    free(v);
    if ((st = get(p, "smtp_tls_session_cache_timeout", &v, &line)) != CONFIG_OK)
        return st;
    unsigned ms;
    if (config_parse_time(v, &ms) != 0)
        st = fail(p, "%ssmtp_tls_session_cache_timeout = %s: not a time; use a number with s, m, "
                     "h, d or w (3600s, 1h)", where(p, line, w, sizeof w), v);
    else
        c->session_cache_timeout = ms / 1000;
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

/* Postfix's SASL security options. */
static const struct {
    const char *name;
    unsigned flag;
} security_options[] = {
    {"noanonymous", HATO_SASL_NOANONYMOUS},
    {"noplaintext", HATO_SASL_NOPLAINTEXT},
    {"nodictionary", HATO_SASL_NODICTIONARY},
    {"mutual_auth", HATO_SASL_MUTUAL_AUTH},
};

static enum config_status parse_security(struct parser *p, const char *key, unsigned *flags)
{
    char *v, w[512];
    unsigned line;
    enum config_status st = get(p, key, &v, &line);
    if (st != CONFIG_OK)
        return st;
    *flags = 0;
    const char *cur = v, *item;
    size_t n;
    while (text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n)) {
        size_t i = 0, count = sizeof security_options / sizeof security_options[0];
        while (i < count && !text_item_is(item, n, security_options[i].name))
            i++;
        if (i < count)
            *flags |= security_options[i].flag;
        else
            warnf(p, "%s%s: option %.*s is not used by hato and is ignored "
                     "(hato knows noanonymous, noplaintext, nodictionary and mutual_auth)",
                  where(p, line, w, sizeof w), key, (int)n, item);
    }
    free(v);
    return CONFIG_OK;
}

/* A list of tables (key) into *out: "type:/path" with type hash, btree or
 * texthash, or an absolute path.  Another type is an error, or with
 * skip_unsupported a warning and the table is left out.  *line receives the
 * key's line (0: the default). */
static enum config_status parse_tables(struct parser *p, const char *key, bool skip_unsupported,
                                       char ***out, size_t *nout, unsigned *line)
{
    char *v, w[512];
    enum config_status st = get(p, key, &v, line);
    if (st != CONFIG_OK)
        return st;
    const char *cur = v, *item;
    size_t n;
    while (st == CONFIG_OK && text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n)) {
        const char *path = item;
        const char *colon = memchr(item, ':', n);
        if (colon != NULL && item[0] != '/') {
            size_t tlen = (size_t)(colon - item);
            if (!text_item_is(item, tlen, "hash") && !text_item_is(item, tlen, "texthash") &&
                !text_item_is(item, tlen, "btree")) {
                if (skip_unsupported) {
                    warnf(p, "%s%s: table %.*s is ignored: hato reads only the text file of a "
                             "hash:, btree: or texthash: table", where(p, *line, w, sizeof w), key,
                          (int)n, item);
                    continue;
                }
                st = fail(p, "%s%s = %s: table type %.*s: is not supported; "
                             "hato reads the text file of a hash:, btree: or texthash: table "
                             "(write hash:/path/to/file)", where(p, *line, w, sizeof w), key, v,
                          (int)tlen, item);
                break;
            }
            path = colon + 1;
        }
        size_t plen = n - (size_t)(path - item);
        if (plen == 0 || path[0] != '/')
            st = fail(p, "%s%s = %s: %.*s is not an absolute path",
                      where(p, *line, w, sizeof w), key, v, (int)plen, path);
        else if (!push(out, nout, dup_range(path, plen)))
            st = nomem(p);
    }
    free(v);
    return st;
}

static enum config_status resolve_relayhost_maps(struct parser *p)
{
    struct config *c = p->c;
    unsigned line;
    enum config_status st = parse_tables(p, "sender_dependent_relayhost_maps", false,
                                         &c->relayhost_maps, &c->nrelayhost_maps, &line);
    if (st == CONFIG_OK)
        st = resolve_fallbacks(p);
    return st;
}

static enum config_status parse_password_maps(struct parser *p)
{
    struct config *c = p->c;
    return parse_tables(p, "smtp_sasl_password_maps", false, &c->password_maps,
                        &c->npassword_maps, &c->password_maps_line);
}

/* mydestination, alias and rewriting tables. */
static enum config_status resolve_local(struct parser *p)
{
    struct config *c = p->c;
    enum config_status st;
    char *v, w[512];
    unsigned line, dbline;

    if ((st = get(p, "mydestination", &v, &line)) != CONFIG_OK)
        return st;
    const char *cur = v, *item;
    size_t n;
    while (st == CONFIG_OK && text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n)) {
        if (memchr(item, '/', n) != NULL || memchr(item, ':', n) != NULL)
            warnf(p, "%smydestination: %.*s is ignored: hato takes domain names here, not tables "
                     "or files", where(p, line, w, sizeof w), (int)n, item);
        else if (!push(&c->mydestination, &c->nmydestination, dup_range(item, n)))
            st = nomem(p);
    }
    free(v);
    if (st != CONFIG_OK)
        return st;

    /* Aliases are optional: a table type hato cannot read leaves it out. */
    if ((st = parse_tables(p, "alias_maps", true, &c->alias_maps, &c->nalias_maps, &line)) != CONFIG_OK)
        return st;
    c->alias_maps_set = line > 0;
    if ((st = parse_tables(p, "alias_database", true, &c->alias_database, &c->nalias_database,
                           &dbline)) != CONFIG_OK)
        return st;
    c->alias_database_set = dbline > 0 || c->alias_maps_set; /* the default is $alias_maps */
    /* Rewriting the sender is what lets the provider accept it: a table
     * hato cannot read is an error, not a silent "no rewriting". */
    if ((st = parse_tables(p, "sender_canonical_maps", false, &c->canonical_maps,
                           &c->ncanonical_maps, &line)) != CONFIG_OK)
        return st;
    return parse_tables(p, "smtp_generic_maps", false, &c->generic_maps, &c->ngeneric_maps, &line);
}

/* smtp_sasl_password: taken as written (a password may hold '$'), never
 * echoed. */
static enum config_status parse_config_password(struct parser *p)
{
    struct config *c = p->c;
    struct entry *e = find_entry(p, SECRET_KEY);
    char w[512];
    if (e == NULL || e->value[0] == '\0')
        return CONFIG_OK;
    if ((p->file_mode & 077) != 0)
        return fail(p, "%s%s is set but %s may be read by other users (mode %03o); run: chmod 600 %s "
                       "(or, better, move the password to smtp_sasl_password_maps)",
                    where(p, e->line, w, sizeof w), SECRET_KEY, p->name, p->file_mode & 0777, p->name);
    const char *colon = strchr(e->value, ':');
    if (colon == NULL || colon == e->value)
        return fail(p, "%s%s: expected user:password (the value is not shown)",
                    where(p, e->line, w, sizeof w), SECRET_KEY);
    c->config_user = dup_range(e->value, (size_t)(colon - e->value));
    c->config_password = strdup(colon + 1);
    c->config_password_line = e->line;
    if (c->config_user == NULL || c->config_password == NULL)
        return nomem(p);
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
    if ((st = get_bool(p, "smtp_sender_dependent_authentication", &c->sender_dependent)) != CONFIG_OK)
        return st;
    if ((st = get_string(p, "smtp_sasl_mechanism_filter", &c->mech_filter)) != CONFIG_OK)
        return st;
    if ((st = get_string(p, "smtp_discard_ehlo_keywords", &c->discard_ehlo)) != CONFIG_OK)
        return st;
    if ((st = parse_security(p, "smtp_sasl_security_options", &c->sasl_plain)) != CONFIG_OK)
        return st;
    if ((st = parse_security(p, "smtp_sasl_tls_security_options", &c->sasl_tls)) != CONFIG_OK)
        return st;
    if ((st = parse_password_maps(p)) != CONFIG_OK)
        return st;

    if ((st = get_string(p, "smtp_sasl_password_command", &c->password_command)) != CONFIG_OK)
        return st;
    if (c->password_command != NULL && c->password_command[strspn(c->password_command, " \t")] != '/') {
        raw_value(p, "smtp_sasl_password_command", &line, w, sizeof w);
        return fail(p, "%ssmtp_sasl_password_command = %s: the command must start with an "
                       "absolute path (it runs without a shell and without a PATH search), "
                       "e.g. /usr/bin/secret-tool lookup host smtp.example.com",
                    where(p, line, w, sizeof w), c->password_command);
    }

    if ((st = get(p, "smtp_sasl_password_credential", &v, &line)) != CONFIG_OK)
        return st;
    c->password_credential_set = line > 0;
    if (v[0] == '\0' || strchr(v, '/') != NULL || strcmp(v, ".") == 0 || strcmp(v, "..") == 0 ||
        strlen(v) > 255) {
        st = fail(p, "%ssmtp_sasl_password_credential = %s: not a credential name; use a file "
                     "name such as hato-password, as given to LoadCredential=",
                  where(p, line, w, sizeof w), v);
        free(v);
        return st;
    }
    c->password_credential = v;
    return parse_config_password(p);
}

/* queue_directory and the retry times (docs/queue.md). */
static enum config_status queue_values(struct parser *p)
{
    struct config *c = p->c;
    enum config_status st;
    char *v, w[512];
    unsigned line;

    if ((st = get(p, "queue_directory", &v, &line)) != CONFIG_OK)
        return st;
    if (v[0] != '/') {
        st = fail(p, "%squeue_directory = %s: must be an absolute path, such as /var/spool/hato",
                  where(p, line, w, sizeof w), v);
        free(v);
        return st;
    }
    c->queue_directory = v;

    static const struct {
        const char *key;
        size_t off;
        bool zero_ok; /* Postfix: a lifetime of 0 means "no retries" */
    } times[] = {
        {"minimal_backoff_time", offsetof(struct config, min_backoff), false},
        {"maximal_backoff_time", offsetof(struct config, max_backoff), false},
        {"maximal_queue_lifetime", offsetof(struct config, max_queue_lifetime), true},
        {"bounce_queue_lifetime", offsetof(struct config, bounce_queue_lifetime), true},
    };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        if ((st = get(p, times[i].key, &v, &line)) != CONFIG_OK)
            return st;
        unsigned ms;
        if (config_parse_time(v, &ms) != 0 || (ms < 1000 && !(ms == 0 && times[i].zero_ok)))
            st = fail(p, "%s%s = %s: not a time; use a number with s, m, h, d or w "
                         "(300s, 5m, 1h, 5d; a bare number is seconds)%s",
                      where(p, line, w, sizeof w), times[i].key, v,
                      times[i].zero_ok ? ", or 0" : ", at least 1s");
        else
            *(unsigned *)((char *)c + times[i].off) = ms / 1000;
        free(v);
        if (st != CONFIG_OK)
            return st;
    }
    if (c->max_backoff < c->min_backoff)
        return fail(p, "%s: maximal_backoff_time (%us) is shorter than minimal_backoff_time "
                       "(%us); raise maximal_backoff_time", c->path, c->max_backoff,
                    c->min_backoff);

    /* hato's own keys: Postfix has no setgid submission to bound. */
    static const char *const shares[] = {"hato_user_queue_limit", "hato_user_queue_size_limit"};
    for (size_t i = 0; i < 2; i++) {
        if ((st = get(p, shares[i], &v, &line)) != CONFIG_OK)
            return st;
        char *end;
        errno = 0;
        unsigned long long n = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 ||
            (i == 0 && n > 1000000000ull))
            st = fail(p, "%s%s = %s: not a number; give a whole number of %s, or 0 for no limit",
                      where(p, line, w, sizeof w), shares[i], v, i == 0 ? "messages" : "bytes");
        else if (i == 0)
            c->user_queue_limit = (unsigned long)n;
        else
            c->user_queue_size_limit = n;
        free(v);
        if (st != CONFIG_OK)
            return st;
    }
    return get_bool(p, "smtputf8_enable", &c->smtputf8_enable);
}

/* ------------------------------------------------------------------ */
/* LAN submission (hato -bs)                                          */

int config_parse_network(const char *s, size_t n, struct config_network *out, const char **why)
{
    char a[INET6_ADDRSTRLEN + 8];
    const char *end = s + n;
    const char *slash = memchr(s, '/', n);
    size_t alen = slash ? (size_t)(slash - s) : n;
    memset(out, 0, sizeof *out);
    if (alen >= 2 && s[0] == '[' && s[alen - 1] == ']') {
        s++;
        alen -= 2;
    } else if (alen > 0 && (s[0] == '[' || s[0] == '!')) {
        *why = s[0] == '!' ? "negation is not supported" : "unbalanced brackets";
        return -1;
    }
    if (alen == 0 || alen >= sizeof a) {
        *why = "not an address";
        return -1;
    }
    memcpy(a, s, alen);
    a[alen] = '\0';
    unsigned max;
    if (inet_pton(AF_INET, a, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, a, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        *why = "not an IPv4 or IPv6 address (tables, files and host names are not supported)";
        return -1;
    }
    out->prefix = max;
    if (slash != NULL) {
        const char *d = slash + 1;
        unsigned v = 0;
        if (d == end || end - d > 3) {
            *why = "the prefix length is not a number";
            return -1;
        }
        for (; d < end; d++) {
            if (!isdigit((unsigned char)*d)) {
                *why = "the prefix length is not a number";
                return -1;
            }
            v = v * 10 + (unsigned)(*d - '0');
        }
        if (v > max) {
            *why = "the prefix length is too long for the address";
            return -1;
        }
        out->prefix = v;
    }
    /* As Postfix: 192.168.1.5/24 is a mistake for 192.168.1.0/24. */
    for (unsigned bit = out->prefix; bit < max; bit++) {
        if (out->addr[bit / 8] & (0x80u >> (bit % 8))) {
            *why = "the address has bits set beyond the prefix length (use the network address)";
            return -1;
        }
    }
    return 0;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool config_network_match(const struct config_network *nets, size_t n, int family,
                          const unsigned char *addr)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET6 && memcmp(addr, mapped, 12) == 0) {
        family = AF_INET;
        addr += 12;
    }
    for (size_t i = 0; i < n; i++)
        if (nets[i].family == family && prefix_equal(nets[i].addr, addr, nets[i].prefix))
            return true;
    return false;
}

static enum config_status get_count(struct parser *p, const char *key, unsigned long long max,
                                    unsigned long long *out)
{
    char *v, w[512];
    unsigned line;
    enum config_status st = get(p, key, &v, &line);
    if (st != CONFIG_OK)
        return st;
    unsigned long long n = 0;
    const char *d = v;
    for (; isdigit((unsigned char)*d) && n <= max; d++)
        n = n * 10 + (unsigned)(*d - '0');
    if (d == v || *d != '\0' || n > max)
        st = fail(p, "%s%s = %s: not a number; use digits only, at most %llu",
                  where(p, line, w, sizeof w), key, v, max);
    else
        *out = n;
    free(v);
    return st;
}

static enum config_status smtpd_values(struct parser *p)
{
    struct config *c = p->c;
    enum config_status st;
    char *v, w[512];
    unsigned line;

    if ((st = get(p, "mynetworks", &v, &line)) != CONFIG_OK)
        return st;
    const char *cur = v, *item;
    size_t n;
    while (st == CONFIG_OK && text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n)) {
        struct config_network net;
        const char *why;
        if (config_parse_network(item, n, &net, &why) != 0) {
            st = fail(p, "%smynetworks: %.*s: %s; write address/prefix, such as 192.168.1.0/24 "
                         "or [fd00::]/64", where(p, line, w, sizeof w), (int)n, item, why);
            break;
        }
        struct config_network *nv = realloc(c->mynetworks, (c->nmynetworks + 1) * sizeof *nv);
        if (nv == NULL) {
            st = nomem(p);
            break;
        }
        c->mynetworks = nv;
        c->mynetworks[c->nmynetworks++] = net;
    }
    free(v);
    if (st != CONFIG_OK)
        return st;

    unsigned long long u = 0; /* set by every get_count that returns CONFIG_OK */
    if ((st = get_count(p, "message_size_limit", 1ull << 40, &c->message_size_limit)) != CONFIG_OK)
        return st;
    if ((st = get_count(p, "smtpd_hard_error_limit", 10000, &u)) != CONFIG_OK)
        return st;
    c->smtpd_hard_error_limit = (unsigned)u;
    if ((st = get_count(p, "smtpd_client_message_rate_limit", 100000, &u)) != CONFIG_OK)
        return st;
    c->smtpd_message_limit = (unsigned)u;
    if ((st = get(p, "smtpd_timeout", &v, &line)) != CONFIG_OK)
        return st;
    unsigned ms;
    if (config_parse_time(v, &ms) != 0 || ms < 1000)
        st = fail(p, "%ssmtpd_timeout = %s: not a time; use a number with s, m, h, d or w "
                     "(300s, 5m; a bare number is seconds), at least 1s",
                  where(p, line, w, sizeof w), v);
    else
        c->smtpd_timeout = ms / 1000;
    free(v);
    if (st != CONFIG_OK)
        return st;
    if ((st = get_bool(p, "smtpd_sasl_auth_enable", &c->smtpd_sasl_enable)) != CONFIG_OK)
        return st;
    if ((st = get_bool(p, "smtpd_sasl_auth_required", &c->smtpd_sasl_required)) != CONFIG_OK)
        return st;
    if ((st = get_string(p, "smtpd_sasl_password_file", &c->smtpd_sasl_password_file)) != CONFIG_OK)
        return st;
    if (c->smtpd_sasl_enable && c->smtpd_sasl_password_file == NULL)
        st = fail(p, "%s: smtpd_sasl_auth_enable = yes needs smtpd_sasl_password_file, a file "
                     "of user:crypt-hash lines (make a hash with mkpasswd)", p->name);
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
    const char *cur = v, *item;
    size_t n;
    while (text_list_next(&cur, TEXT_LIST_SEPARATORS, &item, &n)) {
        if (text_item_is(item, n, "all"))
            v4 = v6 = true;
        else if (text_item_is(item, n, "ipv4"))
            v4 = true;
        else if (text_item_is(item, n, "ipv6"))
            v6 = true;
        else
            bad = true;
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
    if ((st = smtpd_values(p)) != CONFIG_OK)
        return st;
    return queue_values(p);
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
    c->smtputf8_enable = true;
    c->sasl_plain = HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS;
    c->sasl_tls = HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS;
    c->tls_min_version = HATO_TLS_V1_2;
}

static enum config_status parse_text(struct config *c, const char *name, const char *text,
                                     size_t len, unsigned file_mode,
                                     const struct config_env *env, char *err, size_t errlen)
{
    struct parser p = {.c = c, .env = env, .name = name, .file_mode = file_mode,
                       .err = err, .errlen = errlen};
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
        st = resolve_relayhost_maps(&p);
    if (st == CONFIG_OK)
        st = resolve_tls(&p);
    if (st == CONFIG_OK)
        st = resolve_sasl(&p);
    if (st == CONFIG_OK)
        st = resolve_local(&p);

    for (size_t i = 0; i < p.n; i++) {
        free(p.v[i].key);
        wipe_free_str(p.v[i].value);
    }
    free(p.v);
    return st;
}

enum config_status config_parse(struct config *c, const char *name, const char *text,
                                size_t len, const struct config_env *env,
                                char *err, size_t errlen)
{
    return parse_text(c, name, text, len, 0600, env, err, errlen);
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
            wipe(text, cap);
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
    enum config_status st = parse_text(c, path, text, len, (unsigned)(sb.st_mode & 07777), env,
                                       err, errlen);
    wipe(text, cap);
    free(text);
    return st;
}

static void free_vector(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void config_free(struct config *c)
{
    free(c->path);
    free(c->relay_host);
    for (size_t i = 0; i < c->nfallback_relays; i++)
        free(c->fallback_relays[i].host);
    free(c->fallback_relays);
    free_vector(c->relayhost_maps, c->nrelayhost_maps);
    free(c->ca_file);
    free(c->ca_path);
    free_vector(c->password_maps, c->npassword_maps);
    free(c->mech_filter);
    free(c->discard_ehlo);
    free(c->myhostname);
    free(c->mydomain);
    free(c->myorigin);
    free(c->helo_name);
    free(c->maillog_file);
    free_vector(c->mydestination, c->nmydestination);
    free_vector(c->alias_maps, c->nalias_maps);
    free_vector(c->alias_database, c->nalias_database);
    free_vector(c->canonical_maps, c->ncanonical_maps);
    free_vector(c->generic_maps, c->ngeneric_maps);
    free(c->queue_directory);
    free(c->mynetworks);
    free(c->smtpd_sasl_password_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->fp_digest);
    free_vector(c->fp_cert, c->nfp_cert);
    free_vector(c->fp_pkey, c->nfp_pkey);
    free(c->data_directory);
    free(c->password_command);
    free(c->password_credential);
    wipe_free_str(c->config_user);
    wipe_free_str(c->config_password);
    memset(c, 0, sizeof *c);
}

int config_state_dir(const char *data_directory, unsigned long uid, const char *xdg_state_home,
                     const char *home, char **out)
{
    const char *base, *suffix;
    *out = NULL;
    if (data_directory != NULL) {
        base = data_directory;
        suffix = "";
    } else if (uid == 0) {
        base = "/var/lib/hato";
        suffix = "";
    } else if (xdg_state_home != NULL && xdg_state_home[0] == '/') {
        /* The XDG base directory spec: a relative value is to be ignored. */
        base = xdg_state_home;
        suffix = "/hato";
    } else if (home != NULL && home[0] == '/') {
        base = home;
        suffix = "/.local/state/hato";
    } else {
        return -1;
    }
    size_t blen = strlen(base);
    while (blen > 1 && base[blen - 1] == '/')
        blen--;
    size_t n = blen + strlen(suffix) + 1;
    *out = malloc(n);
    if (*out == NULL)
        return -2;
    snprintf(*out, n, "%.*s%s", (int)blen, base, suffix);
    return 0;
}
