/*
 * test_mx.c - the MX answer parser (src/transport/mx.c) on DNS answers
 * built here byte by byte: preference order, ties in answer order, other
 * records skipped, compression, the null MX of RFC 7505, malformed input.
 * The lookup itself runs against a real DNS server in the scripted suite
 * (relayhost-mx, relayhost-no-mx, relayhost-null-mx).
 */
#include <stdlib.h>

#include "check.h"
#include "transport/transport.h"

typedef struct packet {
    unsigned char b[1024];
    size_t n;
} packet;

static void put8(packet *p, unsigned v) { p->b[p->n++] = (unsigned char)v; }
static void put16(packet *p, unsigned v)
{
    put8(p, v >> 8);
    put8(p, v & 0xff);
}

/* "a.example" as labels; "." is the root alone. */
static void put_name(packet *p, const char *name)
{
    while (*name != '\0' && strcmp(name, ".") != 0) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        put8(p, (unsigned)len);
        memcpy(p->b + p->n, name, len);
        p->n += len;
        name += len + (dot ? 1 : 0);
    }
    put8(p, 0);
}

/* Header and question for example.test MX, with ancount answers. */
static void start(packet *p, unsigned ancount)
{
    p->n = 0;
    put16(p, 0x1234);
    put16(p, 0x8180); /* response, recursion desired and available */
    put16(p, 1);
    put16(p, ancount);
    put16(p, 0);
    put16(p, 0);
    put_name(p, "example.test");
    put16(p, 15); /* MX */
    put16(p, 1);  /* IN */
}

/* An answer record owned by the question's name (pointer to offset 12). */
static void rr_head(packet *p, unsigned type)
{
    put16(p, 0xc00c);
    put16(p, type);
    put16(p, 1);
    put16(p, 0);
    put16(p, 300);
}

static void mx(packet *p, unsigned pref, const char *host)
{
    rr_head(p, 15);
    size_t len_at = p->n;
    put16(p, 0);
    size_t start_rd = p->n;
    put16(p, pref);
    put_name(p, host);
    size_t rdlen = p->n - start_rd;
    p->b[len_at] = (unsigned char)(rdlen >> 8);
    p->b[len_at + 1] = (unsigned char)(rdlen & 0xff);
}

static void test_order(void)
{
    packet p;
    start(&p, 5);
    rr_head(&p, 5); /* a CNAME first: skipped */
    put16(&p, 1 + 5 + 1 + 4 + 1);
    put_name(&p, "alias.test");
    mx(&p, 20, "b.example.test");
    mx(&p, 10, "a.example.test");
    mx(&p, 10, "c.example.test");
    mx(&p, 30, "d.example.test");

    transport_mx out[TRANSPORT_MX_MAX];
    size_t n = 99;
    hato_error e;
    error_clear(&e);
    CHECK_INT(transport_mx_parse(p.b, p.n, "example.test", "relayhost", out, TRANSPORT_MX_MAX, &n,
                                 &e), TRANSPORT_MX_FOUND);
    CHECK_INT(n, 4);
    if (n == 4) {
        CHECK_STR(out[0].host, "a.example.test");
        CHECK_INT(out[0].preference, 10);
        CHECK_STR(out[1].host, "c.example.test"); /* a tie keeps the answer's order */
        CHECK_STR(out[2].host, "b.example.test");
        CHECK_STR(out[3].host, "d.example.test");
    }

    /* Room for two: the two best are kept, whatever the answer's order. */
    CHECK_INT(transport_mx_parse(p.b, p.n, "example.test", "relayhost", out, 2, &n, &e),
              TRANSPORT_MX_FOUND);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(out[0].host, "a.example.test");
        CHECK_STR(out[1].host, "c.example.test");
    }
}

static void test_compressed(void)
{
    packet p;
    start(&p, 1);
    rr_head(&p, 15);
    put16(&p, 2 + 3 + 2); /* preference, label "mx", pointer */
    put16(&p, 5);
    put8(&p, 2);
    p.b[p.n++] = 'm';
    p.b[p.n++] = 'x';
    put16(&p, 0xc00c); /* "mx" + the question's name */
    transport_mx out[2];
    size_t n = 0;
    hato_error e;
    error_clear(&e);
    CHECK_INT(transport_mx_parse(p.b, p.n, "example.test", "relayhost", out, 2, &n, &e),
              TRANSPORT_MX_FOUND);
    CHECK_INT(n, 1);
    CHECK_STR(out[0].host, "mx.example.test");
    CHECK_INT(out[0].preference, 5);
}

static void test_null_mx(void)
{
    packet p;
    start(&p, 1);
    mx(&p, 0, ".");
    transport_mx out[2];
    size_t n = 7;
    hato_error e;
    error_clear(&e);
    CHECK_INT(transport_mx_parse(p.b, p.n, "example.test", "relayhost", out, 2, &n, &e),
              TRANSPORT_MX_FAILED);
    CHECK_INT(n, 0);
    CHECK_INT(e.code, HATO_E_RESOLVE);
    CHECK(!e.temporary);
    CHECK_HAS(e.message, "example.test publishes a null MX record (RFC 7505)");
    CHECK_HAS(e.message, "relayhost = example.test cannot work");
}

static void test_none_and_malformed(void)
{
    packet p;
    transport_mx out[2];
    size_t n = 7;
    hato_error e;
    error_clear(&e);
    start(&p, 0);
    CHECK_INT(transport_mx_parse(p.b, p.n, "example.test", "relayhost", out, 2, &n, &e),
              TRANSPORT_MX_NONE);
    CHECK_INT(n, 0);

    /* A header promising more than is there. */
    start(&p, 1);
    mx(&p, 10, "a.example.test");
    for (size_t cut = 1; cut < 12; cut++) {
        error_clear(&e);
        CHECK_INT(transport_mx_parse(p.b, cut, "example.test", "relayhost", out, 2, &n, &e),
                  TRANSPORT_MX_FAILED);
        CHECK(e.temporary);
        CHECK_HAS(e.message, "the DNS answer is malformed");
    }
    /* Cut inside the answer: what parsed is kept, nothing past the end is read. */
    for (size_t cut = 12; cut < p.n; cut++) {
        unsigned char *copy = malloc(cut);
        memcpy(copy, p.b, cut);
        error_clear(&e);
        transport_mx_status st = transport_mx_parse(copy, cut, "example.test", "relayhost", out,
                                                    2, &n, &e);
        CHECK(st == TRANSPORT_MX_FAILED || st == TRANSPORT_MX_NONE);
        free(copy);
    }
}

int main(void)
{
    test_order();
    test_compressed();
    test_null_mx();
    test_none_and_malformed();
    return check_finish("test_mx");
}
