/*
 * The transaction with the extensions, through the session core fed in
 * random pieces: BDAT, AUTH pipelined with the envelope, refusals decided
 * before anything is sent, and 8-bit content to a server without 8BITMIME.
 */
#include "script.h"

static hato_options *options(void)
{
    hato_options *o = hato_options_new();
    hato_options_set_relay(o, "relay.example", 25);
    hato_options_set_tls_level(o, HATO_TLS_NONE);
    hato_options_set_helo_name(o, "client.example");
    return o;
}

static hato_message *message(const char *content, int nrcpt)
{
    static const char *const rcpts[] = {"a@example.test", "b@example.test"};
    hato_message *m = hato_message_new();
    hato_message_set_sender(m, "me@example.test");
    for (int i = 0; i < nrcpt; i++)
        hato_message_add_recipient(m, rcpts[i]);
    hato_message_set_content(m, content, strlen(content));
    return m;
}

#define EHLO_CHUNKING_REPLY "250-relay\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"

/* A small message is one write: envelope, BDAT LAST with the content
 * (CRLF, no dot-stuffing) and QUIT. */
static void test_one_write(void)
{
    hato_options *o = options();
    hato_message *m = message("Subject: x\n\n.dot\nend", 2);
    const step script[] = {
        {"220 relay ESMTP\r\n", "EHLO client.example\r\n"},
        {EHLO_CHUNKING_REPLY,
         "MAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
         "BDAT 25 LAST\r\nSubject: x\r\n\r\n.dot\r\nend\r\nQUIT\r\n"},
        {"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n250 2.0.0 queued as X\r\n"
         "221 bye\r\n", ""},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_error(s) == NULL);
    CHECK(hato_message_sent(m));
    CHECK_INT(hato_message_recipient_reply(m, 0, NULL, NULL), 250);
    CHECK_INT(hato_message_recipient_reply(m, 1, NULL, NULL), 550);
    const char *text;
    CHECK_INT(hato_message_data_reply(m, NULL, &text), 250);
    CHECK_HAS(text, "queued as X");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* The sender refused: the chunk that rode along is answered too, then the
 * refusal is the outcome. */
static void test_sender_refused(void)
{
    hato_options *o = options();
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"220 relay ESMTP\r\n", "EHLO client.example\r\n"},
        {EHLO_CHUNKING_REPLY,
         "MAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\nBDAT 4 LAST\r\nhi\r\nQUIT\r\n"},
        {"553 5.7.1 sender rejected\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n221 bye\r\n",
         ""},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_REPLY, false, 553, "sender <me@example.test> refused");
    CHECK(!hato_message_sent(m));
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* AUTH PLAIN with its initial response leads the group (RFC 4954 4): the
 * login and the envelope in one write; the content waits for the 235. */
static void test_pipelined_auth(void)
{
    logbook lb = {.len = 0};
    hato_options *o = options();
    hato_options_set_log(o, collect_log, &lb, HATO_LOG_TRACE);
    hato_options_set_credentials(o, "alice", "secret");
    hato_options_set_sasl_security(o, HATO_SASL_NOANONYMOUS, HATO_SASL_NOANONYMOUS);
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"220 relay ESMTP\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 CHUNKING\r\n",
         "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nMAIL FROM:<me@example.test>\r\n"
         "RCPT TO:<a@example.test>\r\n"},
        {"235 2.7.0 ok\r\n", ""},
        /* The content waits for the envelope's replies too: they arrive
         * with the 235 from a real server, so this costs no flight. */
        {"250 ok\r\n250 ok\r\n", "BDAT 4 LAST\r\nhi\r\nQUIT\r\n"},
        {"250 queued\r\n221 bye\r\n", ""},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_error(s) == NULL);
    CHECK(hato_message_sent(m));
    CHECK(strstr(lb.text, "AGFsaWNlAHNlY3JldA") == NULL);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* The pipelined login refused where BDAT would have followed: no chunk
 * goes.  Dovecot 2.3's submission-login answers 530 to BDAT before a
 * login and reads the chunk's lines as commands. */
static void test_pipelined_auth_refused_chunking(void)
{
    hato_options *o = options();
    hato_options_set_credentials(o, "alice", "wrong");
    hato_options_set_sasl_security(o, 0, 0);
    hato_message *m = message("QUIT\n", 1);
    const step script[] = {
        {"220 relay ESMTP\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 CHUNKING\r\n",
         "AUTH PLAIN AGFsaWNlAHdyb25n\r\nMAIL FROM:<me@example.test>\r\n"
         "RCPT TO:<a@example.test>\r\n"},
        {"535 5.7.8 Authentication failed.\r\n530 5.7.0 Authentication required.\r\n"
         "530 5.7.0 Authentication required.\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_AUTH, false, 535, "authentication as alice with PLAIN failed");
    CHECK(!hato_message_sent(m));
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* The pipelined login refused: the transaction's refusals follow, and the
 * login's refusal is the reason given. */
static void test_pipelined_auth_refused(void)
{
    hato_options *o = options();
    hato_options_set_credentials(o, "alice", "wrong");
    hato_options_set_sasl_security(o, 0, 0);
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"220 relay ESMTP\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n",
         "AUTH PLAIN AGFsaWNlAHdyb25n\r\nMAIL FROM:<me@example.test>\r\n"
         "RCPT TO:<a@example.test>\r\nDATA\r\n"},
        {"535 5.7.8 bad credentials\r\n530 5.7.0 authentication required\r\n"
         "503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_AUTH, false, 535, "authentication as alice with PLAIN failed");
    CHECK(!hato_message_sent(m));
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* 538 to a pipelined PLAIN allows the one fallback: RSET and the next
 * mechanism (not pipelined: LOGIN takes challenges), then the envelope. */
static void test_pipelined_auth_fallback(void)
{
    hato_options *o = options();
    hato_options_set_credentials(o, "alice", "secret");
    hato_options_set_sasl_security(o, 0, 0);
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"220 relay ESMTP\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n",
         "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nMAIL FROM:<me@example.test>\r\n"
         "RCPT TO:<a@example.test>\r\nDATA\r\n"},
        {"538 5.7.11 encryption required\r\n530 5.7.0 authentication required\r\n"
         "503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n", "RSET\r\nAUTH LOGIN\r\n"},
        {"250 reset\r\n334 VXNlcm5hbWU6\r\n", "YWxpY2U=\r\n"},
        {"334 UGFzc3dvcmQ6\r\n", "c2VjcmV0\r\n"},
        {"235 ok\r\n", "MAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n"},
        {"250 ok\r\n250 ok\r\n354 go\r\n", "hi\r\n.\r\nQUIT\r\n"},
        {"250 queued\r\n221 bye\r\n", ""},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_error(s) == NULL);
    CHECK(hato_message_sent(m));
    CHECK_INT(hato_message_recipient_reply(m, 0, NULL, NULL), 250);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* Too big for the server's SIZE: nothing of the message is sent, and the
 * failure is permanent. */
static void test_too_big(void)
{
    hato_options *o = options();
    hato_message *m = message("0123456789abcdef\n", 1);
    const step script[] = {
        {"220 relay ESMTP\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250-PIPELINING\r\n250 SIZE 10\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_TOO_BIG, false, 0, "takes at most 10");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* A reader's 8-bit bytes to a server without 8BITMIME: found while
 * streaming, and the end of data is never sent. */
static ptrdiff_t eight_bit_reader(void *user, char *buf, size_t cap)
{
    int *calls = user;
    const char *piece = (*calls)++ == 0 ? "Subject: x\n\n" : *calls == 2 ? "caf\xc3\xa9\n" : "";
    size_t n = strlen(piece);
    if (n > cap)
        n = cap;
    memcpy(buf, piece, n);
    return (ptrdiff_t)n;
}

static void test_8bit_refused_while_streaming(void)
{
    hato_options *o = options();
    hato_message *m = message("", 1);
    int calls = 0;
    hato_message_set_reader(m, eight_bit_reader, &calls);
    hato_session *s = hato_session_new(o, m, NULL);
    const char *in[] = {"220 relay\r\n", "250-relay\r\n250 PIPELINING\r\n"};
    for (size_t i = 0; i < 2; i++) {
        hato_session_input(s, (const uint8_t *)in[i], strlen(in[i]));
        free(drain(s));
    }
    const char *go = "250 ok\r\n250 ok\r\n354 go\r\n";
    hato_session_input(s, (const uint8_t *)go, strlen(go));
    char *out = drain(s);
    CHECK(strstr(out, "caf") == NULL);
    CHECK(strstr(out, "\r\n.\r\n") == NULL);
    free(out);
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    check_error(s, HATO_E_EXTENSION, false, 0, "does not offer 8BITMIME");
    CHECK_STR(hato_error_enhanced_code(hato_session_error(s)), "5.6.3");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* Splits BDAT chunks off the front of out: their data joined into data
 * (at *dlen), their count returned; *last set when the last had LAST;
 * *rest points after them. */
static size_t split_chunks(const char *out, char *data, size_t *dlen, bool *last,
                           const char **rest)
{
    size_t count = 0;
    *last = false;
    while (strncmp(out, "BDAT ", 5) == 0) {
        char *end;
        size_t n = strtoul(out + 5, &end, 10);
        *last = strncmp(end, " LAST\r\n", 7) == 0;
        out = strstr(end, "\r\n") + 2;
        memcpy(data + *dlen, out, n);
        *dlen += n;
        out += n;
        count++;
    }
    *rest = out;
    return count;
}

/* A message larger than one chunk: the first chunk rides with the
 * envelope, the rest wait for its replies; the chunks joined are the
 * content with CRLF line ends. */
static void test_many_chunks(void)
{
    size_t n = 70000;
    char *content = malloc(n + 1);
    char *want = malloc(2 * n);
    size_t wlen = 0;
    for (size_t i = 0; i < n; i++) {
        content[i] = i % 70 == 69 ? '\n' : 'x';
        if (content[i] == '\n')
            want[wlen++] = '\r';
        want[wlen++] = content[i];
    }
    content[n] = '\0';
    hato_options *o = options();
    hato_message *m = message(content, 1);
    hato_session *s = hato_session_new(o, m, NULL);
    const char *in[] = {"220 relay\r\n", EHLO_CHUNKING_REPLY};
    size_t len = 0;
    char *out = NULL;
    for (size_t i = 0; i < 2; i++) {
        hato_session_input(s, (const uint8_t *)in[i], strlen(in[i]));
        free(out);
        out = drain_n(s, &len);
    }
    const char *env = "MAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\n";
    CHECK(strncmp(out, env, strlen(env)) == 0);
    char *data = malloc(2 * n);
    size_t dlen = 0;
    bool last;
    const char *rest;
    CHECK_INT(split_chunks(out + strlen(env), data, &dlen, &last, &rest), 1);
    CHECK(!last && *rest == '\0');
    free(out);
    /* Nothing more until the envelope is answered. */
    CHECK(!(hato_session_want(s) & HATO_WANT_WRITE));
    const char *replies = "250 ok\r\n250 ok\r\n";
    hato_session_input(s, (const uint8_t *)replies, strlen(replies));
    out = drain_n(s, &len);
    size_t more = split_chunks(out, data, &dlen, &last, &rest);
    CHECK(more >= 1 && last);
    CHECK_STR(rest, "QUIT\r\n");
    CHECK_INT(dlen, wlen);
    CHECK(dlen == wlen && memcmp(data, want, wlen) == 0);
    free(out);
    for (size_t i = 0; i < more; i++) {
        const char *r = "250 2.0.0 chunk\r\n";
        hato_session_input(s, (const uint8_t *)r, strlen(r));
    }
    const char *bye = "250 2.0.0 queued\r\n221 bye\r\n";
    hato_session_input(s, (const uint8_t *)bye, strlen(bye));
    CHECK(hato_message_sent(m));
    CHECK(hato_session_error(s) == NULL);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
    free(content);
    free(want);
    free(data);
}

/* Keep-alive with CHUNKING: each further message is one write. */
static void test_reuse_one_write(void)
{
    hato_options *o = options();
    hato_options_set_keep_alive(o, 10000);
    hato_message *m1 = message("one\n", 1);
    hato_session *s = hato_session_new(o, m1, NULL);
    const char *in[] = {"220 relay\r\n", EHLO_CHUNKING_REPLY,
                        "250 ok\r\n250 ok\r\n250 queued\r\n"};
    for (size_t i = 0; i < 3; i++) {
        hato_session_input(s, (const uint8_t *)in[i], strlen(in[i]));
        free(drain(s));
    }
    CHECK(hato_session_idle(s) && hato_message_sent(m1));
    hato_message *m2 = message("two\n", 1);
    CHECK_INT(hato_session_next(s, m2), HATO_OK);
    char *out = drain(s);
    CHECK_STR(out, "MAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\nBDAT 5 LAST\r\n"
                   "two\r\n");
    free(out);
    const char *r2 = "250 ok\r\n250 ok\r\n250 queued\r\n";
    hato_session_input(s, (const uint8_t *)r2, strlen(r2));
    CHECK(hato_session_idle(s) && hato_message_sent(m2));
    hato_session_free(s);
    hato_message_free(m1);
    hato_message_free(m2);
    hato_options_free(o);
}

/* Logged in with a pipelined AUTH, the next message on the kept
 * connection is one write again: only the first waited for the 235. */
static void test_reuse_after_pipelined_auth(void)
{
    hato_options *o = options();
    hato_options_set_keep_alive(o, 10000);
    hato_options_set_credentials(o, "alice", "secret");
    hato_options_set_sasl_security(o, HATO_SASL_NOANONYMOUS, HATO_SASL_NOANONYMOUS);
    hato_message *m1 = message("one\n", 1);
    hato_session *s = hato_session_new(o, m1, NULL);
    const char *in[] = {"220 relay\r\n",
                        "250-relay\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 CHUNKING\r\n",
                        "235 ok\r\n250 ok\r\n250 ok\r\n", "250 queued\r\n"};
    for (size_t i = 0; i < 4; i++) {
        hato_session_input(s, (const uint8_t *)in[i], strlen(in[i]));
        free(drain(s));
    }
    CHECK(hato_session_idle(s) && hato_message_sent(m1));
    hato_message *m2 = message("two\n", 1);
    CHECK_INT(hato_session_next(s, m2), HATO_OK);
    char *out = drain(s);
    CHECK_STR(out, "MAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\nBDAT 5 LAST\r\n"
                   "two\r\n");
    free(out);
    hato_session_free(s);
    hato_message_free(m1);
    hato_message_free(m2);
    hato_options_free(o);
}

int main(void)
{
    test_one_write();
    test_sender_refused();
    test_pipelined_auth();
    test_pipelined_auth_refused_chunking();
    test_pipelined_auth_refused();
    test_pipelined_auth_fallback();
    test_too_big();
    test_8bit_refused_while_streaming();
    test_many_chunks();
    test_reuse_one_write();
    test_reuse_after_pipelined_auth();
    return check_finish("chunking");
}
