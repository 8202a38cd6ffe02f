/*
 * test_auth.c - AUTH in the session core, without sockets: OAuth success
 * and failure with the server's JSON challenge, the failure policy (no
 * second mechanism after 535, one fallback after 504/534/538), servers
 * that skip their proof, and that no token or password reaches the log at
 * TRACE.  Server bytes are fed in random pieces; what the client writes
 * is compared byte for byte ("<line>" stands for any one line, for the
 * mechanisms with a random nonce).
 */
#include <stdlib.h>

#include "script.h"

#define USER "alice@example.test"
/* Distinctive, so a leak cannot hide inside an ordinary word. */
#define TOKEN "tok3n.Secret-XYZ"
#define TOKEN_B64 "dG9rM24uU2VjcmV0LVhZWg=="
/* RFC 7628 section 3.1 for USER, TOKEN, relay.example:587. */
#define OAUTHBEARER_IR                                                        \
    "bixhPWFsaWNlQGV4YW1wbGUudGVzdCwBaG9zdD1yZWxheS5leGFtcGxlAXBvcnQ9NTg3AWF1" \
    "dGg9QmVhcmVyIHRvazNuLlNlY3JldC1YWVoBAQ=="
/* Google's XOAUTH2 for USER, TOKEN. */
#define XOAUTH2_IR                                                            \
    "dXNlcj1hbGljZUBleGFtcGxlLnRlc3QBYXV0aD1CZWFyZXIgdG9rM24uU2VjcmV0LVhZWgEB"
/* {"status":"invalid_token","scope":"https://mail.example/",
 *  "openid-configuration":"https://login.example/.well-known/openid-configuration"} */
#define RFC7628_ERROR                                                         \
    "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJodHRwczovL21haWwuZXhhbXBs" \
    "ZS8iLCJvcGVuaWQtY29uZmlndXJhdGlvbiI6Imh0dHBzOi8vbG9naW4uZXhhbXBsZS8ud2Vs" \
    "bC1rbm93bi9vcGVuaWQtY29uZmlndXJhdGlvbiJ9"
/* {"status":"401","schemes":"bearer","scope":"https://mail.google.com/"} */
#define GOOGLE_ERROR                                                          \
    "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21h" \
    "aWwuZ29vZ2xlLmNvbS8ifQ=="
#define PASSWORD "Zq7-secret-Vx9"


/* No secret in a text: the token, the password, or their base64. */
static void check_clean(const char *text)
{
    CHECK(strstr(text, TOKEN) == NULL);
    CHECK(strstr(text, TOKEN_B64) == NULL);
    CHECK(strstr(text, "dG9rM24uU2VjcmV0") == NULL);
    CHECK(strstr(text, OAUTHBEARER_IR) == NULL);
    CHECK(strstr(text, XOAUTH2_IR) == NULL);
    CHECK(strstr(text, PASSWORD) == NULL);
}

static void check_session_clean(const hato_session *s, const logbook *lb)
{
    check_clean(lb->text);
    if (hato_session_error(s) != NULL) {
        check_clean(hato_error_message(hato_session_error(s)));
        check_clean(hato_error_server_text(hato_session_error(s)));
    }
}

/* A plain-text session (the session layer is the same under TLS), with
 * plaintext mechanisms allowed as over TLS, and the trace collected. */
static hato_options *options(logbook *lb, const char *secret, const char *filter)
{
    hato_options *o = hato_options_new();
    hato_options_set_relay(o, "relay.example", 587);
    hato_options_set_tls_level(o, HATO_TLS_NONE);
    hato_options_set_helo_name(o, "client.example");
    hato_options_set_credentials(o, USER, secret);
    hato_options_set_sasl_security(o, HATO_SASL_NOANONYMOUS, HATO_SASL_NOANONYMOUS);
    if (filter != NULL)
        hato_options_set_sasl_mechanisms(o, filter);
    hato_options_set_log(o, collect_log, lb, HATO_LOG_TRACE);
    return o;
}

static hato_message *message(void)
{
    hato_message *m = hato_message_new();
    hato_message_set_sender(m, "me@example.test");
    hato_message_add_recipient(m, "a@example.test");
    hato_message_set_content(m, "hi\n", 3);
    return m;
}

#define SEND_STEPS                                                            \
    {"250 ok\r\n", "RCPT TO:<a@example.test>\r\n"},                           \
    {"250 ok\r\n", "DATA\r\n"},                                               \
    {"354 go\r\n", "hi\r\n.\r\n"},                                            \
    {"250 ok\r\n", "QUIT\r\n"},                                               \
    {NULL, ""}

/* ------------------------------------------------------------------ */

static void test_oauthbearer_success(void)
{
    logbook lb = {.len = 0};
    hato_options *o = options(&lb, TOKEN, "oauthbearer");
    hato_message *m = message();
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER\r\n",
         "AUTH OAUTHBEARER " OAUTHBEARER_IR "\r\n"},
        {"235 2.7.0 Accepted\r\n", "MAIL FROM:<me@example.test>\r\n"},
        SEND_STEPS,
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_error(s) == NULL);
    CHECK(hato_message_sent(m));
    CHECK_HAS(lb.text, "> AUTH OAUTHBEARER [redacted]");
    CHECK_HAS(lb.text, "authenticated to relay.example as " USER " with OAUTHBEARER");
    check_session_clean(s, &lb);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_oauthbearer_failure(void)
{
    logbook lb = {.len = 0};
    hato_options *o = options(&lb, TOKEN, "oauthbearer");
    hato_message *m = message();
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH OAUTHBEARER\r\n", "AUTH OAUTHBEARER " OAUTHBEARER_IR "\r\n"},
        /* RFC 7628 section 3.2.2: the error, then the client's 0x01, then
         * the server's verdict. */
        {"334 " RFC7628_ERROR "\r\n", "AQ==\r\n"},
        {"535 5.7.8 Username and Password not accepted\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_AUTH, false, 535,
                "authentication as " USER " with OAUTHBEARER failed at relay.example "
                "(the server's error: status invalid_token, scope https://mail.example/, "
                "openid-configuration https://login.example/.well-known/"
                "openid-configuration): 535 5.7.8");
    CHECK(!hato_message_sent(m));
    CHECK_HAS(lb.text, "< 334 [redacted]");
    CHECK_HAS(lb.text, "> [redacted]");
    check_session_clean(s, &lb);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_xoauth2(void)
{
    logbook lb = {.len = 0};
    hato_options *o = options(&lb, TOKEN, "xoauth2");
    hato_message *m = message();
    const step ok[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER\r\n",
         "AUTH XOAUTH2 " XOAUTH2_IR "\r\n"},
        {"235 2.7.0 Accepted\r\n", "MAIL FROM:<me@example.test>\r\n"},
        SEND_STEPS,
        {NULL, NULL},
    };
    hato_session *s = run(o, m, ok);
    CHECK(hato_session_error(s) == NULL);
    check_session_clean(s, &lb);
    hato_session_free(s);

    /* Google's failure: the JSON challenge answered with an empty line. */
    lb.len = 0;
    lb.text[0] = '\0';
    const step refused[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH LOGIN PLAIN XOAUTH2\r\n", "AUTH XOAUTH2 " XOAUTH2_IR "\r\n"},
        {"334 " GOOGLE_ERROR "\r\n", "\r\n"},
        {"535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
         "535 5.7.8  https://support.google.com/mail/?p=BadCredentials\r\n",
         "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    s = run(o, m, refused);
    check_error(s, HATO_E_AUTH, false, 535,
                "with XOAUTH2 failed at relay.example (the server's error: status 401, "
                "scope https://mail.google.com/)");
    check_session_clean(s, &lb);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* Without the filter, a server offering OAuth gets the password
 * mechanisms: a token is never guessed to be one. */
static void test_oauth_not_guessed(void)
{
    logbook lb = {.len = 0};
    hato_options *o = options(&lb, "secret", NULL);
    hato_message *m = message();
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH XOAUTH2 OAUTHBEARER PLAIN\r\n",
         "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    hato_session_free(s);
    /* Only OAuth offered: the message says to name it. */
    const step only[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n", "QUIT\r\n"},
        {NULL, ""},
        {NULL, NULL},
    };
    s = run(o, m, only);
    check_error(s, HATO_E_AUTH_MECH, true, 0,
                "XOAUTH2 and OAUTHBEARER are used only when smtp_sasl_mechanism_filter "
                "names them; to fix, add oauthbearer or xoauth2 to "
                "smtp_sasl_mechanism_filter");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* 535 judged the credentials: never a second mechanism with them. */
static void test_no_retry_after_535(void)
{
    logbook lb = {.len = 0};
    hato_options *o = options(&lb, PASSWORD, NULL);
    hato_message *m = message();
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH LOGIN PLAIN\r\n",
         "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABacTctc2VjcmV0LVZ4OQ==\r\n"},
        {"535 5.7.8 Authentication credentials invalid\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    check_error(s, HATO_E_AUTH, false, 535, "with PLAIN failed at relay.example: 535 5.7.8");
    CHECK(strstr(lb.text, "> AUTH LOGIN") == NULL);
    check_session_clean(s, &lb);
    hato_session_free(s);

    /* Nor after a temporary failure (454): the next attempt is the
     * queue's, later. */
    const step temp[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH LOGIN PLAIN\r\n",
         "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABacTctc2VjcmV0LVZ4OQ==\r\n"},
        {"454 4.7.0 Temporary authentication failure\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    s = run(o, m, temp);
    check_error(s, HATO_E_AUTH, true, 454, "with PLAIN failed");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* 504/534/538 refuse the mechanism, not the credentials: one fallback. */
static void test_fallback(void)
{
    logbook lb = {.len = 0};
    hato_options *o = options(&lb, PASSWORD, NULL);
    hato_message *m = message();
    const step script[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH PLAIN LOGIN\r\n",
         "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABacTctc2VjcmV0LVZ4OQ==\r\n"},
        {"504 5.5.4 Unrecognized authentication type\r\n", "AUTH LOGIN\r\n"},
        {"334 VXNlcm5hbWU6\r\n", "YWxpY2VAZXhhbXBsZS50ZXN0\r\n"},
        {"334 UGFzc3dvcmQ6\r\n", "WnE3LXNlY3JldC1WeDk=\r\n"},
        {"235 2.7.0 ok\r\n", "MAIL FROM:<me@example.test>\r\n"},
        SEND_STEPS,
        {NULL, NULL},
    };
    hato_session *s = run(o, m, script);
    CHECK(hato_session_error(s) == NULL);
    CHECK(hato_message_sent(m));
    CHECK_HAS(lb.text, "relay.example refused PLAIN (504 Unrecognized authentication type); "
                       "trying LOGIN");
    check_session_clean(s, &lb);
    hato_session_free(s);

    /* Once only: a second mechanism refusal ends it, named. */
    const step twice[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH CRAM-MD5 PLAIN LOGIN\r\n", "AUTH CRAM-MD5\r\n"},
        {"534 5.7.9 Authentication mechanism is too weak\r\n",
         "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABacTctc2VjcmV0LVZ4OQ==\r\n"},
        {"538 5.7.11 Encryption required for requested authentication mechanism\r\n",
         "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    s = run(o, m, twice);
    check_error(s, HATO_E_AUTH, false, 538, "with PLAIN failed at relay.example: 538 5.7.11");
    hato_session_free(s);

    /* No other candidate: the refusal itself is the error. */
    hato_options_set_sasl_mechanisms(o, "plain");
    const step alone[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH PLAIN LOGIN\r\n",
         "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABacTctc2VjcmV0LVZ4OQ==\r\n"},
        {"504 5.5.4 Unrecognized authentication type\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    s = run(o, m, alone);
    check_error(s, HATO_E_AUTH, false, 504, "with PLAIN failed at relay.example: 504 5.5.4");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

/* SCRAM and DIGEST-MD5 servers prove themselves; a 235 without the proof
 * is refused, and nothing is sent. */
static void test_proof_required(void)
{
    logbook lb = {.len = 0};
    hato_options *o = options(&lb, PASSWORD, NULL);
    hato_message *m = message();
    const step scram[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n", ANY_LINE},
        {"235 2.7.0 ok\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, scram);
    check_error(s, HATO_E_AUTH, true, 0,
                "relay.example accepted SCRAM-SHA-256 without proving it knows the "
                "password (no SCRAM server signature)");
    hato_session_free(s);

    /* DIGEST-MD5 under mutual_auth: the server skips its rspauth. */
    hato_options_set_sasl_security(o, HATO_SASL_MUTUAL_AUTH, HATO_SASL_MUTUAL_AUTH);
    const step digest[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH PLAIN CRAM-MD5 DIGEST-MD5\r\n", "AUTH DIGEST-MD5\r\n"},
        /* realm="x",nonce="abc",qop="auth",charset=utf-8,algorithm=md5-sess */
        {"334 cmVhbG09IngiLG5vbmNlPSJhYmMiLHFvcD0iYXV0aCIsY2hhcnNldD11dGYtOCxhbGdvcml0aG09"
         "bWQ1LXNlc3M=\r\n",
         ANY_LINE},
        {"235 2.7.0 ok\r\n", "QUIT\r\n"},
        {"221 bye\r\n", ""},
        {NULL, NULL},
    };
    s = run(o, m, digest);
    check_error(s, HATO_E_AUTH, true, 0,
                "relay.example accepted DIGEST-MD5 without proving it knows the password");
    check_session_clean(s, &lb);
    hato_session_free(s);

    /* mutual_auth with only PLAIN and CRAM-MD5 offered: nothing fits. */
    const step none[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH PLAIN CRAM-MD5\r\n", "QUIT\r\n"},
        {NULL, ""},
        {NULL, NULL},
    };
    s = run(o, m, none);
    check_error(s, HATO_E_AUTH_MECH, true, 0,
                "PLAIN and CRAM-MD5 are excluded by mutual_auth in "
                "smtp_sasl_security_options");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

static void test_security_options(void)
{
    hato_options *o = hato_options_new();
    CHECK_INT(hato_options_set_sasl_security(o, HATO_SASL_NODICTIONARY | HATO_SASL_MUTUAL_AUTH,
                                             HATO_SASL_NOPLAINTEXT | HATO_SASL_NODICTIONARY),
              HATO_OK);
    CHECK_INT(hato_options_set_sasl_security(o, 1u << 4, 0), HATO_E_ARGUMENT);
    hato_options_free(o);

    /* nodictionary without a certificate or token: every password
     * mechanism goes, and the message says which option did it. */
    logbook lb = {.len = 0};
    o = options(&lb, PASSWORD, NULL);
    hato_options_set_sasl_security(o, HATO_SASL_NODICTIONARY, HATO_SASL_NODICTIONARY);
    hato_message *m = message();
    const step none[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n", "QUIT\r\n"},
        {NULL, ""},
        {NULL, NULL},
    };
    hato_session *s = run(o, m, none);
    check_error(s, HATO_E_AUTH_MECH, true, 0,
                "PLAIN, LOGIN, CRAM-MD5 and SCRAM-SHA-256 are excluded by nodictionary "
                "in smtp_sasl_security_options");
    hato_session_free(s);

    /* EXTERNAL named, but no client certificate on this (plain) link. */
    hato_options_set_sasl_security(o, HATO_SASL_NOANONYMOUS, HATO_SASL_NOANONYMOUS);
    hato_options_set_sasl_mechanisms(o, "external");
    const step ext[] = {
        {"220 relay\r\n", "EHLO client.example\r\n"},
        {"250-relay\r\n250 AUTH PLAIN EXTERNAL\r\n", "QUIT\r\n"},
        {NULL, ""},
        {NULL, NULL},
    };
    s = run(o, m, ext);
    check_error(s, HATO_E_AUTH_MECH, true, 0,
                "EXTERNAL needs a client certificate on a TLS connection");
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
}

int main(void)
{
    test_oauthbearer_success();
    test_oauthbearer_failure();
    test_xoauth2();
    test_oauth_not_guessed();
    test_no_retry_after_535();
    test_fallback();
    test_proof_required();
    test_security_options();
    return check_finish("auth");
}
