#include "message/params.h"

#include <idn2.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool is_ascii(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* Appends fmt's output to dst; false when it does not fit. */
static bool append(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool append(char *dst, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(dst);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst + used, cap - used, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap - used;
}

bool xtext_append(char *dst, size_t cap, const char *src)
{
    size_t used = strlen(dst);
    for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
        bool plain = *p >= '!' && *p <= '~' && *p != '+' && *p != '=';
        size_t need = plain ? 1 : 3;
        if (used + need >= cap)
            return false;
        if (plain)
            dst[used] = (char)*p;
        else
            snprintf(dst + used, 4, "+%02X", *p);
        used += need;
    }
    dst[used] = '\0';
    return true;
}

/* One code point from s (at most 4 bytes, *len set), or -1 for a byte that
 * does not start valid UTF-8 (*len 1). */
static long utf8_next(const unsigned char *s, size_t *len)
{
    unsigned char c = s[0];
    int n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    *len = 1;
    if (n == 0)
        return -1;
    long cp = n == 1 ? c : c & (0x7f >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    *len = (size_t)n;
    return cp;
}

/* RFC 6533 section 3: a "utf-8" address for ORCPT.  With SMTPUTF8 the
 * UTF-8 stays (utf-8-addr-unitext); without, every non-ASCII code point
 * becomes \x{HEX} (utf-8-addr-xtext).  "+", "=", "\" and controls are
 * escaped the same way in both. */
static bool utf8_addr_append(char *dst, size_t cap, const char *addr, bool keep_utf8)
{
    const unsigned char *p = (const unsigned char *)addr;
    while (*p != '\0') {
        size_t len;
        long cp = utf8_next(p, &len);
        bool ok;
        if (cp < 0)
            ok = append(dst, cap, "\\x{%X}", *p);
        else if (cp >= 0x80 && keep_utf8)
            ok = append(dst, cap, "%.*s", (int)len, (const char *)p);
        else if (cp > ' ' && cp < 0x7f && cp != '+' && cp != '=' && cp != '\\')
            ok = append(dst, cap, "%c", (int)cp);
        else
            ok = append(dst, cap, "\\x{%lX}", cp);
        if (!ok)
            return false;
        p += len;
    }
    return true;
}

/* The address as sent without SMTPUTF8: its domain as an A-label (IDNA
 * 2008).  false with why set when that cannot be done. */
static bool address_ascii(const char *addr, char *out, size_t cap, char *why, size_t whylen)
{
    if (is_ascii(addr)) {
        snprintf(out, cap, "%s", addr);
        return true;
    }
    const char *at = strrchr(addr, '@');
    size_t local_len = at ? (size_t)(at - addr) : strlen(addr);
    for (size_t i = 0; i < local_len; i++) {
        if ((unsigned char)addr[i] >= 0x80) {
            snprintf(why, whylen, "the local part of <%s> is not ASCII", addr);
            return false;
        }
    }
    char *ascii = NULL; /* owned by libidn2, released with idn2_free */
    int rc = idn2_to_ascii_8z(at + 1, &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
        snprintf(why, whylen, "the domain of <%s> is not a valid internationalised "
                 "domain name (%s)", addr, idn2_strerror(rc));
        return false;
    }
    int n = snprintf(out, cap, "%.*s@%s", (int)local_len, addr, ascii);
    idn2_free(ascii);
    if (n < 0 || (size_t)n >= cap) {
        snprintf(why, whylen, "<%s> is too long as an A-label", addr);
        return false;
    }
    return true;
}

static bool refuse(hato_error *err, hato_code code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool refuse(hato_error *err, hato_code code, const char *enhanced, const char *fmt, ...)
{
    char what[ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    error_set(err, code, HATO_LAYER_MESSAGE, false, "%s", what);
    snprintf(err->enhanced, sizeof err->enhanced, "%s", enhanced);
    return false;
}

/* BODY=, and whether 8-bit bytes must be refused while streaming. */
static bool plan_body(mail_plan *p, const hato_message *m, const mail_link *l, hato_error *err)
{
    unsigned caps = l->caps->flags;
    bool offers_8bit = (caps & EHLO_8BITMIME) != 0;
    switch (m->body) {
    case HATO_BODY_BINARYMIME:
        if (!p->chunking || !(caps & EHLO_BINARYMIME))
            /* RFC 3030 section 3: BINARYMIME only travels in BDAT. */
            return refuse(err, HATO_E_EXTENSION, "5.6.3", "the message is binary (BINARYMIME) "
                          "but %s does not offer %s; it was not sent", l->host,
                          p->chunking ? "BINARYMIME" : "CHUNKING");
        p->body_param = "BINARYMIME";
        p->body_mode = BODY_BINARY;
        return true;
    case HATO_BODY_8BITMIME:
        break;
    case HATO_BODY_7BIT:
        p->refuse_8bit = true;
        return true;
    case HATO_BODY_AUTO:
        if (m->reader != NULL) {
            /* Unknown until it streams: declaring 8BITMIME for 7-bit text
             * is harmless; without it, 8-bit bytes stop the send. */
            if (offers_8bit)
                p->body_param = "8BITMIME";
            else
                p->refuse_8bit = true;
            return true;
        }
        if (!body_has_8bit(m->content, m->content_len))
            return true;
        break;
    }
    if (!offers_8bit)
        /* RFC 6152 section 3 lets a client convert or refuse; converting
         * MIME parts to quoted-printable rewrites what the author signed
         * (DKIM), so hato refuses and says so. */
        return refuse(err, HATO_E_EXTENSION, "5.6.3", "the message holds 8-bit bytes but %s "
                      "does not offer 8BITMIME; it was not sent (encode it as "
                      "quoted-printable or base64, or use a relay that takes 8-bit mail)",
                      l->host);
    p->body_param = "8BITMIME";
    return true;
}

static bool plan_utf8(mail_plan *p, const hato_message *m, const mail_link *l, hato_error *err)
{
    bool utf8_addresses = !is_ascii(m->sender);
    for (size_t i = 0; i < m->nrcpts && !utf8_addresses; i++)
        utf8_addresses = !is_ascii(m->rcpts[i].address);
    if (!utf8_addresses && !m->utf8_headers)
        return true;
    if (l->caps->flags & EHLO_SMTPUTF8) {
        p->smtputf8 = true;
        return true;
    }
    if (m->utf8_headers)
        return refuse(err, HATO_E_EXTENSION, "5.6.7", "the message's headers hold UTF-8 "
                      "(RFC 6532) but %s does not offer SMTPUTF8; it was not sent", l->host);
    /* RFC 6531 section 3.2: without SMTPUTF8 only ASCII goes; a domain has
     * an ASCII form, a local part does not. */
    char ascii[512], why[600];
    for (size_t i = 0; i <= m->nrcpts; i++) {
        const char *a = i == 0 ? m->sender : m->rcpts[i - 1].address;
        if (!address_ascii(a, ascii, sizeof ascii, why, sizeof why))
            return refuse(err, HATO_E_EXTENSION, "5.6.7", "%s, and %s does not offer "
                          "SMTPUTF8; the message was not sent", why, l->host);
    }
    return true;
}

bool mail_plan_make(mail_plan *p, const hato_message *m, const mail_link *l, hato_error *err)
{
    const ehlo_caps *c = l->caps;
    memset(p, 0, sizeof *p);
    p->chunking = (c->flags & EHLO_CHUNKING) != 0;
    p->body_mode = p->chunking ? BODY_CHUNK : BODY_DATA;
    if (!plan_body(p, m, l, err) || !plan_utf8(p, m, l, err))
        return false;

    uint64_t size = m->reader != NULL ? m->size_hint : m->content_len;
    if (c->flags & EHLO_SIZE) {
        /* RFC 1870 section 6.1: a client that knows the message exceeds
         * the limit does not try. */
        if (c->size_limit > 0 && size > c->size_limit)
            return refuse(err, HATO_E_TOO_BIG, "5.3.4", "the message is %llu bytes and %s takes "
                          "at most %llu (its SIZE); it was not sent", (unsigned long long)size,
                          l->host, (unsigned long long)c->size_limit);
        p->size = size;
    }
    p->dsn = (c->flags & EHLO_DSN) &&
             (m->dsn_notify != 0 || m->dsn_ret != HATO_DSN_RET_DEFAULT || m->dsn_envid[0]);
    if (m->requiretls) {
        /* RFC 8689 section 4.1: only over TLS whose peer was authenticated,
         * and only to a server that promises to keep requiring it. */
        if (!l->tls_verified)
            return refuse(err, HATO_E_EXTENSION, "5.7.30", "REQUIRETLS was asked for, but the "
                          "link to %s is not TLS with a verified certificate "
                          "(smtp_tls_security_level = verify or higher); it was not sent",
                          l->host);
        if (!(c->flags & EHLO_REQUIRETLS))
            return refuse(err, HATO_E_EXTENSION, "5.7.30", "REQUIRETLS was asked for, but %s "
                          "does not offer it; the message was not sent", l->host);
        p->requiretls = true;
    }
    return true;
}

/* "<address>" as it goes on the wire under plan p. */
static bool path_append(const mail_plan *p, char *line, size_t cap, const char *addr)
{
    if (p->smtputf8 || is_ascii(addr))
        return append(line, cap, "<%s>", addr);
    char ascii[512], why[600];
    return address_ascii(addr, ascii, sizeof ascii, why, sizeof why) &&
           append(line, cap, "<%s>", ascii);
}

bool mail_from_line(const mail_plan *p, const hato_message *m, char *line, size_t cap)
{
    line[0] = '\0';
    bool ok = append(line, cap, "MAIL FROM:") && path_append(p, line, cap, m->sender);
    if (ok && p->size > 0)
        ok = append(line, cap, " SIZE=%llu", (unsigned long long)p->size);
    if (ok && p->body_param != NULL)
        ok = append(line, cap, " BODY=%s", p->body_param);
    if (ok && p->smtputf8)
        ok = append(line, cap, " SMTPUTF8");
    if (ok && p->requiretls)
        ok = append(line, cap, " REQUIRETLS");
    if (ok && p->dsn && m->dsn_ret != HATO_DSN_RET_DEFAULT)
        ok = append(line, cap, " RET=%s", m->dsn_ret == HATO_DSN_RET_FULL ? "FULL" : "HDRS");
    if (ok && p->dsn && m->dsn_envid[0])
        ok = append(line, cap, " ENVID=") && xtext_append(line, cap, m->dsn_envid);
    return ok;
}

bool rcpt_to_line(const mail_plan *p, const hato_message *m, size_t i, char *line, size_t cap)
{
    const char *addr = m->rcpts[i].address;
    line[0] = '\0';
    bool ok = append(line, cap, "RCPT TO:") && path_append(p, line, cap, addr);
    if (!ok || !p->dsn)
        return ok;
    unsigned n = m->dsn_notify;
    if (n & HATO_DSN_NEVER)
        ok = append(line, cap, " NOTIFY=NEVER");
    else if (n != 0)
        ok = append(line, cap, " NOTIFY=%s%s%s%s%s", n & HATO_DSN_SUCCESS ? "SUCCESS" : "",
                    (n & HATO_DSN_SUCCESS) && (n & (HATO_DSN_FAILURE | HATO_DSN_DELAY)) ? "," : "",
                    n & HATO_DSN_FAILURE ? "FAILURE" : "",
                    (n & HATO_DSN_FAILURE) && (n & HATO_DSN_DELAY) ? "," : "",
                    n & HATO_DSN_DELAY ? "DELAY" : "");
    /* RFC 3461 section 4.2: the recipient as the sender gave it. */
    if (ok && is_ascii(addr))
        ok = append(line, cap, " ORCPT=rfc822;") && xtext_append(line, cap, addr);
    else if (ok)
        ok = append(line, cap, " ORCPT=utf-8;") && utf8_addr_append(line, cap, addr, p->smtputf8);
    return ok;
}
