/* What a transaction declares: mail_plan_make's decisions and refusals, and
 * the MAIL and RCPT lines with their parameters. */
#include <stdlib.h>

#include "check.h"
#include "message/params.h"

static hato_message *msg(const char *sender, const char *rcpt_line, const char *content)
{
    hato_message *m = hato_message_new();
    hato_message_set_sender(m, sender);
    hato_message_add_recipient(m, rcpt_line);
    hato_message_set_content(m, content, strlen(content));
    return m;
}

static ehlo_caps caps_of(unsigned flags, uint64_t size_limit)
{
    ehlo_caps c;
    memset(&c, 0, sizeof c);
    c.flags = flags;
    c.size_limit = size_limit;
    return c;
}

/* Plans m against caps; on success the MAIL line and RCPT 0's line. */
static bool plan(const hato_message *m, const ehlo_caps *c, bool verified, mail_plan *p,
                 hato_error *err, char *mail, char *rcpt_line)
{
    mail_link l = {.caps = c, .tls_verified = verified, .host = "relay.test"};
    error_clear(err);
    if (!mail_plan_make(p, m, &l, err))
        return false;
    CHECK(mail_from_line(p, m, mail, PARAMS_LINE_MAX));
    CHECK(rcpt_to_line(p, m, 0, rcpt_line, PARAMS_LINE_MAX));
    return true;
}

static void test_size_and_body(void)
{
    char mail[PARAMS_LINE_MAX], rcpt_line[PARAMS_LINE_MAX];
    mail_plan p;
    hato_error err;
    hato_message *m = msg("a@x.test", "b@y.test", "Subject: hi\n\nplain\n");
    ehlo_caps c = caps_of(EHLO_SIZE | EHLO_8BITMIME, 1000);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> SIZE=19");
    CHECK_STR(rcpt_line, "RCPT TO:<b@y.test>");
    CHECK(!p.chunking && p.body_mode == BODY_DATA && !p.refuse_8bit);

    /* Larger than the limit: refused before anything is sent. */
    c.size_limit = 10;
    CHECK(!plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_INT(err.code, HATO_E_TOO_BIG);
    CHECK(!err.temporary);
    CHECK_STR(err.enhanced, "5.3.4");
    CHECK_HAS(err.message, "19 bytes");
    CHECK_HAS(err.message, "at most 10");
    /* "SIZE" alone: no limit, still declared. */
    c.size_limit = 0;
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> SIZE=19");
    hato_message_free(m);

    /* 8-bit content in memory: BODY=8BITMIME, or refused without it. */
    m = msg("a@x.test", "b@y.test", "Subject: caf\xc3\xa9\n\n\xe2\x82\xac\n");
    c = caps_of(EHLO_8BITMIME | EHLO_CHUNKING, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> BODY=8BITMIME");
    CHECK(p.chunking && p.body_mode == BODY_CHUNK);
    c = caps_of(0, 0);
    CHECK(!plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_INT(err.code, HATO_E_EXTENSION);
    CHECK_STR(err.enhanced, "5.6.3");
    CHECK_HAS(err.message, "8BITMIME");
    /* Declared 7BIT: nothing declared, and 8-bit bytes are refused as
     * they stream. */
    hato_message_set_body(m, HATO_BODY_7BIT);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK(p.refuse_8bit && p.body_param == NULL);
    hato_message_free(m);
}

static ptrdiff_t no_content(void *user, char *buf, size_t cap)
{
    (void)user, (void)buf, (void)cap;
    return 0;
}

static void test_reader_and_binary(void)
{
    char mail[PARAMS_LINE_MAX], rcpt_line[PARAMS_LINE_MAX];
    mail_plan p;
    hato_error err;
    hato_message *m = msg("a@x.test", "b@y.test", "");
    hato_message_set_reader(m, no_content, NULL);
    /* A reader's content is unknown: 8BITMIME declared where offered, else
     * checked as it streams; SIZE only with a size given. */
    ehlo_caps c = caps_of(EHLO_8BITMIME | EHLO_SIZE, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> BODY=8BITMIME");
    hato_message_set_size(m, 12345);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> SIZE=12345 BODY=8BITMIME");
    c = caps_of(0, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK(p.refuse_8bit);
    CHECK_STR(mail, "MAIL FROM:<a@x.test>");

    /* BINARYMIME needs CHUNKING and BINARYMIME. */
    hato_message_set_body(m, HATO_BODY_BINARYMIME);
    CHECK(!plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_INT(err.code, HATO_E_EXTENSION);
    CHECK_HAS(err.message, "CHUNKING");
    c = caps_of(EHLO_CHUNKING, 0);
    CHECK(!plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_HAS(err.message, "does not offer BINARYMIME");
    c = caps_of(EHLO_CHUNKING | EHLO_BINARYMIME, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> BODY=BINARYMIME");
    CHECK(p.chunking && p.body_mode == BODY_BINARY);
    hato_message_free(m);
}

static void test_utf8(void)
{
    char mail[PARAMS_LINE_MAX], rcpt_line[PARAMS_LINE_MAX];
    mail_plan p;
    hato_error err;
    /* A UTF-8 domain: as is with SMTPUTF8, as an A-label without. */
    hato_message *m = msg("a@x.test", "user@b\xc3\xbc" "cher.example", "hi\n");
    ehlo_caps c = caps_of(EHLO_SMTPUTF8 | EHLO_8BITMIME, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> SMTPUTF8");
    CHECK_STR(rcpt_line, "RCPT TO:<user@b\xc3\xbc" "cher.example>");
    c = caps_of(EHLO_8BITMIME, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test>");
    CHECK_STR(rcpt_line, "RCPT TO:<user@xn--bcher-kva.example>");
    hato_message_free(m);

    /* A UTF-8 local part has no ASCII form. */
    m = msg("\xe7\x94\xa8\xe6\x88\xb7@x.test", "b@y.test", "hi\n");
    CHECK(!plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_INT(err.code, HATO_E_EXTENSION);
    CHECK_STR(err.enhanced, "5.6.7");
    CHECK_HAS(err.message, "local part");
    CHECK_HAS(err.message, "SMTPUTF8");
    hato_message_free(m);

    /* A domain that is no valid IDN. */
    m = msg("a@x.test", "b@\xff\xfe.test", "hi\n");
    CHECK(!plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_HAS(err.message, "not a valid internationalised domain name");
    hato_message_free(m);

    /* UTF-8 headers need SMTPUTF8 itself. */
    m = msg("a@x.test", "b@y.test", "Subject: \xc3\xa9\n\nhi\n");
    hato_message_set_smtputf8(m, true);
    CHECK(!plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_HAS(err.message, "headers hold UTF-8");
    c = caps_of(EHLO_8BITMIME | EHLO_SMTPUTF8, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> BODY=8BITMIME SMTPUTF8");
    hato_message_free(m);
}

static void test_dsn(void)
{
    char mail[PARAMS_LINE_MAX], rcpt_line[PARAMS_LINE_MAX];
    mail_plan p;
    hato_error err;
    hato_message *m = msg("a@x.test", "b+tag@y.test", "hi\n");
    CHECK_INT(hato_message_set_dsn(m, HATO_DSN_SUCCESS | HATO_DSN_DELAY, HATO_DSN_RET_HDRS,
                                   "id+1=2"), HATO_OK);
    ehlo_caps c = caps_of(EHLO_DSN, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> RET=HDRS ENVID=id+2B1+3D2");
    CHECK_STR(rcpt_line, "RCPT TO:<b+tag@y.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2Btag@y.test");
    /* Without DSN on the server the request is dropped, as Postfix does. */
    c = caps_of(0, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test>");
    CHECK_STR(rcpt_line, "RCPT TO:<b+tag@y.test>");
    c = caps_of(EHLO_DSN, 0);
    CHECK_INT(hato_message_set_dsn(m, HATO_DSN_NEVER, HATO_DSN_RET_FULL, NULL), HATO_OK);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> RET=FULL");
    CHECK_STR(rcpt_line, "RCPT TO:<b+tag@y.test> NOTIFY=NEVER ORCPT=rfc822;b+2Btag@y.test");
    CHECK_INT(hato_message_set_dsn(m, HATO_DSN_SUCCESS | HATO_DSN_FAILURE | HATO_DSN_DELAY,
                                   HATO_DSN_RET_DEFAULT, NULL), HATO_OK);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(rcpt_line, "RCPT TO:<b+tag@y.test> NOTIFY=SUCCESS,FAILURE,DELAY "
                    "ORCPT=rfc822;b+2Btag@y.test");
    /* Bad requests are refused at the API. */
    CHECK_INT(hato_message_set_dsn(m, HATO_DSN_NEVER | HATO_DSN_SUCCESS, 0, NULL),
              HATO_E_ARGUMENT);
    CHECK_INT(hato_message_set_dsn(m, 0, 0, "has space"), HATO_E_ARGUMENT);
    hato_message_free(m);

    /* A UTF-8 recipient's ORCPT is a "utf-8" address (RFC 6533). */
    m = msg("a@x.test", "\xce\xb4@y.test", "hi\n");
    hato_message_set_dsn(m, HATO_DSN_FAILURE, 0, NULL);
    c = caps_of(EHLO_DSN | EHLO_SMTPUTF8, 0);
    CHECK(plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_STR(rcpt_line, "RCPT TO:<\xce\xb4@y.test> NOTIFY=FAILURE ORCPT=utf-8;\xce\xb4@y.test");
    hato_message_free(m);
}

static void test_requiretls(void)
{
    char mail[PARAMS_LINE_MAX], rcpt_line[PARAMS_LINE_MAX];
    mail_plan p;
    hato_error err;
    hato_message *m = msg("a@x.test", "b@y.test", "hi\n");
    hato_message_set_requiretls(m, true);
    ehlo_caps c = caps_of(EHLO_REQUIRETLS, 0);
    CHECK(!plan(m, &c, false, &p, &err, mail, rcpt_line));
    CHECK_INT(err.code, HATO_E_EXTENSION);
    CHECK_STR(err.enhanced, "5.7.30");
    CHECK_HAS(err.message, "verified certificate");
    c = caps_of(0, 0);
    CHECK(!plan(m, &c, true, &p, &err, mail, rcpt_line));
    CHECK_HAS(err.message, "does not offer it");
    c = caps_of(EHLO_REQUIRETLS, 0);
    CHECK(plan(m, &c, true, &p, &err, mail, rcpt_line));
    CHECK_STR(mail, "MAIL FROM:<a@x.test> REQUIRETLS");
    hato_message_free(m);
}

static void test_xtext(void)
{
    char out[64] = "";
    CHECK(xtext_append(out, sizeof out, "a b+c=\x01~"));
    CHECK_STR(out, "a+20b+2Bc+3D+01~");
    char small[5] = "";
    CHECK(!xtext_append(small, sizeof small, "a+b")); /* "a+2Bb" needs 6 */
}

int main(void)
{
    test_size_and_body();
    test_reader_and_binary();
    test_utf8();
    test_dsn();
    test_requiretls();
    test_xtext();
    return check_finish("params");
}
