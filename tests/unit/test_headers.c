/*
 * test_headers.c - header section parsing, -t extraction, Bcc removal, the
 * added headers and the single-dot filter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "headers.h"

static char got[4096];

static int collect(void *user, const char *address)
{
    (void)user;
    size_t n = strlen(got);
    snprintf(got + n, sizeof got - n, "%s|", address);
    return 0;
}

static const char *addrs(const char *s)
{
    got[0] = '\0';
    CHECK_INT(headers_parse_addresses(s, strlen(s), collect, NULL), 0);
    return got;
}

static const char *extract(const char *h)
{
    got[0] = '\0';
    CHECK_INT(headers_extract_recipients(h, strlen(h), collect, NULL), 0);
    return got;
}

static void test_addresses(void)
{
    CHECK_STR(addrs(" a@example.com"), "a@example.com|");
    CHECK_STR(addrs(" A Person <a@example.com>, b@example.com"), "a@example.com|b@example.com|");
    CHECK_STR(addrs(" \"Doe, John\" <john@example.com>"), "john@example.com|");
    CHECK_STR(addrs(" \"a,b\"@example.com, c@example.com"), "\"a,b\"@example.com|c@example.com|");
    CHECK_STR(addrs(" \"with \\\" quote\"@example.com"), "\"with \\\" quote\"@example.com|");
    CHECK_STR(addrs(" a@example.com (Comment, with comma (nested))"), "a@example.com|");
    CHECK_STR(addrs(" (lead) <a@example.com> (trail)"), "a@example.com|");
    CHECK_STR(addrs(" undisclosed-recipients:;"), "");
    CHECK_STR(addrs(" team: a@x.example, B <b@y.example>;, c@z.example"),
              "a@x.example|b@y.example|c@z.example|");
    CHECK_STR(addrs(" Empty group:;, d@example.com"), "d@example.com|");
    CHECK_STR(addrs(" a@example.com,\r\n b@example.com"), "a@example.com|b@example.com|");
    CHECK_STR(addrs(" <@relay.example:a@example.com>"), "a@example.com|");
    CHECK_STR(addrs(" user@[192.0.2.1]"), "user@[192.0.2.1]|");
    CHECK_STR(addrs(" root"), "root|");
    CHECK_STR(addrs(" ,, a@b.example ,"), "a@b.example|");
    CHECK_STR(addrs(" <>"), "");
    CHECK_STR(addrs(""), "");
    CHECK_STR(addrs(" \"Quoted: colon\" <q@example.com>"), "q@example.com|");
}

static void test_extract(void)
{
    const char *h =
        "From: me@example.com\n"
        "To: a@example.com,\n"
        "  \"B, Person\" <b@example.com>\n"
        "Subject: To: not@this.example\n"
        "cc: c@example.com\n"
        "TO: d@example.com\n"
        "Bcc: hidden@example.com,\n"
        "\thidden2@example.com\n"
        "Reply-To: not-me@example.com\n"
        "Resent-To: no@example.com\n";
    CHECK_STR(extract(h), "a@example.com|b@example.com|c@example.com|d@example.com|"
                          "hidden@example.com|hidden2@example.com|");
    CHECK_STR(extract("To: x@example.com\r\nCC: y@example.com\r\n"), "x@example.com|y@example.com|");
    CHECK_STR(extract("To : spaced@example.com\n"), "spaced@example.com|");
}

static void test_bcc(void)
{
    char h[512];
    snprintf(h, sizeof h, "To: a@example.com\nBcc: x@example.com,\n y@example.com\nSubject: s\n"
                          "BCC: z@example.com\n");
    size_t n = headers_remove(h, strlen(h), "Bcc");
    h[n] = '\0';
    CHECK_STR(h, "To: a@example.com\nSubject: s\n");
    snprintf(h, sizeof h, "Bcc: only\r\n\tfolded\r\n");
    n = headers_remove(h, strlen(h), "Bcc");
    CHECK_INT(n, 0);
    snprintf(h, sizeof h, "Bccx: keep\nSubject: Bcc: keep\nBcc: last-no-newline");
    n = headers_remove(h, strlen(h), "bcc");
    h[n] = '\0';
    CHECK_STR(h, "Bccx: keep\nSubject: Bcc: keep\n");
}

static void test_scan(void)
{
    struct headers_info i;
    const char *h = "date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMESSAGE-ID: <x@y>\r\nSubject: From: x\r\n";
    headers_scan(h, strlen(h), &i);
    CHECK(i.has_date);
    CHECK(i.has_message_id);
    CHECK(!i.has_from);
    CHECK(i.crlf);
    h = "Subject: hi\n X-Date: folded\nFrom: a@b\n";
    headers_scan(h, strlen(h), &i);
    CHECK(!i.has_date);
    CHECK(!i.has_message_id);
    CHECK(i.has_from);
    CHECK(!i.crlf);
    headers_scan("", 0, &i);
    CHECK(!i.has_date && !i.has_from && !i.has_message_id);
}

static void test_find_end(void)
{
    size_t hl = 99;
    bool sep = true;
    const char *m = "Subject: x\nTo: y\n\nbody\n";
    CHECK(headers_find_end(m, strlen(m), false, &hl, &sep));
    CHECK_INT(hl, 17);
    CHECK(!sep);
    m = "Subject: x\r\n folded\r\n\r\nbody";
    CHECK(headers_find_end(m, strlen(m), false, &hl, &sep));
    CHECK_INT(hl, 21);
    /* Not complete yet. */
    m = "Subject: x\nTo: y";
    CHECK(!headers_find_end(m, strlen(m), false, &hl, &sep));
    CHECK(headers_find_end(m, strlen(m), true, &hl, &sep));
    CHECK_INT(hl, strlen(m));
    CHECK(!sep);
    /* A body line with no empty line before it. */
    m = "Subject: x\nthis is the body\n";
    CHECK(headers_find_end(m, strlen(m), false, &hl, &sep));
    CHECK_INT(hl, 11);
    CHECK(sep);
    m = "no headers at all\n";
    CHECK(headers_find_end(m, strlen(m), false, &hl, &sep));
    CHECK_INT(hl, 0);
    CHECK(sep);
    m = "\nbody only\n";
    CHECK(headers_find_end(m, strlen(m), false, &hl, &sep));
    CHECK_INT(hl, 0);
    CHECK(!sep);
    m = " starts with space\n";
    CHECK(headers_find_end(m, strlen(m), false, &hl, &sep));
    CHECK_INT(hl, 0);
    CHECK(sep);
}

static void test_format(void)
{
    char buf[512];
    /* 2024-03-04 10:11:12 UTC */
    setenv("TZ", "UTC", 1);
    tzset();
    CHECK(headers_format_date(buf, sizeof buf, 1709547072, "\n") > 0);
    CHECK_STR(buf, "Date: Mon, 04 Mar 2024 10:11:12 +0000\n");
    setenv("TZ", "JST-9", 1);
    tzset();
    CHECK(headers_format_date(buf, sizeof buf, 1709547072, "\r\n") > 0);
    CHECK_STR(buf, "Date: Mon, 04 Mar 2024 19:11:12 +0900\r\n");
    CHECK_INT(headers_format_date(buf, 10, 1709547072, "\n"), 0);

    CHECK(headers_format_message_id(buf, sizeof buf, 1709547072, 4242, 0xabcdefULL, "mail.example.org", "\n") > 0);
    CHECK_STR(buf, "Message-ID: <1709547072.4242.0000000000abcdef@mail.example.org>\n");

    CHECK(headers_format_from(buf, sizeof buf, NULL, "root@example.org", "\n") > 0);
    CHECK_STR(buf, "From: root@example.org\n");
    CHECK(headers_format_from(buf, sizeof buf, "Charlie Root", "root@example.org", "\n") > 0);
    CHECK_STR(buf, "From: Charlie Root <root@example.org>\n");
    CHECK(headers_format_from(buf, sizeof buf, "Root, Charlie \"Chuck\"", "root@example.org", "\n") > 0);
    CHECK_STR(buf, "From: \"Root, Charlie \\\"Chuck\\\"\" <root@example.org>\n");
    CHECK(headers_format_from(buf, sizeof buf, "\xe5\xb1\xb1\xe7\x94\xb0", "y@example.jp", "\n") > 0);
    CHECK_STR(buf, "From: =?UTF-8?B?5bGx55Sw?= <y@example.jp>\n");
    CHECK_INT(headers_format_from(buf, 12, "Name", "a@b", "\n"), 0);
}

/* Runs the dot filter over input cut into pieces of `step` bytes with an
 * output buffer of `cap` bytes. */
static const char *dot(const char *in, size_t step, size_t cap)
{
    static char out[1024];
    struct headers_dot d = {0};
    size_t len = strlen(in), pos = 0, o = 0;
    char tmp[64];
    while (pos < len && !d.ended) {
        size_t piece = len - pos < step ? len - pos : step;
        size_t used;
        size_t n = headers_dot_filter(&d, in + pos, piece, &used, tmp, cap);
        memcpy(out + o, tmp, n);
        o += n;
        pos += used;
    }
    out[o] = '\0';
    return out;
}

static void test_dot(void)
{
    for (size_t step = 1; step <= 8; step++) {
        for (size_t cap = 2; cap <= 8; cap += 3) {
            CHECK_STR(dot("a\n.\nafter\n", step, cap), "a\n");
            CHECK_STR(dot("a\r\n.\r\nafter\r\n", step, cap), "a\r\n");
            CHECK_STR(dot(".\n", step, cap), "");
            CHECK_STR(dot("a\n..\nb\n", step, cap), "a\n..\nb\n");
            CHECK_STR(dot("a\n.b\n x.\n", step, cap), "a\n.b\n x.\n");
            CHECK_STR(dot("a.\n.\rx\n", step, cap), "a.\n.\rx\n");
            CHECK_STR(dot("no end", step, cap), "no end");
            CHECK_STR(dot("end\n.", step, cap), "end\n");
        }
    }
}

int main(void)
{
    test_addresses();
    test_extract();
    test_bcc();
    test_scan();
    test_find_end();
    test_format();
    test_dot();
    return check_finish("headers");
}
