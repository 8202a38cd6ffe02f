/*
 * test_ehlo.c - capabilities from real servers' EHLO replies, and from odd
 * ones.  Replies go through reply_parse() first, as in the session.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "reply/ehlo.h"
#include "reply/reply.h"

/* Parses wire (one complete reply) and its capabilities; false when the
 * reply itself does not parse. */
static bool caps_of(const char *wire, ehlo_caps *caps)
{
    reply_parser p;
    reply r;
    size_t used = 0;
    const char *why = NULL;
    reply_status st;

    reply_parser_init(&p);
    st = reply_parse(&p, wire, strlen(wire), &used, &r, &why);
    reply_parser_free(&p);
    if (st != REPLY_DONE) {
        fprintf(stderr, "  reply did not parse: %s\n", why ? why : "incomplete");
        memset(caps, 0xA5, sizeof *caps); /* garbage: the checks will fail */
        return false;
    }
    ehlo_parse(caps, &r);
    reply_free(&r);
    return true;
}

static void test_postfix(void)
{
    ehlo_caps c;

    CHECK(caps_of("250-mail.example.com\r\n"
                  "250-PIPELINING\r\n"
                  "250-SIZE 10240000\r\n"
                  "250-VRFY\r\n"
                  "250-ETRN\r\n"
                  "250-STARTTLS\r\n"
                  "250-ENHANCEDSTATUSCODES\r\n"
                  "250-8BITMIME\r\n"
                  "250-DSN\r\n"
                  "250-SMTPUTF8\r\n"
                  "250 CHUNKING\r\n",
                  &c));
    CHECK_INT(c.flags, EHLO_PIPELINING | EHLO_SIZE | EHLO_STARTTLS | EHLO_ENHANCEDSTATUSCODES |
                           EHLO_8BITMIME | EHLO_DSN | EHLO_SMTPUTF8 | EHLO_CHUNKING);
    CHECK_INT(c.size_limit, 10240000);
    CHECK_STR(c.auth, "");
    CHECK(!ehlo_has_auth(&c, "PLAIN"));

    /* After STARTTLS, with Dovecot SASL: no STARTTLS any more, AUTH now. */
    CHECK(caps_of("250-mail.example.com\r\n"
                  "250-PIPELINING\r\n"
                  "250-SIZE 10240000\r\n"
                  "250-ETRN\r\n"
                  "250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256\r\n"
                  "250-ENHANCEDSTATUSCODES\r\n"
                  "250-8BITMIME\r\n"
                  "250-DSN\r\n"
                  "250-SMTPUTF8\r\n"
                  "250 CHUNKING\r\n",
                  &c));
    CHECK(!(c.flags & EHLO_STARTTLS));
    CHECK(c.flags & EHLO_AUTH);
    CHECK_STR(c.auth, "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256");
    CHECK(ehlo_has_auth(&c, "SCRAM-SHA-256"));
    CHECK(ehlo_has_auth(&c, "scram-sha-1"));
    CHECK(!ehlo_has_auth(&c, "SCRAM-SHA"));
    CHECK(!ehlo_has_auth(&c, "SCRAM-SHA-256-PLUS"));
}

static void test_ocn(void)
{
    ehlo_caps c;

    CHECK(caps_of("250-smtp.ocn.ne.jp\r\n"
                  "250-SIZE 10485760\r\n"
                  "250-AUTH PLAIN LOGIN\r\n"
                  "250-AUTH=PLAIN LOGIN\r\n"
                  "250-STARTTLS\r\n"
                  "250 ENHANCEDSTATUSCODES\r\n",
                  &c));
    CHECK_INT(c.flags, EHLO_SIZE | EHLO_AUTH | EHLO_STARTTLS | EHLO_ENHANCEDSTATUSCODES);
    CHECK_INT(c.size_limit, 10485760);
    CHECK_STR(c.auth, "PLAIN LOGIN");
    CHECK(ehlo_has_auth(&c, "PLAIN"));
    CHECK(ehlo_has_auth(&c, "plain"));
    CHECK(ehlo_has_auth(&c, "Login"));
    CHECK(!ehlo_has_auth(&c, "PLAINX"));
    CHECK(!ehlo_has_auth(&c, "PLAI"));
    CHECK(!ehlo_has_auth(&c, "CRAM-MD5"));
    CHECK(!ehlo_has_auth(&c, ""));
    CHECK(!ehlo_has_auth(&c, NULL));
    CHECK(!ehlo_has_auth(&c, "PLAIN LOGIN"));
    /* The greeting line is a name, never a keyword. */
    CHECK(!(c.flags & EHLO_PIPELINING));
}

static void test_exim(void)
{
    ehlo_caps c;

    CHECK(caps_of("250-mx.example.org Hello client.example.net [192.0.2.7]\r\n"
                  "250-SIZE 52428800\r\n"
                  "250-8BITMIME\r\n"
                  "250-PIPELINING\r\n"
                  "250-PIPECONNECT\r\n"
                  "250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
                  "250-CHUNKING\r\n"
                  "250-STARTTLS\r\n"
                  "250-SMTPUTF8\r\n"
                  "250 HELP\r\n",
                  &c));
    CHECK_INT(c.flags, EHLO_SIZE | EHLO_8BITMIME | EHLO_PIPELINING | EHLO_AUTH |
                           EHLO_CHUNKING | EHLO_STARTTLS | EHLO_SMTPUTF8);
    CHECK_INT(c.size_limit, 52428800);
    CHECK_STR(c.auth, "PLAIN LOGIN CRAM-MD5");
    CHECK(ehlo_has_auth(&c, "cram-md5"));
}

static void test_opensmtpd_and_others(void)
{
    ehlo_caps c;

    /* OpenSMTPD: few extensions, no size given. */
    CHECK(caps_of("250-mail.example.com Hello client [127.0.0.1], pleased to meet you\r\n"
                  "250-8BITMIME\r\n"
                  "250-ENHANCEDSTATUSCODES\r\n"
                  "250-SIZE\r\n"
                  "250-DSN\r\n"
                  "250 HELP\r\n",
                  &c));
    CHECK_INT(c.flags, EHLO_8BITMIME | EHLO_ENHANCEDSTATUSCODES | EHLO_SIZE | EHLO_DSN);
    CHECK_INT(c.size_limit, 0);

    /* Everything we know, lower case, with BINARYMIME and REQUIRETLS. */
    CHECK(caps_of("250-x\r\n250-starttls\r\n250-Pipelining\r\n250-8bitmime\r\n"
                  "250-smtputf8\r\n250-chunking\r\n250-dsn\r\n250-enhancedstatuscodes\r\n"
                  "250-binarymime\r\n250-requiretls\r\n250-size 1000\r\n"
                  "250 auth plain Login\r\n",
                  &c));
    CHECK_INT(c.flags, EHLO_STARTTLS | EHLO_PIPELINING | EHLO_8BITMIME | EHLO_SMTPUTF8 |
                           EHLO_CHUNKING | EHLO_DSN | EHLO_ENHANCEDSTATUSCODES |
                           EHLO_BINARYMIME | EHLO_REQUIRETLS | EHLO_SIZE | EHLO_AUTH);
    CHECK_INT(c.size_limit, 1000);
    CHECK_STR(c.auth, "PLAIN LOGIN");
}

static void test_keywords(void)
{
    ehlo_caps c;

    /* Near misses are not the keyword. */
    CHECK(caps_of("250-x\r\n250-STARTTLSX\r\n250-XSTARTTLS\r\n250-START TLS\r\n"
                  "250-PIPELINING=yes\r\n250-8BITMIME:\r\n250-DSN.\r\n250 SIZE=100\r\n",
                  &c));
    CHECK_INT(c.flags, 0);
    CHECK_INT(c.size_limit, 0);

    /* Leading blanks, tabs and trailing blanks are tolerated. */
    CHECK(caps_of("250-x\r\n250- STARTTLS\r\n250-PIPELINING \r\n250-SIZE\t2048\r\n"
                  "250 AUTH\tPLAIN  LOGIN \r\n",
                  &c));
    CHECK_INT(c.flags, EHLO_STARTTLS | EHLO_PIPELINING | EHLO_SIZE | EHLO_AUTH);
    CHECK_INT(c.size_limit, 2048);
    CHECK_STR(c.auth, "PLAIN LOGIN");

    /* Only line 0 is the name: a one-line reply has no extensions. */
    CHECK(caps_of("250 STARTTLS\r\n", &c));
    CHECK_INT(c.flags, 0);

    /* Empty and odd lines are skipped, the rest still counts. */
    CHECK(caps_of("250-x\r\n250-\r\n250- \r\n250-=PLAIN\r\n250-???\r\n250 DSN\r\n", &c));
    CHECK_INT(c.flags, EHLO_DSN);
    CHECK_STR(c.auth, "");
}

static void test_size(void)
{
    static const struct {
        const char *line;
        uint64_t limit;
    } cases[] = {
        {"SIZE", 0},
        {"SIZE ", 0},
        {"SIZE 0", 0},
        {"SIZE 1", 1},
        {"SIZE 35882577", 35882577},
        {"SIZE 18446744073709551615", UINT64_MAX},
        {"SIZE 18446744073709551616", 0},
        {"SIZE 99999999999999999999999999", 0},
        {"SIZE abc", 0},
        {"SIZE 12abc", 0},
        {"SIZE -5", 0},
        {"SIZE +5", 0},
        {"SIZE 1.5", 0},
        {"SIZE 1000 extra", 1000},
        {"size  4096", 4096},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char wire[128];
        ehlo_caps c;

        snprintf(wire, sizeof wire, "250-x\r\n250 %s\r\n", cases[i].line);
        CHECK(caps_of(wire, &c));
        if (c.size_limit != cases[i].limit)
            fprintf(stderr, "  for \"%s\"\n", cases[i].line);
        CHECK(c.size_limit == cases[i].limit);
        CHECK(c.flags == EHLO_SIZE);
    }
}

static void test_auth_names(void)
{
    ehlo_caps c;
    char wire[4096];
    size_t len, i, n;

    /* Both forms merged in order of first appearance, upper case, once. */
    CHECK(caps_of("250-x\r\n250-AUTH=LOGIN PLAIN\r\n250-AUTH plain CRAM-MD5 login\r\n"
                  "250 AUTH=XOAUTH2 cram-md5\r\n",
                  &c));
    CHECK_STR(c.auth, "LOGIN PLAIN CRAM-MD5 XOAUTH2");

    /* RFC 4422 3.1: letters, digits, '-', '_', 1..20 characters. */
    CHECK(caps_of("250-x\r\n250 AUTH PL@IN GSSAPI X_TOKEN-2 ABCDEFGHIJKLMNOPQRST "
                  "ABCDEFGHIJKLMNOPQRSTU L.OGIN \xc3\xa9t\xc3\xa9 NTLM\r\n",
                  &c));
    CHECK_STR(c.auth, "GSSAPI X_TOKEN-2 ABCDEFGHIJKLMNOPQRST NTLM");
    CHECK(ehlo_has_auth(&c, "abcdefghijklmnopqrst"));
    CHECK(!ehlo_has_auth(&c, "ABCDEFGHIJKLMNOPQRSTU"));
    CHECK(!ehlo_has_auth(&c, "PL@IN"));
    CHECK(ehlo_has_auth(&c, "x_token-2"));

    /* AUTH with nothing usable: advertised, but no names. */
    CHECK(caps_of("250-x\r\n250 AUTH\r\n", &c));
    CHECK_INT(c.flags, EHLO_AUTH);
    CHECK_STR(c.auth, "");
    CHECK(caps_of("250-x\r\n250 AUTH= \r\n", &c));
    CHECK_INT(c.flags, EHLO_AUTH);
    CHECK_STR(c.auth, "");

    /* A list longer than the room keeps whole names only. */
    len = (size_t)snprintf(wire, sizeof wire, "250-x\r\n250 AUTH");
    for (i = 0; i < 40; i++)
        len += (size_t)snprintf(wire + len, sizeof wire - len, " MECHANISM-NUMBER-%02zu", i);
    snprintf(wire + len, sizeof wire - len, "\r\n");
    CHECK(caps_of(wire, &c));
    n = strlen(c.auth);
    CHECK(n < EHLO_AUTH_MAX);
    CHECK(n > EHLO_AUTH_MAX - 21);
    CHECK((n + 1) % 20 == 0); /* every kept name whole: 19 characters and a space */
    CHECK(ehlo_has_auth(&c, "MECHANISM-NUMBER-00"));
    CHECK(ehlo_has_auth(&c, "mechanism-number-23"));
    CHECK(!ehlo_has_auth(&c, "MECHANISM-NUMBER-39"));
    CHECK(c.auth[n - 1] != ' ');
}

static void test_not_250(void)
{
    ehlo_caps c;
    reply r;

    /* Any other code gives nothing, and caps is overwritten whole. */
    CHECK(caps_of("250-x\r\n250 STARTTLS\r\n", &c));
    CHECK(c.flags & EHLO_STARTTLS);
    CHECK(caps_of("502-5.5.1 x\r\n502 5.5.1 STARTTLS\r\n", &c));
    CHECK_INT(c.flags, 0);
    CHECK_INT(c.size_limit, 0);
    CHECK_STR(c.auth, "");

    memset(&c, 0xff, sizeof c);
    ehlo_parse(&c, NULL);
    CHECK_INT(c.flags, 0);
    CHECK_STR(c.auth, "");

    memset(&r, 0, sizeof r); /* a zeroed reply: no lines */
    r.code = 250;
    memset(&c, 0xff, sizeof c);
    ehlo_parse(&c, &r);
    CHECK_INT(c.flags, 0);
}

int main(void)
{
    test_postfix();
    test_ocn();
    test_exim();
    test_opensmtpd_and_others();
    test_keywords();
    test_size();
    test_auth_names();
    test_not_250();
    /* smtp_discard_ehlo_keywords' names. */
    CHECK_INT(ehlo_flags_named(""), 0);
    CHECK_INT(ehlo_flags_named("chunking"), EHLO_CHUNKING);
    CHECK_INT(ehlo_flags_named(" Pipelining,CHUNKING\tsize ,, etrn silent-discard"),
              EHLO_PIPELINING | EHLO_CHUNKING | EHLO_SIZE);
    CHECK_INT(ehlo_flags_named("chunkingx pipelin"), 0);
    return check_finish("ehlo");
}
