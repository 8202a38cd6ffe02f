/*
 * headers.c - header section parsing and the headers hato adds.
 */
#include "headers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text.h"

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Length of the line at s (up to and including '\n'), or 0 when s[0..n)
 * holds no complete line. */
static size_t line_len(const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    return nl ? (size_t)(nl - s) + 1 : 0;
}

/* True when the line s[0..n) starts a header field: a name of printable
 * ASCII other than ':' (RFC 5322 section 2.2), optional white space (the
 * obsolete syntax of section 4.5), then ':'. */
static bool is_field_start(const char *s, size_t n, size_t *name_len)
{
    size_t i = 0;
    while (i < n && s[i] >= 33 && s[i] <= 126 && s[i] != ':')
        i++;
    if (i == 0)
        return false;
    size_t nl = i;
    while (i < n && is_wsp(s[i]))
        i++;
    if (i >= n || s[i] != ':')
        return false;
    if (name_len != NULL)
        *name_len = nl;
    return true;
}

static bool is_empty_line(const char *s, size_t n)
{
    return (n == 1 && s[0] == '\n') || (n == 2 && s[0] == '\r' && s[1] == '\n');
}

bool headers_find_end(const char *buf, size_t len, bool eof, size_t *header_len,
                      bool *need_separator)
{
    size_t from = 0;
    return headers_find_end_from(buf, len, eof, &from, header_len, need_separator);
}

bool headers_find_end_from(const char *buf, size_t len, bool eof, size_t *from,
                           size_t *header_len, bool *need_separator)
{
    size_t pos = *from;
    *need_separator = false;
    while (pos < len) {
        size_t n = line_len(buf + pos, len - pos);
        bool partial = n == 0;
        if (partial) {
            if (!eof) {
                *from = pos;
                return false;
            }
            n = len - pos;
        }
        const char *s = buf + pos;
        if (!partial && is_empty_line(s, n)) {
            *header_len = pos;
            return true;
        }
        bool ok = is_field_start(s, n, NULL) || (pos > 0 && is_wsp(s[0]));
        if (!ok) {
            *header_len = pos;
            *need_separator = true;
            return true;
        }
        pos += n;
    }
    if (!eof) {
        *from = pos;
        return false;
    }
    *header_len = len;
    return true;
}

/* Steps over the field starting at h[pos]: returns its total length
 * (continuation lines included) and its name's length (0 when the line is
 * not a field). */
static size_t field_len(const char *h, size_t len, size_t pos, size_t *name_len)
{
    size_t n = line_len(h + pos, len - pos);
    if (n == 0)
        n = len - pos;
    *name_len = 0;
    if (!is_field_start(h + pos, n, name_len))
        *name_len = 0;
    size_t end = pos + n;
    while (end < len && is_wsp(h[end])) {
        size_t m = line_len(h + end, len - end);
        end += m ? m : len - end;
    }
    return end - pos;
}

static bool name_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

void headers_scan(const char *h, size_t len, struct headers_info *info)
{
    memset(info, 0, sizeof *info);
    size_t first = line_len(h, len);
    info->crlf = first >= 2 && h[first - 2] == '\r';
    for (size_t pos = 0; pos < len;) {
        size_t nl;
        size_t n = field_len(h, len, pos, &nl);
        if (name_is(h + pos, nl, "Date"))
            info->has_date = true;
        else if (name_is(h + pos, nl, "Message-ID"))
            info->has_message_id = true;
        else if (name_is(h + pos, nl, "From"))
            info->has_from = true;
        pos += n;
    }
}

size_t headers_remove(char *h, size_t len, const char *name)
{
    size_t pos = 0;
    while (pos < len) {
        size_t nl;
        size_t n = field_len(h, len, pos, &nl);
        if (name_is(h + pos, nl, name)) {
            memmove(h + pos, h + pos + n, len - pos - n);
            len -= n;
        } else {
            pos += n;
        }
    }
    return len;
}

/* ------------------------------------------------------------------ */
/* Address lists (RFC 5322 section 3.4)                               */

/* An address being collected, and where its characters came from in the
 * input: [start, end) covers every character that went into it, so that
 * the address can be replaced in place. */
struct coll {
    struct text_buf b;
    size_t start, end;
};

static void coll_put(struct coll *c, const char *s, size_t i)
{
    if (c->b.len == 0)
        c->start = i;
    text_buf_add(&c->b, s + i, 1);
    c->end = i + 1;
}

/* Skips a comment starting at s[i] == '('; nested, with quoted-pairs. */
static size_t skip_comment(const char *s, size_t len, size_t i)
{
    int depth = 0;
    for (; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '(') {
            depth++;
        } else if (s[i] == ')') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return len;
}

/* Copies a quoted string or domain literal starting at s[i] (the opening
 * '"' or '['), delimiters and quoted-pairs kept, folding removed. */
static size_t copy_delimited(const char *s, size_t len, size_t i, char close, struct coll *c)
{
    coll_put(c, s, i++);
    for (; i < len; i++) {
        if (s[i] == '\r' || s[i] == '\n')
            continue;
        if (s[i] == '\\' && i + 1 < len) {
            coll_put(c, s, i++);
            coll_put(c, s, i);
            continue;
        }
        coll_put(c, s, i);
        if (s[i] == close)
            return i + 1;
    }
    return len;
}

/* Receives one address and where it is in the input. */
typedef int (*span_fn)(void *user, const char *address, size_t start, size_t end);

static int flush(struct coll *cur, struct coll *angle, bool *have_angle, span_fn fn, void *user)
{
    struct coll *c = *have_angle ? angle : cur;
    int rc = 0;
    if (cur->b.failed || angle->b.failed)
        return -1;
    if (c->b.len > 0) {
        const char *a = c->b.s;
        /* Obsolete source route "<@relay1,@relay2:user@host>" (4.4). */
        if (a[0] == '@') {
            const char *colon = strchr(a, ':');
            a = colon ? colon + 1 : a + c->b.len;
        }
        if (*a != '\0')
            rc = fn(user, a, c->start, c->end);
    }
    cur->b.len = 0;
    angle->b.len = 0;
    *have_angle = false;
    return rc;
}

static int parse_spans(const char *s, size_t len, span_fn fn, void *user)
{
    struct coll cur = {0}, angle = {0};
    bool have_angle = false;
    int rc = 0;
    size_t i = 0;

    while (i < len && rc == 0) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            i++;
        } else if (c == '(') {
            i = skip_comment(s, len, i);
        } else if (c == '"') {
            i = copy_delimited(s, len, i, '"', &cur);
            /* A quoted word is a display-name word unless '@' follows. */
        } else if (c == '[') {
            i = copy_delimited(s, len, i, ']', &cur);
        } else if (c == '<') {
            angle.b.len = 0;
            have_angle = true;
            /* The span is the inside of the brackets, even when empty. */
            angle.start = angle.end = i + 1;
            for (i++; i < len && s[i] != '>';) {
                if (s[i] == '"')
                    i = copy_delimited(s, len, i, '"', &angle);
                else if (s[i] == '[')
                    i = copy_delimited(s, len, i, ']', &angle);
                else if (s[i] == '(')
                    i = skip_comment(s, len, i);
                else if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
                    i++;
                else
                    coll_put(&angle, s, i++);
            }
            if (i < len)
                i++; /* '>' */
        } else if (c == ',' || c == ';') { /* the end of an address, or of a group */
            rc = flush(&cur, &angle, &have_angle, fn, user);
            i++;
        } else if (c == ':' && !have_angle) {
            /* "name:" opens a group; the name was a display name. */
            cur.b.len = 0;
            i++;
        } else {
            coll_put(&cur, s, i++);
        }
    }
    if (rc == 0)
        rc = flush(&cur, &angle, &have_angle, fn, user);
    if (cur.b.failed || angle.b.failed)
        rc = -1;
    free(cur.b.s);
    free(angle.b.s);
    return rc;
}

struct plain {
    headers_addr_fn fn;
    void *user;
};

static int plain_span(void *user, const char *address, size_t start, size_t end)
{
    struct plain *p = user;
    (void)start;
    (void)end;
    return p->fn(p->user, address);
}

int headers_parse_addresses(const char *s, size_t len, headers_addr_fn fn, void *user)
{
    struct plain p = {fn, user};
    return parse_spans(s, len, plain_span, &p);
}

/* The offset of the value of the field at h[pos] (after its ':'). */
static size_t value_offset(const char *h, size_t pos, size_t n)
{
    const char *colon = memchr(h + pos, ':', n);
    return (size_t)(colon - (h + pos)) + 1;
}

static bool is_resent(const char *name, size_t nl)
{
    return nl > 7 && strncasecmp(name, "Resent-", 7) == 0;
}

static bool is_resent_recipient(const char *name, size_t nl)
{
    return name_is(name, nl, "Resent-To") || name_is(name, nl, "Resent-Cc") ||
           name_is(name, nl, "Resent-Bcc");
}

/* The first run of consecutive Resent-* fields that holds a Resent-To, -Cc
 * or -Bcc: [*start, *end).  False when there is none.  RFC 5322 section
 * 3.6.6: each resend prepends its block, so the first is the most recent. */
static bool find_resent_block(const char *h, size_t len, size_t *start, size_t *end)
{
    size_t pos = 0;
    while (pos < len) {
        size_t nl;
        size_t n = field_len(h, len, pos, &nl);
        if (!is_resent(h + pos, nl)) {
            pos += n;
            continue;
        }
        size_t block = pos;
        bool rcpt = false;
        while (pos < len) {
            n = field_len(h, len, pos, &nl);
            if (!is_resent(h + pos, nl))
                break;
            rcpt = rcpt || is_resent_recipient(h + pos, nl);
            pos += n;
        }
        if (rcpt) {
            *start = block;
            *end = pos;
            return true;
        }
    }
    return false;
}

int headers_extract_recipients(const char *h, size_t len, headers_addr_fn fn, void *user)
{
    size_t from = 0, to = len;
    bool resent = find_resent_block(h, len, &from, &to);
    for (size_t pos = from; pos < to;) {
        size_t nl;
        size_t n = field_len(h, len, pos, &nl);
        bool take = resent ? is_resent_recipient(h + pos, nl)
                           : name_is(h + pos, nl, "To") || name_is(h + pos, nl, "Cc") ||
                                 name_is(h + pos, nl, "Bcc");
        if (take) {
            size_t off = value_offset(h, pos, n);
            int rc = headers_parse_addresses(h + pos + off, n - off, fn, user);
            if (rc != 0)
                return rc;
        }
        pos += n;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Rewriting addresses in place                                       */

struct rewriting {
    const char *field;       /* the field's value */
    size_t copied;           /* bytes of field already in out */
    struct text_buf *out;
    headers_rewrite_fn fn;
    void *user;
};

static int rewrite_span(void *user, const char *address, size_t start, size_t end)
{
    struct rewriting *r = user;
    char *repl = NULL;
    int rc = r->fn(r->user, address, &repl);
    if (rc < 0)
        return -1;
    if (rc > 0 && repl != NULL) {
        text_buf_add(r->out, r->field + r->copied, start - r->copied);
        text_buf_add(r->out, repl, strlen(repl));
        r->copied = end;
    }
    free(repl);
    return 0;
}

int headers_rewrite_addresses(const char *h, size_t len, const char *const *names, size_t nnames,
                              headers_rewrite_fn fn, void *user, char **out, size_t *outlen)
{
    struct text_buf b = {0};
    int rc = 0;
    *out = NULL;
    *outlen = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        size_t nl;
        size_t n = field_len(h, len, pos, &nl);
        bool take = false;
        for (size_t k = 0; k < nnames && !take; k++)
            take = nl > 0 && name_is(h + pos, nl, names[k]);
        if (take) {
            size_t off = value_offset(h, pos, n);
            text_buf_add(&b, h + pos, off);
            struct rewriting r = {h + pos + off, 0, &b, fn, user};
            rc = parse_spans(h + pos + off, n - off, rewrite_span, &r);
            text_buf_add(&b, h + pos + off + r.copied, n - off - r.copied);
        } else {
            text_buf_add(&b, h + pos, n);
        }
        pos += n;
    }
    if (rc == 0 && b.failed)
        rc = -1;
    if (rc != 0) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    *outlen = b.len;
    if (*out == NULL) { /* an empty header section */
        *out = strdup("");
        if (*out == NULL)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Added headers                                                      */

size_t headers_format_date(char *buf, size_t cap, time_t t, const char *eol)
{
    /* Fixed English names: RFC 5322 section 3.3 is not localised, and
     * strftime's %a and %b follow LC_TIME. */
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    char zone[16];
    if (localtime_r(&t, &tm) == NULL || strftime(zone, sizeof zone, "%z", &tm) == 0)
        return 0;
    if (tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11)
        return 0;
    int n = snprintf(buf, cap, "Date: %s, %02d %s %04d %02d:%02d:%02d %s%s", days[tm.tm_wday],
                     tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, zone, eol);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t headers_format_message_id(char *buf, size_t cap, time_t t, pid_t pid,
                                 unsigned long long random, const char *host, const char *eol)
{
    int n = snprintf(buf, cap, "Message-ID: <%lld.%ld.%016llx@%s>%s", (long long)t, (long)pid,
                     random, host, eol);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static bool is_atext_or_space(unsigned char c)
{
    return c == ' ' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

struct out {
    char *buf;
    size_t cap, len;
    bool over;
};

static void out_add(struct out *o, const char *s, size_t n)
{
    if (o->len + n >= o->cap) {
        o->over = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
    out_add(o, s, strlen(s));
}

/* RFC 2047 "B" encoded-words, each under 76 characters (section 2), split
 * only between UTF-8 characters (section 5, rule 3). */
/* Encoded words of at most 45 bytes (72 characters), one a line: each
 * after the first on a folded line of its own, so that a long name stays
 * within RFC 5322's 78-character line (the white space between encoded
 * words is dropped when they are decoded, RFC 2047 section 6.2). */
static void out_encoded(struct out *o, const unsigned char *s, size_t n, const char *eol)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    while (i < n) {
        size_t take = n - i < 45 ? n - i : 45;
        while (take > 0 && i + take < n && (s[i + take] & 0xC0) == 0x80)
            take--;
        if (take == 0)
            take = n - i < 45 ? n - i : 45;
        if (i > 0) {
            out_str(o, eol);
            out_str(o, " ");
        }
        out_str(o, "=?UTF-8?B?");
        for (size_t k = 0; k < take; k += 3) {
            unsigned v = (unsigned)s[i + k] << 16;
            if (k + 1 < take)
                v |= (unsigned)s[i + k + 1] << 8;
            if (k + 2 < take)
                v |= s[i + k + 2];
            char q[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63],
                         k + 1 < take ? b64[(v >> 6) & 63] : '=', k + 2 < take ? b64[v & 63] : '='};
            out_add(o, q, 4);
        }
        out_str(o, "?=");
        i += take;
    }
}

size_t headers_format_from(char *buf, size_t cap, const char *display, const char *address,
                           const char *eol)
{
    struct out o = {buf, cap, 0, false};
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    out_str(&o, "From: ");
    if (display != NULL && display[0] != '\0') {
        bool plain = true, ascii = true;
        for (const unsigned char *p = (const unsigned char *)display; *p; p++) {
            if (*p >= 0x80)
                ascii = false;
            else if (!is_atext_or_space(*p))
                plain = false;
        }
        if (!ascii) {
            out_encoded(&o, (const unsigned char *)display, strlen(display), eol);
        } else if (plain && display[0] != ' ') {
            out_str(&o, display);
        } else {
            out_str(&o, "\"");
            for (const char *p = display; *p; p++) {
                if (*p == '"' || *p == '\\')
                    out_str(&o, "\\");
                if (*p != '\r' && *p != '\n')
                    out_add(&o, p, 1);
            }
            out_str(&o, "\"");
        }
        out_str(&o, " <");
        out_str(&o, address);
        out_str(&o, ">");
    } else {
        out_str(&o, address);
    }
    out_str(&o, eol);
    if (o.over)
        return 0;
    /* RFC 5322 2.1.1: no line over 998 characters.  An encoded name is
     * folded above; an ASCII name that long (a -F of a thousand
     * characters) is not worth folding: 0, and the caller writes the
     * address alone. */
    for (const char *line = buf; *line != '\0';) {
        size_t n = strcspn(line, "\r\n");
        if (n > 998)
            return 0;
        line += n;
        line += strspn(line, "\r\n");
    }
    return o.len;
}

/* ------------------------------------------------------------------ */
/* The single-dot line                                                */

/* Zero is "at the start of a line", so a zeroed struct starts right.
 * DOT_OWE_CR: a held-back ".\r" turned out to be text and its '.' went
 * out; the '\r' goes next, before the byte that decided it. */
enum { DOT_START = 0, DOT_MID, DOT_SEEN, DOT_SEEN_CR, DOT_OWE_CR };

size_t headers_dot_filter(struct headers_dot *d, const char *in, size_t inlen, size_t *used,
                          char *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (!d->ended && i < inlen && o < cap) {
        char c = in[i];
        switch (d->state) {
        case DOT_MID:
            out[o++] = c;
            i++;
            if (c == '\n')
                d->state = DOT_START;
            break;
        case DOT_START:
            if (c == '.') {
                d->state = DOT_SEEN;
                i++;
            } else {
                d->state = DOT_MID;
            }
            break;
        case DOT_SEEN:
            if (c == '\n') {
                d->ended = true;
                i++;
            } else if (c == '\r') {
                d->state = DOT_SEEN_CR;
                i++;
            } else {
                out[o++] = '.';
                d->state = DOT_MID;
            }
            break;
        case DOT_SEEN_CR:
            if (c == '\n') {
                d->ended = true;
                i++;
            } else {
                /* One byte at a time: with room for one, writing ".\r"
                 * together never fitted and the reader never moved on. */
                out[o++] = '.';
                d->state = DOT_OWE_CR;
            }
            break;
        default: /* DOT_OWE_CR */
            out[o++] = '\r';
            d->state = DOT_MID;
            break;
        }
    }
    *used = i;
    return o;
}
