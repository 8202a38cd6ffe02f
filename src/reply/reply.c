/*
 * reply.c - incremental SMTP reply parser (RFC 5321 4.2, RFC 3463, RFC 2034).
 *
 * Bytes go one at a time into p->line; a completed line is checked and its
 * text (after "NNN-") appended to p->text.  When the last line completes,
 * p->text becomes the reply's storage and the parser starts over.  Enhanced
 * codes are taken off the lines only then, from the stored text.
 */
#include "reply/reply.h"

#include <stdlib.h>
#include <string.h>

#ifdef REPLY_TRACE
#include <stdio.h>
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

/* The most text one reply can hold: every line at the limit, plus its NUL. */
#define REPLY_TEXT_MAX ((size_t)REPLY_LINES_MAX * (REPLY_LINE_MAX + 1))
/* First allocation for a reply's text: most replies fit. */
#define REPLY_TEXT_FIRST 256

static const char WHY_TOO_LONG[] = "reply line longer than " STR(REPLY_LINE_MAX) " bytes";
static const char WHY_TOO_MANY[] = "reply with more than " STR(REPLY_LINES_MAX) " lines";
static const char WHY_NO_CODE[] = "reply line does not start with a 3-digit code";
static const char WHY_BAD_CLASS[] = "reply code does not start with 2, 3, 4 or 5";
static const char WHY_BAD_SEP[] =
    "reply code followed by something other than a space, a hyphen or the line end";
static const char WHY_MIXED[] = "continuation line with a different code";
static const char WHY_NUL[] = "reply line holds a NUL byte";
static const char WHY_BARE_CR[] = "reply line holds a CR not followed by LF";
static const char WHY_REUSED[] = "reply parser used again after an error";

static const char *const state_names[] = {
    [REPLY_PS_IDLE] = "idle",
    [REPLY_PS_LINE] = "line",
    [REPLY_PS_CR] = "cr",
    [REPLY_PS_FAILED] = "failed",
};

const char *reply_parser_state_name(reply_parser_state s)
{
    if ((size_t)s < sizeof state_names / sizeof state_names[0] && state_names[s])
        return state_names[s];
    return "?";
}

/* The only place the state changes. */
static void set_state(reply_parser *p, reply_parser_state s)
{
#ifdef REPLY_TRACE
    /* Only for working on this parser; the library never prints. */
    if (s != p->state)
        fprintf(stderr, "reply parser: %s -> %s\n", reply_parser_state_name(p->state),
                reply_parser_state_name(s));
#endif
    p->state = s;
}

void reply_parser_init(reply_parser *p)
{
    memset(p, 0, sizeof *p);
    p->state = REPLY_PS_IDLE;
}

void reply_parser_free(reply_parser *p)
{
    free(p->text);
    reply_parser_init(p);
}

bool reply_parser_busy(const reply_parser *p)
{
    return p->state == REPLY_PS_LINE || p->state == REPLY_PS_CR;
}

void reply_free(reply *r)
{
    free(r->storage);
    memset(r, 0, sizeof *r);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of an RFC 3463 code "c.s.d" at the start of s that belongs to a
 * reply of class cls, or 0.  It must end at a space or the end of the text:
 * "2.0.0Ok" is text, not a code. */
static size_t enhanced_len(const char *s, int cls)
{
    size_t i = 0, n;

    if (cls != 2 && cls != 4 && cls != 5)
        return 0; /* RFC 3463 2: only success, persistent and permanent */
    if (s[i] != (char)('0' + cls) || s[i + 1] != '.')
        return 0;
    i += 2;
    for (n = 0; n < 3 && is_digit(s[i]); n++)
        i++;
    if (n == 0 || s[i] != '.')
        return 0;
    i++;
    for (n = 0; n < 3 && is_digit(s[i]); n++)
        i++;
    if (n == 0 || (s[i] != ' ' && s[i] != '\0'))
        return 0;
    return i;
}

static bool append_text(reply_parser *p, const char *s, size_t n)
{
    size_t need = p->textlen + n + 1;

    if (need > p->textcap) {
        size_t cap = p->textcap ? p->textcap : REPLY_TEXT_FIRST;
        char *t;

        while (cap < need)
            cap *= 2;
        if (cap > REPLY_TEXT_MAX)
            cap = REPLY_TEXT_MAX; /* need never exceeds it: lines are bounded */
        t = realloc(p->text, cap);
        if (t == NULL)
            return false;
        p->text = t;
        p->textcap = cap;
    }
    memcpy(p->text + p->textlen, s, n);
    p->text[p->textlen + n] = '\0';
    p->textlen = need;
    return true;
}

/* Checks the line just read and keeps its text.  NULL, with *last telling
 * whether it ended the reply, or the fault. */
static const char *end_line(reply_parser *p, bool *last)
{
    const char *l = p->line;
    size_t n = p->linelen;
    int code;

    if (n < 3 || !is_digit(l[0]) || !is_digit(l[1]) || !is_digit(l[2]))
        return WHY_NO_CODE;
    if (l[0] < '2' || l[0] > '5')
        return WHY_BAD_CLASS;
    if (n > 3 && l[3] != ' ' && l[3] != '-')
        return WHY_BAD_SEP;
    code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (p->nlines > 0 && code != p->code)
        return WHY_MIXED;
    if (p->nlines == REPLY_LINES_MAX)
        return WHY_TOO_MANY;
    if (!append_text(p, n > 4 ? l + 4 : "", n > 4 ? n - 4 : 0))
        return REPLY_WHY_NOMEM;
    p->code = code;
    p->nlines++;
    p->linelen = 0;
    *last = n == 3 || l[3] == ' ';
    return NULL;
}

/* Hands the gathered text to *out and makes the parser ready for the next
 * reply. */
static void take_reply(reply_parser *p, reply *out)
{
    int cls = p->code / 100;
    char *s = p->text;
    size_t i, e;

    memset(out, 0, sizeof *out);
    out->code = p->code;
    out->nlines = p->nlines;
    out->storage = p->text;
    for (i = 0; i < p->nlines; i++) {
        out->lines[i] = s;
        s += strlen(s) + 1; /* lines hold no NUL: end_line's caller refused it */
    }
    e = enhanced_len(out->lines[0], cls);
    memcpy(out->enhanced, out->lines[0], e);
    out->enhanced[e] = '\0';
    for (i = 0; i < out->nlines; i++) {
        e = enhanced_len(out->lines[i], cls);
        if (e > 0)
            out->lines[i] += e + (out->lines[i][e] == ' ');
    }

    p->text = NULL;
    p->textcap = 0;
    p->textlen = 0;
    p->nlines = 0;
    p->code = 0;
    p->linelen = 0;
    set_state(p, REPLY_PS_IDLE);
}

static reply_status fail(reply_parser *p, const char *msg, const char **why)
{
    /* Give back the memory now: the parser will not be used again. */
    free(p->text);
    p->text = NULL;
    p->textcap = p->textlen = 0;
    set_state(p, REPLY_PS_FAILED);
    *why = msg;
    return REPLY_ERROR;
}

reply_status reply_parse(reply_parser *p, const char *data, size_t len,
                         size_t *consumed, reply *out, const char **why)
{
    size_t i;

    *consumed = 0;
    if (p->state == REPLY_PS_FAILED) {
        *why = WHY_REUSED;
        return REPLY_ERROR;
    }
    for (i = 0; i < len; i++) {
        char c = data[i];
        const char *err;
        bool last;

        if (c == '\n') {
            /* LF after CR, or a bare LF: both end the line (see reply.h). */
            err = end_line(p, &last);
            if (err != NULL) {
                *consumed = i + 1;
                return fail(p, err, why);
            }
            if (last) {
                *consumed = i + 1;
                take_reply(p, out);
                return REPLY_DONE;
            }
            set_state(p, REPLY_PS_LINE);
            continue;
        }
        if (p->state == REPLY_PS_CR) {
            *consumed = i + 1;
            return fail(p, WHY_BARE_CR, why);
        }
        if (c == '\r') {
            set_state(p, REPLY_PS_CR);
            continue;
        }
        if (c == '\0') {
            *consumed = i + 1;
            return fail(p, WHY_NUL, why);
        }
        if (p->linelen == REPLY_LINE_MAX) {
            /* Refuse now: waiting for a line end would let a server make us
             * read without end. */
            *consumed = i + 1;
            return fail(p, WHY_TOO_LONG, why);
        }
        p->line[p->linelen++] = c;
        if (p->state == REPLY_PS_IDLE)
            set_state(p, REPLY_PS_LINE);
    }
    *consumed = len;
    return REPLY_MORE;
}

/* Appends up to n bytes of s; false when dst filled up.  A cut never falls
 * inside a UTF-8 sequence, so the result stays valid text for a log. */
static bool put(char *dst, size_t dstlen, size_t *used, const char *s, size_t n)
{
    size_t room = dstlen - 1 - *used;
    size_t cut = n;
    int back = 0;

    if (n > room) {
        cut = room;
        while (cut > 0 && back < 3 && ((unsigned char)s[cut] & 0xC0) == 0x80) {
            cut--;
            back++;
        }
        if (((unsigned char)s[cut] & 0xC0) == 0x80)
            cut = room; /* not UTF-8 after all: cut at the byte */
    }
    memcpy(dst + *used, s, cut);
    *used += cut;
    return cut == n;
}

void reply_join(const reply *r, char *dst, size_t dstlen)
{
    size_t used = 0, i;

    if (dstlen == 0)
        return;
    for (i = 0; i < r->nlines; i++) {
        if (i > 0 && !put(dst, dstlen, &used, "; ", 2))
            break;
        if (!put(dst, dstlen, &used, r->lines[i], strlen(r->lines[i])))
            break;
    }
    dst[used] = '\0';
}
