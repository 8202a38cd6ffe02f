/*
 * The session core without sockets: server bytes are fed in random pieces
 * and what the client writes is compared byte for byte after each step.
 */
#include "script.h"

static hato_options *plain_options(logbook *lb)
{
    hato_options *o = hato_options_new();
    hato_options_set_relay(o, "relay.example", 25);
    hato_options_set_tls_level(o, HATO_TLS_NONE);
    hato_options_set_helo_name(o, "client.example");
    if (lb != NULL)
        hato_options_set_log(o, collect_log, lb, HATO_LOG_TRACE);
    return o;
}

static hato_message *message(const char *content, int nrcpt)
{
    static const char *const rcpts[] = {"a@example.test", "b@example.test", "c@example.test"};
    hato_message *m = hato_message_new();
    hato_message_set_sender(m, "me@example.test");
    for (int i = 0; i < nrcpt; i++)
        hato_message_add_recipient(m, rcpts[i]);
    hato_message_set_content(m, content, strlen(content));
    return m;
}

static void test_plain_send(void)
{
    hato_options *o = plain_options(NULL);
    hato_message *m = message("Subject: x\n\n.hidden\nbody", 1);
    const step script[] = {
        {"220 relay ESMTP\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 8BITMIME\r\n", "MAIL FROM:<me@example.test>\r\n"},
        {"250 2.1.0 Ok\r\n", "RCPT TO:<a@example.test>\r\n"},
        {"250 2.1.5 Ok\r\n", "DATA\r\n"},
        {"354 go\r\n", "Subject: x\r\n\r\n..hidden\r\nbody\r\n.\r\n"},
        {"250 2.0.0 queued\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    CHECK(hato_session_error(s) == NULL);
    CHECK(hato_message_sent(m));
    const char *enh, *text;
    CHECK_INT(hato_message_recipient_reply(m, 0, &enh, &text), 250);
    CHECK_STR(enh, "2.1.5");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_pipelining_partial(void)
{
    hato_options *o = plain_options(NULL);
    hato_message *m = message("hi\n", 3);
    const step script[] = {
        {"220 relay ESMTP\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 PIPELINING\r\n",
         "MAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\n"
         "RCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n"},
        {"250 ok\r\n250 ok\r\n550 5.1.1 <b@example.test>: no such user\r\n250 ok\r\n354 go\r\n",
         "hi\r\n.\r\nQUIT\r\n"},
        {"250 queued\r\n221 bye\r\n", ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_error(s) == NULL);
    CHECK(hato_message_sent(m));
    const char *enh, *text;
    CHECK_INT(hato_message_recipient_reply(m, 0, NULL, NULL), 250);
    CHECK_INT(hato_message_recipient_reply(m, 1, &enh, &text), 550);
    CHECK_STR(enh, "5.1.1");
    CHECK_HAS(text, "no such user");
    CHECK_INT(hato_message_recipient_reply(m, 2, NULL, NULL), 250);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_all_refused_no_pipelining(void)
{
    hato_options *o = plain_options(NULL);
    hato_message *m = message("hi\n", 2);
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250 relay\r\n", "MAIL FROM:<me@example.test>\r\n"},
        {"250 ok\r\n", "RCPT TO:<a@example.test>\r\n"},
        {"554 5.7.1 relay access denied\r\n", "RCPT TO:<b@example.test>\r\n"},
        {"554 5.7.1 relay access denied\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_RECIPIENTS, false, 554, "relay access denied");
    CHECK(!hato_message_sent(m));
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_greeting_refused(void)
{
    hato_options *o = plain_options(NULL);
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"554 5.3.2 go away\r\n", "QUIT\r\n"},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_REPLY, false, 554, "refused the connection");
    CHECK_STR(hato_error_server_text(hato_session_error(s)), "go away");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_helo_fallback(void)
{
    hato_options *o = plain_options(NULL);
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"220 old\r\n", "EHLO client.example\r\n"},
        {"502 what\r\n", "HELO client.example\r\n"},
        {"250 old\r\n", "MAIL FROM:<me@example.test>\r\n"},
        {"250 ok\r\n", "RCPT TO:<a@example.test>\r\n"},
        {"250 ok\r\n", "DATA\r\n"},
        {"354 go\r\n", "hi\r\n.\r\n"},
        {"250 ok\r\n", "QUIT\r\n"},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_error(s) == NULL);
    CHECK(hato_message_sent(m));
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_auth_plain_redacted(void)
{
    logbook lb = {.len = 0};
    hato_options *o = plain_options(&lb);
    hato_options_set_credentials(o, "alice", "secret");
    /* Plain text allowed on this link, as the guide's noanonymous does. */
    hato_options_set_sasl_security(o, HATO_SASL_NOANONYMOUS, HATO_SASL_NOANONYMOUS);
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250-AUTH=LOGIN\r\n250 AUTH PLAIN LOGIN\r\n",
         "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"},
        {"235 2.7.0 ok\r\n", "MAIL FROM:<me@example.test>\r\n"},
        {"250 ok\r\n", "RCPT TO:<a@example.test>\r\n"},
        {"250 ok\r\n", "DATA\r\n"},
        {"354 go\r\n", "hi\r\n.\r\n"},
        {"250 ok\r\n", "QUIT\r\n"},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_error(s) == NULL);
    CHECK_HAS(lb.text, "> AUTH PLAIN [redacted]");
    CHECK(strstr(lb.text, "AGFsaWNlAHNlY3JldA") == NULL);
    CHECK(strstr(lb.text, "secret") == NULL);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_auth_login_refused(void)
{
    logbook lb = {.len = 0};
    hato_options *o = plain_options(&lb);
    hato_options_set_credentials(o, "alice", "secret");
    hato_options_set_sasl_security(o, 0, 0);
    hato_options_set_sasl_mechanisms(o, "login");
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH PLAIN LOGIN\r\n", "AUTH LOGIN\r\n"},
        {"334 VXNlcm5hbWU6\r\n", "YWxpY2U=\r\n"},
        {"334 UGFzc3dvcmQ6\r\n", "c2VjcmV0\r\n"},
        {"535 5.7.8 Error: authentication failed\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_AUTH, false, 535, "authentication as alice with LOGIN failed");
    CHECK_INT(hato_error_layer(hato_session_error(s)), HATO_LAYER_SASL);
    CHECK_STR(hato_error_enhanced_code(hato_session_error(s)), "5.7.8");
    CHECK(strstr(lb.text, "c2VjcmV0") == NULL);
    CHECK(strstr(lb.text, "secret") == NULL);
    CHECK(strstr(lb.text, "YWxpY2U") == NULL);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_no_mechanism(void)
{
    hato_options *o = plain_options(NULL);
    hato_options_set_credentials(o, "alice", "secret");
    hato_options_set_sasl_mechanisms(o, "plain, login");
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH CRAM-MD5 DIGEST-MD5\r\n", "QUIT\r\n"},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_AUTH_MECH, true, 0, "CRAM-MD5");
    CHECK_HAS(hato_error_message(hato_session_error(s)), "smtp_sasl_mechanism_filter");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_tls_required(void)
{
    hato_options *o = plain_options(NULL);
    hato_options_set_tls_level(o, HATO_TLS_ENCRYPT);
    hato_options_set_credentials(o, "alice", "secret");
    hato_message *m = message("hi\n", 1);
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH PLAIN\r\n", "QUIT\r\n"},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_TLS_REQUIRED, true, 0, "STARTTLS");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_starttls_injection(void)
{
    hato_options *o = plain_options(NULL);
    hato_options_set_tls_level(o, HATO_TLS_ENCRYPT);
    hato_message *m = message("hi\n", 1);
    hato_session *s = hato_session_new(o, m, NULL);
    const char *steps[] = {"220 relay\r\n", "250-relay\r\n250 STARTTLS\r\n"};
    for (int i = 0; i < 2; i++) {
        hato_session_input(s, (const uint8_t *)steps[i], strlen(steps[i]));
        free(drain(s));
    }
    const char *inject = "220 go ahead\r\n250 injected\r\n";
    hato_session_input(s, (const uint8_t *)inject, strlen(inject));
    check_error(s, HATO_E_PROTOCOL, true, 0, "injection");
    char *rest = drain(s);
    CHECK_STR(rest, "");
    free(rest);
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_disconnect_mid_body(void)
{
    hato_options *o = plain_options(NULL);
    hato_message *m = message("hi\n", 1);
    hato_session *s = hato_session_new(o, m, NULL);
    const char *steps[] = {"220 relay\r\n", "250 relay\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n"};
    for (int i = 0; i < 5; i++) {
        hato_session_input(s, (const uint8_t *)steps[i], strlen(steps[i]));
        if (i < 4)
            free(drain(s));
    }
    /* The body is pending; the server goes away before it is written. */
    CHECK(hato_session_want(s) & HATO_WANT_WRITE);
    hato_session_input_eof(s);
    check_error(s, HATO_E_NETWORK, true, 0, "in the middle of the message");
    CHECK(!hato_message_sent(m));
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static ptrdiff_t failing_reader(void *user, char *buf, size_t cap)
{
    int *calls = user;
    if ((*calls)++ == 0) {
        const char *part = "first part\n";
        size_t n = strlen(part) < cap ? strlen(part) : cap;
        memcpy(buf, part, n);
        return (ptrdiff_t)n;
    }
    return -1;
}

static void test_reader_error_never_sends_dot(void)
{
    hato_options *o = plain_options(NULL);
    hato_message *m = message("", 1);
    int calls = 0;
    hato_message_set_reader(m, failing_reader, &calls);
    hato_session *s = hato_session_new(o, m, NULL);
    const char *steps[] = {"220 relay\r\n", "250 relay\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n"};
    for (int i = 0; i < 5; i++) {
        hato_session_input(s, (const uint8_t *)steps[i], strlen(steps[i]));
        char *out = drain(s);
        if (i == 4)
            CHECK_STR(out, "first part\r\n");
        free(out);
    }
    check_error(s, HATO_E_BODY, true, 0, "was not sent");
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_timeouts(void)
{
    hato_options *o = plain_options(NULL);
    hato_options_set_timeout(o, HATO_TIMEOUT_HELO, 2000);
    hato_options_set_timeout(o, HATO_TIMEOUT_MAIL, 3000);
    hato_message *m = message("hi\n", 1);
    hato_session *s = hato_session_new(o, m, NULL);
    CHECK_INT(hato_session_timeout(s), 2000);
    hato_session_input(s, (const uint8_t *)"220 x\r\n", 7);
    free(drain(s));
    hato_session_input(s, (const uint8_t *)"250 x\r\n", 7);
    free(drain(s));
    CHECK_INT(hato_session_timeout(s), 3000);
    hato_session_timed_out(s);
    check_error(s, HATO_E_TIMEOUT, true, 0, "within 3 s during envelope (smtp_mail_timeout)");
    CHECK_INT(hato_session_timeout(s), -1);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_overlong_reply(void)
{
    hato_options *o = plain_options(NULL);
    hato_message *m = message("hi\n", 1);
    hato_session *s = hato_session_new(o, m, NULL);
    char junk[4096];
    memset(junk, 'x', sizeof junk);
    memcpy(junk, "220 ", 4);
    for (int i = 0; i < 100 && !(hato_session_want(s) & HATO_WANT_DONE); i++)
        hato_session_input(s, (const uint8_t *)junk, sizeof junk);
    check_error(s, HATO_E_PROTOCOL, true, 0, "longer than 2048 bytes");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* Feeds each server step in one piece and returns what the client wrote
 * after the last (caller frees). */
static char *exchange(hato_session *s, const char *const *server, size_t n)
{
    char *out = NULL;
    for (size_t i = 0; i < n; i++) {
        hato_session_input(s, (const uint8_t *)server[i], strlen(server[i]));
        free(out);
        out = drain(s);
    }
    return out;
}

static void test_keep_alive(void)
{
    hato_options *o = plain_options(NULL);
    hato_options_set_keep_alive(o, 10000);
    hato_message *m1 = message("one\n", 1);
    hato_session *s = hato_session_new(o, m1, NULL);

    /* First message, pipelined: no QUIT with the final dot. */
    const char *first[] = {"220 relay\r\n", "250-relay\r\n250 PIPELINING\r\n",
                           "250 ok\r\n250 ok\r\n354 go\r\n"};
    char *out = exchange(s, first, 3);
    CHECK_STR(out, "one\r\n.\r\n");
    free(out);
    out = exchange(s, (const char *[]){"250 2.0.0 queued as A\r\n"}, 1);
    CHECK_STR(out, "");
    free(out);
    CHECK(hato_session_idle(s));
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    CHECK(hato_session_error(s) == NULL && hato_message_sent(m1));
    /* The session no longer needs the first message. */
    hato_message_free(m1);

    /* Second message on the same connection: refused, then RSET. */
    hato_message *m2 = message("two\n", 1);
    CHECK_INT(hato_session_next(s, m2), HATO_OK);
    out = drain(s);
    CHECK_STR(out, "MAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n");
    free(out);
    out = exchange(s, (const char *[]){"250 ok\r\n550 5.1.1 no such user\r\n554 no valid recipients\r\n"}, 1);
    CHECK_STR(out, "RSET\r\n");
    free(out);
    check_error(s, HATO_E_RECIPIENTS, false, 550, "no such user");
    CHECK(!hato_session_idle(s));
    out = exchange(s, (const char *[]){"250 2.0.0 reset\r\n"}, 1);
    CHECK_STR(out, "");
    free(out);
    CHECK(hato_session_idle(s));

    /* Third: sent; then goodbye. */
    hato_message *m3 = message("three\n", 1);
    CHECK_INT(hato_session_next(s, m3), HATO_OK);
    CHECK(hato_session_error(s) == NULL);
    free(drain(s));
    out = exchange(s, (const char *[]){"250 ok\r\n250 ok\r\n354 go\r\n"}, 1);
    CHECK_STR(out, "three\r\n.\r\n");
    free(out);
    out = exchange(s, (const char *[]){"250 queued as C\r\n"}, 1);
    free(out);
    CHECK(hato_message_sent(m3));
    CHECK_INT(hato_session_next(s, NULL), HATO_E_STATE);
    CHECK_INT(hato_session_quit(s), HATO_OK);
    out = drain(s);
    CHECK_STR(out, "QUIT\r\n");
    free(out);
    CHECK_INT(hato_session_next(s, m3), HATO_E_STATE);
    hato_session_input_eof(s);
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    CHECK(hato_session_error(s) == NULL);
    hato_session_free(s);
    hato_message_free(m2);
    hato_message_free(m3);
    hato_options_free(o);
}

static void test_idle_server_hangs_up(void)
{
    hato_options *o = plain_options(NULL);
    hato_options_set_keep_alive(o, 10000);
    hato_message *m = message("one\n", 1);
    hato_session *s = hato_session_new(o, m, NULL);
    const char *steps[] = {"220 relay\r\n", "250 relay\r\n", "250 ok\r\n", "250 ok\r\n",
                           "354 go\r\n", "250 queued\r\n"};
    free(exchange(s, steps, 6));
    CHECK(hato_session_idle(s) && hato_message_sent(m));
    /* The server's idle timeout: 421 while we wait.  The session ends; the
     * sent message stays sent and no error appears. */
    free(exchange(s, (const char *[]){"421 4.4.2 idle timeout\r\n"}, 1));
    CHECK(!hato_session_idle(s));
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    CHECK(hato_session_error(s) == NULL);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_hangup_before_quit(void)
{
    /* The message is settled; the server closes before our QUIT is
     * written: the failure to write QUIT is no failure of the message, and
     * the session ends instead of retrying the write. */
    hato_options *o = plain_options(NULL);
    hato_message *m = message("one\n", 1);
    hato_session *s = hato_session_new(o, m, NULL);
    const char *steps[] = {"220 relay\r\n", "250 relay\r\n", "250 ok\r\n", "250 ok\r\n",
                           "354 go\r\n"};
    free(exchange(s, steps, 5));
    hato_session_input(s, (const uint8_t *)"250 queued\r\n", 12);
    CHECK(hato_session_want(s) & HATO_WANT_WRITE); /* QUIT pending */
    hato_session_io_failed(s, "Broken pipe");
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    CHECK(hato_session_error(s) == NULL);
    CHECK(hato_message_sent(m));
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* RFC 5321 section 3.8: a 421 means the server is closing the connection.
 * Nothing more goes out, and the 421 is the reason given, not the lost
 * connection (found by the fault matrix, tests/faults). */
static void test_421_closing(void)
{
    hato_options *o = plain_options(NULL);
    hato_message *m = message("hi\n", 2);
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250 relay\r\n", "MAIL FROM:<me@example.test>\r\n"},
        {"250 ok\r\n", "RCPT TO:<a@example.test>\r\n"},
        {"421 4.3.2 shutting down\r\n", ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    check_error(s, HATO_E_REPLY, true, 421, "in reply to RCPT TO");
    CHECK(!hato_message_sent(m));
    hato_session_free(s);
    hato_message_free(m);

    /* Each recipient keeps its own reply: the 550 still bounces the
     * first, the 421 defers the second. */
    m = message("hi\n", 2);
    const step refused[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250 relay\r\n", "MAIL FROM:<me@example.test>\r\n"},
        {"250 ok\r\n", "RCPT TO:<a@example.test>\r\n"},
        {"550 5.1.1 no such user\r\n", "RCPT TO:<b@example.test>\r\n"},
        {"421 4.3.2 shutting down\r\n", ""},
        {NULL, NULL},
    };
    s = run(o, m, refused);
    CHECK(hato_session_want(s) & HATO_WANT_DONE);
    check_error(s, HATO_E_RECIPIENTS, false, 550, "no such user");
    CHECK_INT(hato_message_recipient_reply(m, 0, NULL, NULL), 550);
    CHECK_INT(hato_message_recipient_reply(m, 1, NULL, NULL), 421);
    hato_session_free(s);
    hato_message_free(m);

    /* Pipelined: a 421 to MAIL, with the end of data already out, is not an
     * unanswered end of data ("may or may not have been delivered"). */
    m = message("hi\n", 1);
    const step piped[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 PIPELINING\r\n",
         "MAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n"},
        {"421 4.3.2 shutting down\r\n", ""},
        {NULL, NULL},
    };
    s = run(o, m, piped);
    hato_session_input_eof(s);
    check_error(s, HATO_E_REPLY, true, 421, "in reply to MAIL FROM");
    CHECK(!hato_message_sent(m));
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

int main(void)
{
    test_plain_send();
    test_pipelining_partial();
    test_all_refused_no_pipelining();
    test_greeting_refused();
    test_helo_fallback();
    test_auth_plain_redacted();
    test_auth_login_refused();
    test_no_mechanism();
    test_tls_required();
    test_starttls_injection();
    test_disconnect_mid_body();
    test_reader_error_never_sends_dot();
    test_timeouts();
    test_overlong_reply();
    test_keep_alive();
    test_idle_server_hangs_up();
    test_hangup_before_quit();
    test_421_closing();
    return check_finish("session");
}
