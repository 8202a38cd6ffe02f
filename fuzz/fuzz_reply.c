/*
 * fuzz_reply - the SMTP reply parser (src/reply/reply.c) on server bytes.
 *
 * Input: one byte choosing how the rest is cut into pieces, then the bytes
 * a server sends.  The same bytes are parsed twice, cut and whole, and
 * must give the same replies in the same order and fail at the same
 * place: the parser's promise is that bytes may arrive split anywhere.
 * Every reply is also checked against the header's bounds and joined into
 * a small and a large buffer (the error path's formatting).
 */
#include <stdio.h>

#include "fuzz.h"
#include "reply/reply.h"

/* What one pass saw: each reply's code, enhanced code and joined text, and
 * the error, appended; compared between the two passes.  Bounded: a long
 * input still compares its first 64 KiB of outcomes. */
struct outcome {
    char text[65536];
    size_t len;
};

static void note(struct outcome *o, const char *s)
{
    size_t n = strlen(s);
    if (n > sizeof o->text - 1 - o->len)
        n = sizeof o->text - 1 - o->len;
    memcpy(o->text + o->len, s, n);
    o->len += n;
    o->text[o->len] = '\0';
}

static void check_reply(const reply *r, struct outcome *o)
{
    if (r->code < 200 || r->code > 599 || r->nlines < 1 || r->nlines > REPLY_LINES_MAX)
        abort();
    if (strlen(r->enhanced) >= REPLY_ENHANCED_MAX)
        abort();
    for (size_t i = 0; i < r->nlines; i++) {
        if (r->lines[i] == NULL || strlen(r->lines[i]) > REPLY_LINE_MAX)
            abort();
    }
    /* Text joined into a tiny buffer must stay terminated and within it. */
    char tiny[7];
    reply_join(r, tiny, sizeof tiny);
    if (strlen(tiny) >= sizeof tiny)
        abort();
    static char joined[REPLY_LINES_MAX * (REPLY_LINE_MAX + 2) + 1];
    reply_join(r, joined, sizeof joined);
    char head[32];
    snprintf(head, sizeof head, "[%d %s %zu]", r->code, r->enhanced, r->nlines);
    note(o, head);
    note(o, joined);
}

/* Parses data in pieces of at most piece bytes (0: whole). */
static void parse(const char *data, size_t len, size_t piece, struct outcome *o)
{
    reply_parser p;
    reply_parser_init(&p);
    size_t at = 0;
    while (at < len) {
        size_t n = len - at;
        if (piece != 0 && n > piece)
            n = piece;
        /* Within one piece, replies come one per call. */
        size_t off = 0;
        while (off < n) {
            size_t used = 0;
            reply r = {0};
            const char *why = NULL;
            reply_status st = reply_parse(&p, data + at + off, n - off, &used, &r, &why);
            if (used > n - off)
                abort();
            if (st == REPLY_ERROR) {
                if (why == NULL)
                    abort();
                note(o, "[error]");
                note(o, why);
                reply_parser_free(&p);
                return;
            }
            if (st == REPLY_DONE) {
                check_reply(&r, o);
                reply_free(&r);
                reply_free(&r); /* documented as safe */
            } else if (used != n - off) {
                abort(); /* REPLY_MORE consumes everything */
            }
            off += used;
            if (st == REPLY_MORE)
                break;
        }
        at += n;
    }
    note(o, reply_parser_busy(&p) ? "[partial]" : "[idle]");
    reply_parser_free(&p);
    reply_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = data[0] % 17; /* 0 whole, else 1..16 bytes */
    static struct outcome cut, whole;
    cut.len = whole.len = 0;
    cut.text[0] = whole.text[0] = '\0';
    parse((const char *)data + 1, size - 1, piece, &cut);
    parse((const char *)data + 1, size - 1, 0, &whole);
    if (strcmp(cut.text, whole.text) != 0)
        abort();
    return 0;
}
