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
        "Reply-To: not-me@example.com\n";
    CHECK_STR(extract(h), "a@example.com|b@example.com|c@example.com|d@example.com|"
                          "hidden@example.com|hidden2@example.com|");
    CHECK_STR(extract("To: x@example.com\r\nCC: y@example.com\r\n"), "x@example.com|y@example.com|");
    CHECK_STR(extract("To : spaced@example.com\n"), "spaced@example.com|");
}

/* -t on a resent message: the most recent Resent block's recipients
 * replace To/Cc/Bcc (RFC 5322 section 3.6.6). */
static void test_resent(void)
{
    const char *h =
        "Resent-From: fwd@example.com\n"
        "Resent-Date: Tue, 2 Jan 2024 00:00:00 +0000\n"
        "Resent-To: new1@example.com,\n"
        "\tNew Two <new2@example.com>\n"
        "Resent-Cc: undisclosed-recipients:;\n"
        "resent-bcc: hidden@example.com\n"
        "Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\n"
        "Resent-From: older@example.com\n"
        "Resent-To: old-resend@example.com\n"
        "From: orig@example.com\n"
        "To: original@example.com\n"
        "Cc: cc@example.com\n"
        "Bcc: bcc@example.com\n";
    CHECK_STR(extract(h), "new1@example.com|new2@example.com|hidden@example.com|");

    /* A block without recipient fields is passed over for the next one
     * holding some. */
    h = "Resent-From: a@example.com\nResent-Date: x\nReceived: by y\n"
        "Resent-Cc: second@example.com\nTo: original@example.com\n";
    CHECK_STR(extract(h), "second@example.com|");

    /* Resent-From alone: the original recipients. */
    h = "Resent-From: a@example.com\nTo: original@example.com\nResent-Message-ID: <x@y>\n";
    CHECK_STR(extract(h), "original@example.com|");

    /* Case and CRLF. */
    h = "RESENT-TO: r@example.com\r\nTo: t@example.com\r\n";
    CHECK_STR(extract(h), "r@example.com|");

    /* Resent-Bcc is removed like Bcc, folded lines and all. */
    char buf[256];
    snprintf(buf, sizeof buf, "Resent-To: a@x\nResent-Bcc: b@x,\n c@x\nSubject: Resent-Bcc: kept\n");
    size_t n = headers_remove(buf, strlen(buf), "Resent-Bcc");
    buf[n] = '\0';
    CHECK_STR(buf, "Resent-To: a@x\nSubject: Resent-Bcc: kept\n");
}

/* A rewrite callback: root@old.example and bare "root" become
 * alice@new.example; "fail@" stops with an error. */
static int rewrite_cb(void *user, const char *address, char **repl)
{
    (void)user;
    if (strcmp(address, "fail@example.com") == 0)
        return -1;
    if (strcmp(address, "root@old.example") == 0 || strcmp(address, "root") == 0) {
        *repl = strdup("alice@new.example");
        return *repl ? 1 : -1;
    }
    return 0;
}

static const char *rewritten(const char *h)
{
    static const char *const names[] = {"From", "Reply-To", "Sender"};
    static char out[2048];
    char *o;
    size_t n;
    CHECK_INT(headers_rewrite_addresses(h, strlen(h), names, 3, rewrite_cb, NULL, &o, &n), 0);
    CHECK_INT(n, strlen(o));
    snprintf(out, sizeof out, "%s", o ? o : "(null)");
    free(o);
    return out;
}

static void test_rewrite(void)
{
    /* Only the address changes: display names, comments, spacing kept. */
    CHECK_STR(rewritten("From: Charlie Root <root@old.example>\n"),
              "From: Charlie Root <alice@new.example>\n");
    CHECK_STR(rewritten("From: \"Root, Charlie\" <root@old.example> (cron)\r\n"),
              "From: \"Root, Charlie\" <alice@new.example> (cron)\r\n");
    CHECK_STR(rewritten("From:root@old.example (Cron Daemon)\n"),
              "From:alice@new.example (Cron Daemon)\n");
    CHECK_STR(rewritten("From: root\n"), "From: alice@new.example\n");
    CHECK_STR(rewritten("from: <  root@old.example  >\n"), "from: <  alice@new.example  >\n");
    /* Several addresses, one rewritten; folding kept. */
    CHECK_STR(rewritten("Reply-To: other@example.com,\n Root <root@old.example>\nTo: root@old.example\n"),
              "Reply-To: other@example.com,\n Root <alice@new.example>\nTo: root@old.example\n");
    /* Fields not named, and the body of other fields, untouched. */
    CHECK_STR(rewritten("Subject: From: root@old.example\nX-From: root@old.example\n"),
              "Subject: From: root@old.example\nX-From: root@old.example\n");
    /* Groups and the empty address. */
    CHECK_STR(rewritten("Sender: team: root@old.example;\nFrom: <>\n"),
              "Sender: team: alice@new.example;\nFrom: <>\n");
    /* Last field without a newline; an empty section. */
    CHECK_STR(rewritten("From: root@old.example"), "From: alice@new.example");
    CHECK_STR(rewritten(""), "");
    /* The callback's error stops it. */
    char *o = (char *)"x";
    size_t n = 1;
    static const char *const from[] = {"From"};
    const char *h = "From: fail@example.com\n";
    CHECK_INT(headers_rewrite_addresses(h, strlen(h), from, 1, rewrite_cb, NULL, &o, &n), -1);
    CHECK(o == NULL);
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
    /* Resumed piece by piece (input.c): the same answers as the whole, a
     * continuation line after the resume point still belongs to its field. */
    static const char *const pieces[] = {"Subject: x\n folded\nTo: y\n\nbody\n",
                                         "Subject: x\n folded\nbody line\n", "A: b\nC: d"};
    for (size_t k = 0; k < 3; k++) {
        m = pieces[k];
        size_t len = strlen(m), whole_hl = 0, from = 0, at = 0;
        bool whole_sep = false, found = false;
        CHECK(headers_find_end(m, len, true, &whole_hl, &whole_sep));
        for (at = 1; at <= len && !found; at++)
            found = headers_find_end_from(m, at, false, &from, &hl, &sep);
        if (!found)
            CHECK(headers_find_end_from(m, len, true, &from, &hl, &sep));
        CHECK_INT(hl, whole_hl);
        CHECK(sep == whole_sep);
    }
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

    /* A long non-ASCII name: one encoded word a line, every line within
     * 78 characters (once a single line of about 2 KB). */
    char name[301] = "";
    for (int i = 0; i < 100; i++)
        strcat(name, "\xe5\xb1\xb1"); /* 300 bytes, 100 characters */
    char big[2048];
    CHECK(headers_format_from(big, sizeof big, name, "y@example.jp", "\r\n") > 0);
    CHECK(strncmp(big, "From: =?UTF-8?B?", 16) == 0);
    CHECK(strstr(big, "?=\r\n =?UTF-8?B?") != NULL);
    size_t lines = 0;
    for (const char *line = big; *line != '\0'; lines++) {
        size_t n = strcspn(line, "\r\n");
        CHECK(n <= 78);
        line += n;
        CHECK(strncmp(line, "\r\n", 2) == 0);
        line += 2;
    }
    CHECK(lines == 7); /* 300 bytes in words of 45 bytes: 6.7 words */
    /* An ASCII name of 1000 characters cannot be folded: refused (the
     * caller then writes the address alone). */
    char ascii[1001];
    memset(ascii, 'a', 1000);
    ascii[1000] = '\0';
    CHECK_INT(headers_format_from(big, sizeof big, ascii, "a@b", "\n"), 0);
    CHECK(headers_format_from(big, sizeof big, ascii + 20, "a@b", "\n") > 0);
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
        CHECK(used > 0 || n > 0); /* else the program's reader loops forever */
        if (used == 0 && n == 0)
            break;
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
        /* cap 1: a held-back ".\r" followed by text once never fitted
         * and the filter made no progress (fuzz_input). */
        static const size_t caps[] = {1, 2, 5, 8};
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
            size_t cap = caps[k];
            CHECK_STR(dot("a\n.\nafter\n", step, cap), "a\n");
            CHECK_STR(dot("a\r\n.\r\nafter\r\n", step, cap), "a\r\n");
            CHECK_STR(dot(".\n", step, cap), "");
            CHECK_STR(dot("a\n..\nb\n", step, cap), "a\n..\nb\n");
            CHECK_STR(dot("a\n.b\n x.\n", step, cap), "a\n.b\n x.\n");
            CHECK_STR(dot("a.\n.\rx\n", step, cap), "a.\n.\rx\n");
            CHECK_STR(dot("no end", step, cap), "no end");
            CHECK_STR(dot("end\n.", step, cap), "end\n");
            CHECK_STR(dot(".\rX\n.\r\r\n.\r", step, cap), ".\rX\n.\r\r\n");
        }
    }
}

int main(void)
{
    test_addresses();
    test_extract();
    test_resent();
    test_rewrite();
    test_bcc();
    test_scan();
    test_find_end();
    test_format();
    test_dot();
    return check_finish("headers");
}
