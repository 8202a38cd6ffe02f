/*
 * fuzz_ehlo - EHLO capabilities (src/reply/ehlo.c) from a server's reply.
 *
 * Input: the bytes of one EHLO reply as a server sends them ("250-name\r\n
 * 250-AUTH PLAIN\r\n250 SIZE 1000\r\n").  The reply parser turns them into
 * a reply; a prefix "250-x\r\n" is not added, so the greeting-line skip
 * and codes other than 250 are explored too.  The capabilities must keep
 * the header's promises: the AUTH list holds only RFC 4422 names, single
 * spaces, no duplicates, and every listed name is found by ehlo_has_auth;
 * parsing again over old capabilities gives the same result.
 */
#include <ctype.h>

#include "fuzz.h"
#include "reply/ehlo.h"

static void check_caps(const ehlo_caps *c)
{
    size_t n = strnlen(c->auth, sizeof c->auth);
    if (n >= sizeof c->auth)
        abort();
    if (n > 0 && (c->auth[0] == ' ' || c->auth[n - 1] == ' '))
        abort();
    const char *p = c->auth;
    while (*p != '\0') {
        size_t w = strcspn(p, " ");
        if (w == 0 || w > 20)
            abort(); /* RFC 4422 3.1: 1..20 characters; no double space */
        char name[21];
        memcpy(name, p, w);
        name[w] = '\0';
        for (size_t i = 0; i < w; i++) {
            unsigned char ch = (unsigned char)name[i];
            if (!(isupper(ch) || isdigit(ch) || ch == '-' || ch == '_'))
                abort();
        }
        if (!ehlo_has_auth(c, name))
            abort();
        /* No duplicates: the name appears once as a whole word. */
        const char *rest = p + w;
        while ((rest = strstr(rest, name)) != NULL) {
            if (rest[-1] == ' ' && (rest[w] == ' ' || rest[w] == '\0'))
                abort();
            rest++;
        }
        p += w;
        if (*p == ' ')
            p++;
    }
    if (c->size_limit != 0 && !(c->flags & EHLO_SIZE))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reply_parser p;
    reply_parser_init(&p);
    size_t used = 0;
    reply r = {0};
    const char *why = NULL;
    if (reply_parse(&p, (const char *)data, size, &used, &r, &why) == REPLY_DONE) {
        ehlo_caps a, b;
        memset(&b, 0xa5, sizeof b); /* stale capabilities from before TLS */
        ehlo_parse(&a, &r);
        ehlo_parse(&b, &r);
        check_caps(&a);
        if (a.flags != b.flags || a.size_limit != b.size_limit || strcmp(a.auth, b.auth) != 0)
            abort();
        if (r.code != 250 && (a.flags != 0 || a.auth[0] != '\0'))
            abort(); /* any other code gives empty caps */
        ehlo_has_auth(&a, "");
        ehlo_has_auth(&a, "PLAIN");
        ehlo_has_auth(&a, "plain");
        reply_free(&r);
    }
    ehlo_caps none;
    ehlo_parse(&none, NULL);
    if (none.flags != 0)
        abort();
    reply_parser_free(&p);
    return 0;
}
