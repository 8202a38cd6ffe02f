/*
 * test_reply.c - the reply parser against real servers' replies cut at every
 * point, fed a byte at a time, pipelined, and against hostile input.
 *
 * Every chunk the parser sees is copied to the end of a page whose next
 * page is unreadable (as picohttpparser's tests do), so reading one byte
 * past the data crashes at once, with or without a sanitizer.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "reply/reply.h"

/* ---- guard page ---- */

typedef struct guard {
    char *base;  /* mapping: cap bytes then one PROT_NONE page */
    size_t cap;
    size_t page;
} guard;

static bool guard_init(guard *g, size_t want)
{
    int fd;
    void *m;

    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->cap = (want + g->page - 1) / g->page * g->page;
    /* /dev/zero: MAP_ANONYMOUS is not in POSIX.1-2008 */
    fd = open("/dev/zero", O_RDWR);
    if (fd < 0)
        return false;
    m = mmap(NULL, g->cap + g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return false;
    g->base = m;
    return mprotect(g->base + g->cap, g->page, PROT_NONE) == 0;
}

static void guard_free(guard *g)
{
    munmap(g->base, g->cap + g->page);
}

/* n bytes of src placed so that the byte after them is unreadable. */
static const char *guarded(guard *g, const char *src, size_t n)
{
    char *dst;

    if (n > g->cap) {
        fprintf(stderr, "test bug: chunk of %zu bytes exceeds the guard area\n", n);
        exit(2);
    }
    dst = g->base + g->cap - n;
    memcpy(dst, src, n);
    return dst;
}

/* ---- real replies and what they must parse to ---- */

typedef struct sample {
    const char *name;
    const char *wire;
    int code;
    const char *enhanced;
    size_t nlines;
    const char *lines[16];
} sample;

static const sample samples[] = {
    {"postfix greeting", "220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n", 220, "", 1,
     {"mail.example.com ESMTP Postfix (Debian/GNU)"}},
    {"postfix ehlo",
     "250-mail.example.com\r\n"
     "250-PIPELINING\r\n"
     "250-SIZE 10240000\r\n"
     "250-VRFY\r\n"
     "250-ETRN\r\n"
     "250-STARTTLS\r\n"
     "250-AUTH PLAIN LOGIN\r\n"
     "250-AUTH=PLAIN LOGIN\r\n"
     "250-ENHANCEDSTATUSCODES\r\n"
     "250-8BITMIME\r\n"
     "250-DSN\r\n"
     "250-SMTPUTF8\r\n"
     "250 CHUNKING\r\n",
     250, "", 13,
     {"mail.example.com", "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS",
      "AUTH PLAIN LOGIN", "AUTH=PLAIN LOGIN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
      "SMTPUTF8", "CHUNKING"}},
    {"ocn ehlo",
     "250-smtp.ocn.ne.jp\r\n"
     "250-SIZE 10485760\r\n"
     "250-AUTH PLAIN LOGIN\r\n"
     "250-AUTH=PLAIN LOGIN\r\n"
     "250-STARTTLS\r\n"
     "250 ENHANCEDSTATUSCODES\r\n",
     250, "", 6,
     {"smtp.ocn.ne.jp", "SIZE 10485760", "AUTH PLAIN LOGIN", "AUTH=PLAIN LOGIN", "STARTTLS",
      "ENHANCEDSTATUSCODES"}},
    {"exim ehlo",
     "250-mx.example.org Hello client.example.net [192.0.2.7]\r\n"
     "250-SIZE 52428800\r\n"
     "250-8BITMIME\r\n"
     "250-PIPELINING\r\n"
     "250-PIPECONNECT\r\n"
     "250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
     "250-CHUNKING\r\n"
     "250-STARTTLS\r\n"
     "250-SMTPUTF8\r\n"
     "250 HELP\r\n",
     250, "", 10,
     {"mx.example.org Hello client.example.net [192.0.2.7]", "SIZE 52428800", "8BITMIME",
      "PIPELINING", "PIPECONNECT", "AUTH PLAIN LOGIN CRAM-MD5", "CHUNKING", "STARTTLS",
      "SMTPUTF8", "HELP"}},
    {"gmail 550 multi-line",
     "550-5.7.1 [192.0.2.7] The IP you're using to send mail is not authorized to\r\n"
     "550-5.7.1 send email directly to our servers. Please use the SMTP relay at your\r\n"
     "550 5.7.1 service provider instead. a1si123 - gsmtp\r\n",
     550, "5.7.1", 3,
     {"[192.0.2.7] The IP you're using to send mail is not authorized to",
      "send email directly to our servers. Please use the SMTP relay at your",
      "service provider instead. a1si123 - gsmtp"}},
    {"postfix 554 relay denied",
     "554 5.7.1 <x@example.net>: Relay access denied\r\n", 554, "5.7.1", 1,
     {"<x@example.net>: Relay access denied"}},
    {"451 greylisting multi-line",
     "451-4.7.1 Greylisting in action, please come\r\n"
     "451 4.7.1 back later\r\n",
     451, "4.7.1", 2, {"Greylisting in action, please come", "back later"}},
    {"354 has no enhanced class", "354 End data with <CR><LF>.<CR><LF>\r\n", 354, "", 1,
     {"End data with <CR><LF>.<CR><LF>"}},
    {"334 auth challenge", "334 VXNlcm5hbWU6\r\n", 334, "", 1, {"VXNlcm5hbWU6"}},
    {"code alone", "250\r\n", 250, "", 1, {""}},
    {"code and space", "250 \r\n", 250, "", 1, {""}},
    {"empty continuation", "250-\r\n250 ok\r\n", 250, "", 2, {"", "ok"}},
    {"bare LF", "250-first\n250 second\n", 250, "", 2, {"first", "second"}},
    {"mixed line ends", "250-first\r\n250-second\n250 third\r\n", 250, "", 3,
     {"first", "second", "third"}},
    {"enhanced code alone", "250 2.0.0\r\n", 250, "2.0.0", 1, {""}},
    {"utf-8 text", "250 2.1.5 r\xc3\xa9" "cipient ok\r\n", 250, "2.1.5", 1,
     {"r\xc3\xa9" "cipient ok"}},
};
#define NSAMPLES (sizeof samples / sizeof samples[0])

/* Compares a parsed reply with a sample; on a difference, says which. */
static bool same(const reply *r, const sample *s, char *diff, size_t difflen)
{
    size_t i;

    if (r->code != s->code) {
        snprintf(diff, difflen, "code %d, expected %d", r->code, s->code);
        return false;
    }
    if (strcmp(r->enhanced, s->enhanced) != 0) {
        snprintf(diff, difflen, "enhanced \"%s\", expected \"%s\"", r->enhanced, s->enhanced);
        return false;
    }
    if (r->nlines != s->nlines) {
        snprintf(diff, difflen, "%zu lines, expected %zu", r->nlines, s->nlines);
        return false;
    }
    for (i = 0; i < s->nlines; i++) {
        if (strcmp(r->lines[i], s->lines[i]) != 0) {
            snprintf(diff, difflen, "line %zu \"%s\", expected \"%s\"", i, r->lines[i],
                     s->lines[i]);
            return false;
        }
    }
    return true;
}

static void test_whole(guard *g)
{
    size_t k;

    for (k = 0; k < NSAMPLES; k++) {
        const sample *s = &samples[k];
        size_t len = strlen(s->wire), used = 99;
        reply_parser p;
        reply r;
        const char *why = NULL;
        char diff[256] = "";
        reply_status st;

        reply_parser_init(&p);
        st = reply_parse(&p, guarded(g, s->wire, len), len, &used, &r, &why);
        CHECK_INT(st, REPLY_DONE);
        if (st != REPLY_DONE) {
            fprintf(stderr, "  sample \"%s\": %s\n", s->name, why ? why : "");
            reply_parser_free(&p);
            continue;
        }
        CHECK_INT(used, len);
        if (!same(&r, s, diff, sizeof diff))
            fprintf(stderr, "  sample \"%s\": %s\n", s->name, diff);
        CHECK(same(&r, s, diff, sizeof diff));
        CHECK(!reply_parser_busy(&p));
        reply_free(&r);
        reply_parser_free(&p);
    }
}

/* Feeds wire in the pieces cut at the given points (sorted, below len, so
 * the last piece holds at least the final LF);
 * true when every piece but the last says MORE having used all of it and
 * the last gives a reply equal to the sample. */
static bool feed_pieces(guard *g, const sample *s, const size_t *cuts, size_t ncuts,
                        char *diff, size_t difflen)
{
    size_t len = strlen(s->wire), from = 0, i;
    reply_parser p;
    reply r;
    bool ok = false;

    reply_parser_init(&p);
    for (i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len, used = 0;
        const char *why = NULL;
        reply_status st = reply_parse(&p, guarded(g, s->wire + from, to - from), to - from,
                                      &used, &r, &why);
        if (i < ncuts) {
            if (st != REPLY_MORE || used != to - from) {
                snprintf(diff, difflen, "piece [%zu,%zu): status %d, used %zu (%s)", from, to,
                         (int)st, used, why ? why : "");
                if (st == REPLY_DONE)
                    reply_free(&r);
                goto out;
            }
            if (to > 0 && !reply_parser_busy(&p)) {
                snprintf(diff, difflen, "not busy after %zu bytes", to);
                goto out;
            }
        } else {
            if (st != REPLY_DONE || used != to - from) {
                snprintf(diff, difflen, "last piece [%zu,%zu): status %d, used %zu (%s)", from,
                         to, (int)st, used, why ? why : "");
                goto out;
            }
            ok = same(&r, s, diff, difflen);
            reply_free(&r);
        }
        from = to;
    }
out:
    reply_parser_free(&p);
    return ok;
}

/* Every split point, and for the shorter replies every pair of points. */
static void test_every_split(guard *g)
{
    size_t k;

    for (k = 0; k < NSAMPLES; k++) {
        const sample *s = &samples[k];
        size_t len = strlen(s->wire), i, j, bad2 = 0, bad3 = 0;
        char diff[512];

        for (i = 0; i < len; i++) {
            size_t cut[1] = {i};
            if (!feed_pieces(g, s, cut, 1, diff, sizeof diff) && bad2++ == 0)
                fprintf(stderr, "  \"%s\" cut at %zu: %s\n", s->name, i, diff);
        }
        CHECK_INT(bad2, 0);
        if (len > 400)
            continue;
        for (i = 0; i < len; i++) {
            for (j = i; j < len; j++) {
                size_t cut[2] = {i, j};
                if (!feed_pieces(g, s, cut, 2, diff, sizeof diff) && bad3++ == 0)
                    fprintf(stderr, "  \"%s\" cut at %zu,%zu: %s\n", s->name, i, j, diff);
            }
        }
        CHECK_INT(bad3, 0);
    }
}

static void test_byte_by_byte(guard *g)
{
    size_t k;

    for (k = 0; k < NSAMPLES; k++) {
        const sample *s = &samples[k];
        size_t len = strlen(s->wire), cuts[1024], i;
        char diff[512];

        if (len - 1 > sizeof cuts / sizeof cuts[0])
            continue;
        for (i = 1; i < len; i++)
            cuts[i - 1] = i;
        if (!feed_pieces(g, s, cuts, len - 1, diff, sizeof diff))
            fprintf(stderr, "  \"%s\" byte by byte: %s\n", s->name, diff);
        CHECK(feed_pieces(g, s, cuts, len - 1, diff, sizeof diff));
    }
}

/* ---- pipelining: several replies in one stream ---- */

/* A small generator for chunk sizes; its state lives with the caller. */
static uint32_t next_rand(uint32_t *state)
{
    *state = (uint32_t)(((uint64_t)*state * 1103515245u + 12345u) & 0xffffffffu);
    return *state >> 16;
}

/* Parses the replies of all samples sent back to back, the stream cut in
 * chunks of random size; false at the first difference. */
static bool stream_all(guard *g, uint32_t *seed, size_t maxchunk, char *diff, size_t difflen)
{
    char stream[8192];
    size_t ends[NSAMPLES];
    size_t total = 0, k, pos = 0, next = 0;
    reply_parser p;
    bool ok = true;

    for (k = 0; k < NSAMPLES; k++) {
        size_t n = strlen(samples[k].wire);
        memcpy(stream + total, samples[k].wire, n);
        total += n;
        ends[k] = total;
    }
    reply_parser_init(&p);
    while (pos < total && ok) {
        size_t chunk = 1 + next_rand(seed) % maxchunk, off = 0;
        const char *data;

        if (chunk > total - pos)
            chunk = total - pos;
        data = guarded(g, stream + pos, chunk);
        while (off < chunk) {
            size_t used = 0;
            const char *why = NULL;
            reply r;
            reply_status st = reply_parse(&p, data + off, chunk - off, &used, &r, &why);

            off += used;
            if (st == REPLY_MORE)
                break;
            if (st == REPLY_ERROR) {
                snprintf(diff, difflen, "error at %zu: %s", pos + off, why);
                ok = false;
                break;
            }
            if (pos + off != ends[next]) {
                snprintf(diff, difflen, "reply %zu ended at %zu, expected %zu", next, pos + off,
                         ends[next]);
                ok = false;
            } else if (!same(&r, &samples[next], diff, difflen)) {
                ok = false;
            }
            reply_free(&r);
            next++;
            if (!ok)
                break;
        }
        pos += chunk;
    }
    if (ok && next != NSAMPLES) {
        snprintf(diff, difflen, "%zu replies, expected %zu", next, (size_t)NSAMPLES);
        ok = false;
    }
    reply_parser_free(&p);
    return ok;
}

static void test_pipelined(guard *g)
{
    const char *two = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n";
    const char *data;
    size_t len = strlen(two), used = 0;
    uint32_t seed = 12345;
    reply_parser p;
    reply r;
    const char *why = NULL;
    char diff[512] = "";
    int i, bad = 0;

    /* Two replies in one buffer: the first call takes only the first. */
    reply_parser_init(&p);
    data = guarded(g, two, len);
    CHECK_INT(reply_parse(&p, data, len, &used, &r, &why), REPLY_DONE);
    CHECK_INT(used, 14);
    CHECK_STR(r.enhanced, "2.1.0");
    CHECK_STR(r.lines[0], "Ok");
    CHECK(!reply_parser_busy(&p));
    reply_free(&r);
    /* The parser is ready again without re-init. */
    CHECK_INT(reply_parse(&p, data + 14, len - 14, &used, &r, &why), REPLY_DONE);
    CHECK_INT(used, len - 14);
    CHECK_STR(r.enhanced, "2.1.5");
    CHECK_INT(r.nlines, 1);
    reply_free(&r);
    reply_parser_free(&p);

    /* A multi-line reply followed by another: nothing of the first leaks
     * into the second. */
    reply_parser_init(&p);
    {
        const char *s = "550-5.1.1 one\r\n550 5.1.1 two\r\n221 bye\r\n";
        size_t n = strlen(s);
        data = guarded(g, s, n);
        CHECK_INT(reply_parse(&p, data, n, &used, &r, &why), REPLY_DONE);
        CHECK_INT(used, 30);
        CHECK_INT(r.nlines, 2);
        reply_free(&r);
        CHECK_INT(reply_parse(&p, data + 30, n - 30, &used, &r, &why), REPLY_DONE);
        CHECK_INT(r.code, 221);
        CHECK_INT(r.nlines, 1);
        CHECK_STR(r.enhanced, "");
        CHECK_STR(r.lines[0], "bye");
        reply_free(&r);
    }
    reply_parser_free(&p);

    /* All samples back to back, in chunks of every small size and at random. */
    for (i = 0; i < 2000; i++) {
        size_t maxchunk = i < 64 ? (size_t)i + 1 : 1 + next_rand(&seed) % 600;
        if (!stream_all(g, &seed, maxchunk, diff, sizeof diff) && bad++ == 0)
            fprintf(stderr, "  pipelined stream, chunks up to %zu: %s\n", maxchunk, diff);
    }
    CHECK_INT(bad, 0);
}

/* STARTTLS (RFC 3207 5, CVE-2011-0411): bytes after the 220 were sent
 * before TLS and must be noticed. */
static void test_starttls_injection(guard *g)
{
    const char *s = "220 2.0.0 Ready to start TLS\r\nMAIL FROM:<evil@example.net>\r\n";
    size_t len = strlen(s), used = 0;
    reply_parser p;
    reply r;
    const char *why = NULL;

    reply_parser_init(&p);
    CHECK(!reply_parser_busy(&p));
    CHECK_INT(reply_parse(&p, guarded(g, s, len), len, &used, &r, &why), REPLY_DONE);
    CHECK_INT(used, strlen("220 2.0.0 Ready to start TLS\r\n"));
    CHECK(used < len);
    CHECK(!reply_parser_busy(&p));
    CHECK_STR(r.lines[0], "Ready to start TLS");
    reply_free(&r);
    reply_parser_free(&p);
}

static void test_busy(guard *g)
{
    static const struct {
        const char *in;
        bool busy;
    } cases[] = {
        {"", false},
        {"2", true},
        {"250", true},
        {"250 ok", true},
        {"250 ok\r", true},
        {"250-first\r\n", true},
        {"250-first\n", true},
        {"250-first\r\n250", true},
        {"\r", true},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in), used = 0;
        reply_parser p;
        reply r;
        const char *why = NULL;

        reply_parser_init(&p);
        CHECK_INT(reply_parse(&p, guarded(g, cases[i].in, len), len, &used, &r, &why),
                  REPLY_MORE);
        CHECK_INT(used, len);
        if (reply_parser_busy(&p) != cases[i].busy)
            fprintf(stderr, "  busy after \"%s\"\n", cases[i].in);
        CHECK(reply_parser_busy(&p) == cases[i].busy);
        reply_parser_free(&p); /* frees a half-read reply's text */
        CHECK(!reply_parser_busy(&p));
    }
}

/* ---- malformed replies ---- */

static void test_errors(guard *g)
{
    static const struct {
        const char *in;
        size_t len; /* 0: strlen */
        const char *why;
        size_t consumed;
    } cases[] = {
        {"abc\r\n", 0, "3-digit code", 5},
        {"25\r\n", 0, "3-digit code", 4},
        {"\r\n", 0, "3-digit code", 2},
        {"\n", 0, "3-digit code", 1},
        {"2a0 ok\r\n", 0, "3-digit code", 8},
        {" 250 ok\r\n", 0, "3-digit code", 9},
        {"650 ok\r\n", 0, "2, 3, 4 or 5", 8},
        {"150 ok\r\n", 0, "2, 3, 4 or 5", 8},
        {"050 ok\r\n", 0, "2, 3, 4 or 5", 8},
        {"2500 ok\r\n", 0, "space, a hyphen", 9},
        {"250x\r\n", 0, "space, a hyphen", 6},
        {"250\tok\r\n", 0, "space, a hyphen", 8},
        {"250-a\r\n251 b\r\n", 0, "different code", 14},
        {"250-a\r\n550 b\r\n", 0, "different code", 14},
        {"250-a\r\n250-b\r\n25 c\r\n", 0, "3-digit code", 20},
        {"250 a\0b\r\n", 9, "NUL", 6},
        {"\0", 1, "NUL", 1},
        {"250-a\r\n250 \0", 12, "NUL", 12},
        {"250 a\rb\r\n", 0, "CR not followed by LF", 7},
        {"250 a\r\r\n", 0, "CR not followed by LF", 7},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in), used = 0, j;
        reply_parser p;
        reply r;
        const char *why = NULL;
        reply_status st;
        bool bytewise_ok = true;

        reply_parser_init(&p);
        st = reply_parse(&p, guarded(g, cases[i].in, len), len, &used, &r, &why);
        CHECK_INT(st, REPLY_ERROR);
        if (st == REPLY_DONE)
            reply_free(&r);
        CHECK_HAS(why, cases[i].why);
        CHECK_INT(used, cases[i].consumed);
        /* The parser stays failed. */
        CHECK_INT(reply_parse(&p, guarded(g, "250 ok\r\n", 8), 8, &used, &r, &why), REPLY_ERROR);
        CHECK_INT(used, 0);
        CHECK_HAS(why, "after an error");
        CHECK(!reply_parser_busy(&p));
        reply_parser_free(&p);

        /* Fed a byte at a time, the error comes at the same byte. */
        reply_parser_init(&p);
        for (j = 0; j < len; j++) {
            st = reply_parse(&p, guarded(g, cases[i].in + j, 1), 1, &used, &r, &why);
            if (st == REPLY_ERROR)
                break;
            if (st != REPLY_MORE)
                bytewise_ok = false;
        }
        CHECK(bytewise_ok);
        CHECK_INT(j + 1, cases[i].consumed);
        reply_parser_free(&p);
    }
}

/* ---- bounds ---- */

static void test_long_lines(guard *g)
{
    char *buf = malloc(REPLY_LINE_MAX + 16);
    reply_parser p;
    reply r;
    const char *why = NULL;
    size_t used = 0, fed, n;
    reply_status st = REPLY_MORE;

    if (buf == NULL) {
        CHECK(buf != NULL);
        return;
    }

    /* A line of exactly REPLY_LINE_MAX bytes (without CRLF) is fine. */
    memcpy(buf, "250 ", 4);
    memset(buf + 4, 'x', REPLY_LINE_MAX - 4);
    memcpy(buf + REPLY_LINE_MAX, "\r\n", 2);
    reply_parser_init(&p);
    CHECK_INT(reply_parse(&p, guarded(g, buf, REPLY_LINE_MAX + 2), REPLY_LINE_MAX + 2, &used,
                          &r, &why),
              REPLY_DONE);
    CHECK_INT(strlen(r.lines[0]), REPLY_LINE_MAX - 4);
    reply_free(&r);
    /* One more byte is refused, at that byte. */
    memset(buf + 4, 'x', REPLY_LINE_MAX - 3);
    memcpy(buf + REPLY_LINE_MAX + 1, "\r\n", 2);
    CHECK_INT(reply_parse(&p, guarded(g, buf, REPLY_LINE_MAX + 3), REPLY_LINE_MAX + 3, &used,
                          &r, &why),
              REPLY_ERROR);
    CHECK_INT(used, REPLY_LINE_MAX + 1);
    CHECK_HAS(why, "longer than 2048 bytes");
    reply_parser_free(&p);

    /* The same on a continuation line, byte by byte. */
    reply_parser_init(&p);
    CHECK_INT(reply_parse(&p, guarded(g, "250-ok\r\n", 8), 8, &used, &r, &why), REPLY_MORE);
    memcpy(buf, "250-", 4);
    memset(buf + 4, 'y', REPLY_LINE_MAX);
    for (n = 0; n < REPLY_LINE_MAX + 4; n++) {
        st = reply_parse(&p, guarded(g, buf + n, 1), 1, &used, &r, &why);
        if (st != REPLY_MORE)
            break;
    }
    CHECK_INT(st, REPLY_ERROR);
    CHECK_INT(n, REPLY_LINE_MAX);
    CHECK_HAS(why, "2048");
    reply_parser_free(&p);

    /* A server that sends 100 MB without a newline: refused in the first
     * few KiB, whatever the chunk size. */
    reply_parser_init(&p);
    memset(buf, 'A', REPLY_LINE_MAX + 16);
    memcpy(buf, "250 ", 4);
    for (fed = 0; fed < (size_t)100 << 20; fed += used) {
        n = 1000;
        st = reply_parse(&p, guarded(g, fed == 0 ? buf : buf + 4, n), n, &used, &r, &why);
        if (st != REPLY_MORE)
            break;
    }
    CHECK_INT(st, REPLY_ERROR);
    CHECK_INT(fed + used, REPLY_LINE_MAX + 1);
    CHECK_HAS(why, "reply line longer than 2048 bytes");
    reply_parser_free(&p);
    free(buf);
}

static void test_many_lines(guard *g)
{
    char *wire = malloc((REPLY_LINES_MAX + 2) * 16);
    size_t len = 0, used = 0, i;
    reply_parser p;
    reply r;
    const char *why = NULL;

    if (wire == NULL) {
        CHECK(wire != NULL);
        return;
    }
    /* REPLY_LINES_MAX lines: fine. */
    for (i = 0; i + 1 < REPLY_LINES_MAX; i++)
        len += (size_t)sprintf(wire + len, "250-line %zu\r\n", i);
    len += (size_t)sprintf(wire + len, "250 last\r\n");
    reply_parser_init(&p);
    CHECK_INT(reply_parse(&p, guarded(g, wire, len), len, &used, &r, &why), REPLY_DONE);
    CHECK_INT(used, len);
    CHECK_INT(r.nlines, REPLY_LINES_MAX);
    CHECK_STR(r.lines[0], "line 0");
    CHECK_STR(r.lines[REPLY_LINES_MAX - 2], "line 98");
    CHECK_STR(r.lines[REPLY_LINES_MAX - 1], "last");
    reply_free(&r);

    /* One more: refused when that line ends. */
    len = 0;
    for (i = 0; i < REPLY_LINES_MAX; i++)
        len += (size_t)sprintf(wire + len, "250-line %zu\r\n", i);
    len += (size_t)sprintf(wire + len, "250 last\r\n");
    CHECK_INT(reply_parse(&p, guarded(g, wire, len), len, &used, &r, &why), REPLY_ERROR);
    CHECK_INT(used, len);
    CHECK_HAS(why, "more than 100 lines");
    reply_parser_free(&p);

    /* Endless continuation lines: refused at the 101st, not later. */
    reply_parser_init(&p);
    {
        reply_status st = REPLY_MORE;
        for (i = 0; i < 100000; i++) {
            st = reply_parse(&p, guarded(g, "250-x\r\n", 7), 7, &used, &r, &why);
            if (st != REPLY_MORE)
                break;
        }
        CHECK_INT(st, REPLY_ERROR);
        CHECK_INT(i, REPLY_LINES_MAX);
    }
    reply_parser_free(&p);
    free(wire);
}

/* ---- enhanced status codes ---- */

static void test_enhanced(guard *g)
{
    static const struct {
        const char *in;
        const char *enhanced;
        const char *line0;
        const char *line1; /* NULL: one line */
    } cases[] = {
        {"250 2.1.0 Ok\r\n", "2.1.0", "Ok", NULL},
        {"250 2.0.0  two spaces\r\n", "2.0.0", " two spaces", NULL},
        {"550 5.123.456 x\r\n", "5.123.456", "x", NULL},
        {"550 5.1234.1 x\r\n", "", "5.1234.1 x", NULL},
        {"550 5.1.1234 x\r\n", "", "5.1.1234 x", NULL},
        {"550 5..1 x\r\n", "", "5..1 x", NULL},
        {"550 5.1. x\r\n", "", "5.1. x", NULL},
        {"550 5.1 x\r\n", "", "5.1 x", NULL},
        {"550 2.1.0 class differs\r\n", "", "2.1.0 class differs", NULL},
        {"450 5.1.0 class differs\r\n", "", "5.1.0 class differs", NULL},
        {"250 2.0.0Ok\r\n", "", "2.0.0Ok", NULL},
        {"250 3.0.0 x\r\n", "", "3.0.0 x", NULL},
        {"354 3.0.0 x\r\n", "", "3.0.0 x", NULL},
        {"250 x 2.0.0 y\r\n", "", "x 2.0.0 y", NULL},
        /* On every line where present; only line 0's is kept. */
        {"550-5.1.1 a\r\n550 5.1.2 b\r\n", "5.1.1", "a", "b"},
        {"550-a\r\n550 5.1.2 b\r\n", "", "a", "b"},
        {"550-5.1.1 a\r\n550 b\r\n", "5.1.1", "a", "b"},
        {"250-2.0.0\r\n250 2.0.0 done\r\n", "2.0.0", "", "done"},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in), used = 0;
        reply_parser p;
        reply r;
        const char *why = NULL;

        reply_parser_init(&p);
        CHECK_INT(reply_parse(&p, guarded(g, cases[i].in, len), len, &used, &r, &why),
                  REPLY_DONE);
        CHECK_STR(r.enhanced, cases[i].enhanced);
        CHECK_STR(r.lines[0], cases[i].line0);
        CHECK_INT(r.nlines, cases[i].line1 ? 2 : 1);
        if (cases[i].line1 && r.nlines == 2)
            CHECK_STR(r.lines[1], cases[i].line1);
        reply_free(&r);
        reply_parser_free(&p);
    }
}

/* ---- reply_join, reply_free, names ---- */

static bool parse_one(const char *s, reply *r)
{
    reply_parser p;
    size_t used;
    const char *why;
    reply_status st;

    reply_parser_init(&p);
    st = reply_parse(&p, s, strlen(s), &used, r, &why);
    reply_parser_free(&p);
    return st == REPLY_DONE;
}

static void test_join(void)
{
    reply r, empty;
    char out[64];
    char small[8];

    memset(&empty, 0, sizeof empty);
    CHECK(parse_one("550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n", &r));
    reply_join(&r, out, sizeof out);
    CHECK_STR(out, "first; second; third");
    /* Truncated, and still terminated. */
    reply_join(&r, small, sizeof small);
    CHECK_STR(small, "first; ");
    reply_join(&r, small, 6);
    CHECK_STR(small, "first");
    reply_join(&r, small, 7);
    CHECK_STR(small, "first;");
    reply_join(&r, small, 1);
    CHECK_STR(small, "");
    small[0] = 'z';
    reply_join(&r, small, 0); /* no room even for the NUL: untouched */
    CHECK_INT(small[0], 'z');
    reply_free(&r);

    /* A cut never splits a UTF-8 sequence. */
    CHECK(parse_one("250 ab\xe2\x82\xac" "cd\r\n", &r));
    reply_join(&r, small, 4);
    CHECK_STR(small, "ab");
    reply_join(&r, small, 5);
    CHECK_STR(small, "ab");
    reply_join(&r, small, 6);
    CHECK_STR(small, "ab\xe2\x82\xac");
    reply_free(&r);
    /* Bytes that are not UTF-8 are cut where the room ends. */
    CHECK(parse_one("250 \x80\x80\x80\x80\x80\x80\r\n", &r));
    reply_join(&r, small, 4);
    CHECK_INT(strlen(small), 3);
    reply_free(&r);

    CHECK(parse_one("250\r\n", &r));
    reply_join(&r, out, sizeof out);
    CHECK_STR(out, "");
    reply_free(&r);

    reply_join(&empty, out, sizeof out);
    CHECK_STR(out, "");

    /* reply_free is safe on a zeroed reply and twice. */
    reply_free(&empty);
    CHECK(parse_one("221 bye\r\n", &r));
    CHECK_INT(reply_class(&r), 2);
    reply_free(&r);
    reply_free(&r);
    CHECK(r.storage == NULL);
    CHECK_INT(r.nlines, 0);

    CHECK_STR(reply_parser_state_name(REPLY_PS_IDLE), "idle");
    CHECK_STR(reply_parser_state_name(REPLY_PS_FAILED), "failed");
    CHECK_STR(reply_parser_state_name((reply_parser_state)42), "?");
}

int main(void)
{
    guard g;

    if (!guard_init(&g, 64 * 1024)) {
        perror("guard page");
        return 2;
    }
    test_whole(&g);
    test_every_split(&g);
    test_byte_by_byte(&g);
    test_pipelined(&g);
    test_starttls_injection(&g);
    test_busy(&g);
    test_errors(&g);
    test_long_lines(&g);
    test_many_lines(&g);
    test_enhanced(&g);
    test_join();
    guard_free(&g);
    return check_finish("reply");
}
