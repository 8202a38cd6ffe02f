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
    size_t pos = 0;
    *need_separator = false;
    while (pos < len) {
        size_t n = line_len(buf + pos, len - pos);
        bool partial = n == 0;
        if (partial) {
            if (!eof)
                return false;
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
    if (!eof)
        return false;
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

/* One character onto an address being collected. */
static void ab_put(struct text_buf *b, char c)
{
    text_buf_add(b, &c, 1);
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
static size_t copy_delimited(const char *s, size_t len, size_t i, char close, struct text_buf *b)
{
    ab_put(b, s[i++]);
    for (; i < len; i++) {
        if (s[i] == '\r' || s[i] == '\n')
            continue;
        if (s[i] == '\\' && i + 1 < len) {
            ab_put(b, s[i++]);
            ab_put(b, s[i]);
            continue;
        }
        ab_put(b, s[i]);
        if (s[i] == close)
            return i + 1;
    }
    return len;
}

static int flush(struct text_buf *cur, struct text_buf *angle, bool *have_angle, headers_addr_fn fn,
                 void *user)
{
    struct text_buf *b = *have_angle ? angle : cur;
    int rc = 0;
    if (cur->failed || angle->failed)
        return -1;
    if (b->len > 0) {
        const char *a = b->s;
        /* Obsolete source route "<@relay1,@relay2:user@host>" (4.4). */
        if (a[0] == '@') {
            const char *colon = strchr(a, ':');
            a = colon ? colon + 1 : a + b->len;
        }
        if (*a != '\0')
            rc = fn(user, a);
    }
    cur->len = 0;
    angle->len = 0;
    *have_angle = false;
    return rc;
}

int headers_parse_addresses(const char *s, size_t len, headers_addr_fn fn, void *user)
{
    struct text_buf cur = {0}, angle = {0};
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
            angle.len = 0;
            have_angle = true;
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
                    ab_put(&angle, s[i++]);
            }
            if (i < len)
                i++; /* '>' */
        } else if (c == ',') {
            rc = flush(&cur, &angle, &have_angle, fn, user);
            i++;
        } else if (c == ':' && !have_angle) {
            /* "name:" opens a group; the name was a display name. */
            cur.len = 0;
            i++;
        } else if (c == ';') {
            rc = flush(&cur, &angle, &have_angle, fn, user);
            i++;
        } else {
            ab_put(&cur, c);
            i++;
        }
    }
    if (rc == 0)
        rc = flush(&cur, &angle, &have_angle, fn, user);
    if (cur.failed || angle.failed)
        rc = -1;
    free(cur.s);
    free(angle.s);
    return rc;
}

int headers_extract_recipients(const char *h, size_t len, headers_addr_fn fn, void *user)
{
    for (size_t pos = 0; pos < len;) {
        size_t nl;
        size_t n = field_len(h, len, pos, &nl);
        if (name_is(h + pos, nl, "To") || name_is(h + pos, nl, "Cc") ||
            name_is(h + pos, nl, "Bcc")) {
            const char *colon = memchr(h + pos, ':', n);
            size_t off = (size_t)(colon - (h + pos)) + 1;
            int rc = headers_parse_addresses(h + pos + off, n - off, fn, user);
            if (rc != 0)
                return rc;
        }
        pos += n;
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
static void out_encoded(struct out *o, const unsigned char *s, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    while (i < n) {
        size_t take = n - i < 45 ? n - i : 45;
        while (take > 0 && i + take < n && (s[i + take] & 0xC0) == 0x80)
            take--;
        if (take == 0)
            take = n - i < 45 ? n - i : 45;
        if (i > 0)
            out_str(o, " ");
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
            out_encoded(&o, (const unsigned char *)display, strlen(display));
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
    return o.over ? 0 : o.len;
}

/* ------------------------------------------------------------------ */
/* The single-dot line                                                */

/* Zero is "at the start of a line", so a zeroed struct starts right. */
enum { DOT_START = 0, DOT_MID, DOT_SEEN, DOT_SEEN_CR };

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
        default: /* DOT_SEEN_CR */
            if (c == '\n') {
                d->ended = true;
                i++;
            } else if (cap - o >= 2) {
                out[o++] = '.';
                out[o++] = '\r';
                d->state = DOT_MID;
            } else {
                *used = i;
                return o;
            }
            break;
        }
    }
    *used = i;
    return o;
}
