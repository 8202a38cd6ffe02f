/*
 * test_smtpd.c - hato -bs without I/O: the command parser, the session
 * state machine (replies compared, hooks stubbed) and the DATA decoder
 * at every split point; mynetworks matching (config.c); AUTH PLAIN and
 * LOGIN, base64 and the password file check with the real crypt(3).
 */
#define _DEFAULT_SOURCE
#define _GNU_SOURCE /* memmem */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "smtpd.h"

/* The line at the very end of a page followed by an inaccessible one, so
 * any read past it crashes (picohttpparser's trick). */
static const char *guarded(const char *s, size_t n)
{
    static char *page;
    static size_t psz;
    if (page == NULL) {
        psz = (size_t)sysconf(_SC_PAGESIZE);
        page = mmap(NULL, 2 * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            abort();
        mprotect(page + psz, psz, PROT_NONE);
    }
    if (n > psz)
        abort();
    memcpy(page + psz - n, s, n);
    return page + psz - n;
}

static int parse(const char *line, struct smtpd_command *c)
{
    size_t n = strlen(line);
    return smtpd_parse(guarded(line, n), n, c);
}

static void test_parse(void)
{
    struct smtpd_command c;

    CHECK_INT(parse("EHLO client.example", &c), 0);
    CHECK_INT(c.verb, SMTPD_CMD_EHLO);
    CHECK(c.arg_len == 14 && memcmp(c.arg, "client.example", 14) == 0);
    CHECK_INT(parse("ehlo  x  ", &c), 0);
    CHECK(c.arg_len == 1 && c.arg[0] == 'x');
    CHECK_INT(parse("EHLO", &c), -1);
    CHECK_HAS(c.reply, "501 5.5.4 Syntax: EHLO hostname");
    CHECK_INT(parse("HELO a b", &c), -1);

    CHECK_INT(parse("MAIL FROM:<alice@example.test>", &c), 0);
    CHECK_INT(c.verb, SMTPD_CMD_MAIL);
    CHECK_STR(c.path, "alice@example.test");
    CHECK(!c.has_size);
    CHECK_INT(parse("mail from:<>", &c), 0);
    CHECK_STR(c.path, "");
    CHECK_INT(parse("MAIL FROM: <a@b>", &c), 0); /* tolerated, as Postfix */
    CHECK_STR(c.path, "a@b");
    CHECK_INT(parse("MAIL FROM:<a@b> SIZE=12345 BODY=8BITMIME", &c), 0);
    CHECK(c.has_size && c.size == 12345);
    CHECK_INT(c.body, SMTPD_BODY_8BITMIME);
    CHECK_INT(parse("MAIL FROM:<a@b> size=1", &c), 0);
    CHECK(c.has_size && c.size == 1);
    CHECK_INT(parse("MAIL FROM:<a@b> SIZE=", &c), -1);
    CHECK_HAS(c.reply, "501 5.5.4 Bad SIZE");
    CHECK_INT(parse("MAIL FROM:<a@b> SIZE=12x", &c), -1);
    CHECK_INT(parse("MAIL FROM:<a@b> SIZE=99999999999999999999", &c), -1);
    CHECK_INT(parse("MAIL FROM:<a@b> BODY=BINARYMIME", &c), -1);
    CHECK_INT(parse("MAIL FROM:<a@b> SMTPUTF8", &c), -1);
    CHECK_HAS(c.reply, "555 5.5.4 Unsupported option: SMTPUTF8");
    CHECK_INT(parse("MAIL FROM:a@b", &c), -1);
    CHECK_HAS(c.reply, "501 5.5.4 Syntax: MAIL FROM:<address>");
    CHECK_INT(parse("MAIL FROM:<a@b", &c), -1);
    CHECK_INT(parse("MAIL FROM:<a@b>x", &c), -1);
    CHECK_INT(parse("MAIL TO:<a@b>", &c), -1);
    CHECK_INT(parse("MAIL FROM:<a b@c>", &c), -1);
    CHECK_INT(parse("MAIL FROM:<\"a b\"@c>", &c), 0);
    CHECK_STR(c.path, "\"a b\"@c");
    CHECK_INT(parse("MAIL FROM:<\"a>b\"@c>", &c), 0);
    CHECK_STR(c.path, "\"a>b\"@c");
    CHECK_INT(parse("MAIL FROM:<j\xc3\xb6@c>", &c), -1);
    CHECK_HAS(c.reply, "553 5.6.7");
    CHECK_INT(parse("MAIL FROM:<@relay.example,@b.example:user@c.example>", &c), 0);
    CHECK_STR(c.path, "user@c.example");

    CHECK_INT(parse("RCPT TO:<bob@example.test>", &c), 0);
    CHECK_INT(c.verb, SMTPD_CMD_RCPT);
    CHECK_STR(c.path, "bob@example.test");
    CHECK_INT(parse("RCPT TO:<bob@example.test> NOTIFY=NEVER", &c), -1);
    CHECK_HAS(c.reply, "555 5.5.4 Unsupported option: NOTIFY");
    CHECK_INT(parse("RCPT FROM:<bob@example.test>", &c), -1);

    /* The longest path that fits, and one past it. */
    char line[600], addr[400];
    memset(addr, 'a', sizeof addr);
    addr[SMTPD_MAX_PATH - 2] = '\0'; /* 254: the brackets make 256 */
    memcpy(addr + strlen(addr) - 2, "@b", 2);
    snprintf(line, sizeof line, "RCPT TO:<%s>", addr);
    CHECK_INT(parse(line, &c), 0);
    CHECK_STR(c.path, addr);
    addr[strlen(addr) + 1] = '\0';
    addr[strlen(addr)] = 'b';
    snprintf(line, sizeof line, "RCPT TO:<%s>", addr);
    CHECK_INT(parse(line, &c), -1);
    CHECK_HAS(c.reply, "longer than");

    CHECK_INT(parse("DATA", &c), 0);
    CHECK_INT(c.verb, SMTPD_CMD_DATA);
    CHECK_INT(parse("DATA x", &c), -1);
    CHECK_INT(parse("RSET", &c), 0);
    CHECK_INT(parse("QUIT", &c), 0);
    CHECK_INT(parse("QUIT now", &c), -1);
    CHECK_INT(parse("NOOP anything", &c), 0);
    CHECK_INT(parse("HELP", &c), 0);
    CHECK_INT(parse("VRFY", &c), -1);
    CHECK_INT(parse("VRFY root", &c), 0);
    CHECK_INT(parse("STARTTLS", &c), 0);
    CHECK_INT(c.verb, SMTPD_CMD_NOT_OFFERED);
    CHECK_INT(parse("AUTH PLAIN AGZvbwBiYXI=", &c), 0);
    CHECK_INT(c.verb, SMTPD_CMD_AUTH);
    CHECK(c.mech_len == 5 && memcmp(c.mech, "PLAIN", 5) == 0);
    CHECK(c.initial_len == 12 && memcmp(c.initial, "AGZvbwBiYXI=", 12) == 0);
    CHECK_INT(parse("auth login", &c), 0);
    CHECK(c.mech_len == 5 && c.initial == NULL);
    CHECK_INT(parse("AUTH", &c), -1);
    CHECK_HAS(c.reply, "501 5.5.4 Syntax: AUTH mechanism");
    CHECK_INT(parse("AUTH PLAIN a b", &c), -1);
    CHECK_INT(parse("AUTH ABCDEFGHIJKLMNOPQRSTU", &c), -1); /* 21 > RFC 4422's 20 */
    CHECK_INT(parse("XYZZY", &c), 0);
    CHECK_INT(c.verb, SMTPD_CMD_UNKNOWN);
    CHECK_INT(parse("", &c), 0);
    CHECK_INT(c.verb, SMTPD_CMD_UNKNOWN);
    CHECK_INT(smtpd_parse(guarded("NOOP\0x", 6), 6, &c), -1);
    CHECK_HAS(c.reply, "500 5.5.2");
    CHECK_INT(parse("NOOP \r", &c), -1);
}

/* ------------------------------------------------------------------ */

static char refused_log[8192];
static const char *mail_answer, *rcpt_answer;
static char last_sender[300];
static int nrcpt, nreset;

static const char *h_mail(void *u, const char *s)
{
    (void)u;
    snprintf(last_sender, sizeof last_sender, "%s", s);
    return mail_answer;
}
static const char *h_rcpt(void *u, const char *r)
{
    (void)u;
    (void)r;
    if (rcpt_answer == NULL)
        nrcpt++;
    return rcpt_answer;
}
static void h_reset(void *u)
{
    (void)u;
    nrcpt = 0;
    nreset++;
}
static void h_refused(void *u, const char *cmd, const char *reply)
{
    (void)u;
    size_t k = strlen(refused_log);
    snprintf(refused_log + k, sizeof refused_log - k, "%s: %s\n", cmd, reply);
}

/* The password file the auth hook checks, made at run time with crypt(). */
static char passwd_text[1024];
static int nauth;

static enum smtpd_auth_result h_auth(void *u, const char *user, const char *password)
{
    (void)u;
    nauth++;
    return smtpd_password_check(passwd_text, strlen(passwd_text), user, password);
}

static void session(struct smtpd *s, bool refused)
{
    memset(s, 0, sizeof *s);
    s->hooks = (struct smtpd_hooks){h_mail, h_rcpt, h_reset, h_refused, NULL, h_auth, NULL};
    s->hostname = "mx.example.test";
    snprintf(s->client, sizeof s->client, "[192.0.2.9]");
    s->size_limit = 1000;
    s->error_limit = 5;
    s->message_limit = 2;
    refused_log[0] = '\0';
    mail_answer = rcpt_answer = NULL;
    smtpd_start(s, refused, "access denied: client [192.0.2.9] is not in mynetworks");
}

/* Feeds one line and returns the replies it produced (then cleared). */
static const char *say_line(struct smtpd *s, const char *line, enum smtpd_action *a)
{
    static char out[SMTPD_OUT + 1];
    enum smtpd_action act = smtpd_line(s, line, strlen(line), false);
    if (a != NULL)
        *a = act;
    memcpy(out, s->out, s->out_len);
    out[s->out_len] = '\0';
    s->out_len = 0;
    return out;
}

static const char *take(struct smtpd *s)
{
    static char out[SMTPD_OUT + 1];
    memcpy(out, s->out, s->out_len);
    out[s->out_len] = '\0';
    s->out_len = 0;
    return out;
}

static void test_session(void)
{
    struct smtpd s;
    enum smtpd_action a;

    session(&s, false);
    CHECK_STR(take(&s), "220 mx.example.test ESMTP hato\r\n");
    CHECK_INT(s.state, SMTPD_GREETED);
    CHECK_STR(say_line(&s, "MAIL FROM:<a@b>", NULL), "503 5.5.1 Error: send HELO/EHLO first\r\n");
    CHECK_STR(say_line(&s, "EHLO c", NULL),
              "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
              "250 ENHANCEDSTATUSCODES\r\n");
    CHECK_INT(s.state, SMTPD_READY);
    CHECK_STR(say_line(&s, "RCPT TO:<x@y>", NULL), "503 5.5.1 Error: need MAIL command\r\n");
    CHECK_STR(say_line(&s, "DATA", NULL), "503 5.5.1 Error: need MAIL command\r\n");
    CHECK_HAS(say_line(&s, "MAIL FROM:<a@b> SIZE=1001", NULL), "552 5.3.4");
    CHECK_INT(s.state, SMTPD_READY);
    CHECK_INT(s.errors, 4);
    CHECK_STR(say_line(&s, "MAIL FROM:<a@b> SIZE=1000", NULL), "250 2.1.0 Ok\r\n");
    CHECK_STR(last_sender, "a@b");
    /* The fifth error: 421 and the end. */
    CHECK_STR(say_line(&s, "MAIL FROM:<a@b>", &a), "503 5.5.1 Error: nested MAIL command\r\n"
                                                   "421 4.7.0 mx.example.test Error: too many errors\r\n");
    CHECK_INT(a, SMTPD_CLOSE);
    CHECK_STR(refused_log, "MAIL: 503 5.5.1 Error: send HELO/EHLO first\n"
                           "RCPT: 503 5.5.1 Error: need MAIL command\n"
                           "DATA: 503 5.5.1 Error: need MAIL command\n"
                           "MAIL: 552 5.3.4 Error: message size 1001 exceeds the limit of 1000 "
                           "bytes (message_size_limit)\n"
                           "MAIL: 503 5.5.1 Error: nested MAIL command\n"
                           "session: 421 4.7.0 too many errors (smtpd_hard_error_limit)\n");
    CHECK_INT(s.state, SMTPD_CLOSED);

    /* A whole transaction, then the per-connection message limit. */
    session(&s, false);
    s.error_limit = 0;
    take(&s);
    say_line(&s, "HELO c", NULL);
    CHECK_STR(say_line(&s, "MAIL FROM:<>", NULL), "250 2.1.0 Ok\r\n");
    CHECK_STR(last_sender, "");
    CHECK_STR(say_line(&s, "DATA", NULL), "503 5.5.1 Error: need RCPT command\r\n");
    CHECK_HAS(say_line(&s, "RCPT TO:<>", NULL), "501 5.1.3");
    CHECK_STR(say_line(&s, "RCPT TO:<x@y>", NULL), "250 2.1.5 Ok\r\n");
    CHECK_STR(say_line(&s, "RCPT TO:<z@y>", NULL), "250 2.1.5 Ok\r\n");
    CHECK_INT(nrcpt, 2);
    CHECK_STR(say_line(&s, "DATA", &a), "354 End data with <CR><LF>.<CR><LF>\r\n");
    CHECK_INT(a, SMTPD_RECEIVE);
    CHECK_INT(s.state, SMTPD_DATA);
    smtpd_data_done(&s, "250 2.0.0 Ok: queued as X");
    CHECK_STR(take(&s), "250 2.0.0 Ok: queued as X\r\n");
    CHECK_INT(s.state, SMTPD_READY);
    CHECK_INT(nrcpt, 0);
    CHECK_INT(s.messages, 1);
    say_line(&s, "MAIL FROM:<a@b>", NULL);
    say_line(&s, "RCPT TO:<x@y>", NULL);
    say_line(&s, "DATA", NULL);
    smtpd_data_done(&s, "552 5.3.4 Error: message too big");
    CHECK_INT(s.messages, 1);
    CHECK_HAS(refused_log, "DATA: 552 5.3.4");
    say_line(&s, "MAIL FROM:<a@b>", NULL);
    say_line(&s, "RCPT TO:<x@y>", NULL);
    say_line(&s, "DATA", NULL);
    smtpd_data_done(&s, "250 2.0.0 Ok: queued as Y");
    take(&s);
    CHECK_HAS(say_line(&s, "MAIL FROM:<a@b>", NULL), "452 4.7.0 Error: too many messages");
    CHECK_STR(say_line(&s, "RSET", NULL), "250 2.0.0 Ok\r\n");
    CHECK_HAS(say_line(&s, "VRFY root", NULL), "252 ");
    CHECK_HAS(say_line(&s, "HELP", NULL), "214 ");
    CHECK_HAS(say_line(&s, "STARTTLS", NULL), "502 5.5.1");
    CHECK_HAS(say_line(&s, "BOGUS", NULL), "500 5.5.2");
    CHECK_STR(say_line(&s, "QUIT", &a), "221 2.0.0 Bye\r\n");
    CHECK_INT(a, SMTPD_CLOSE);

    /* A hook's refusal is the reply; RSET and EHLO reset a transaction. */
    session(&s, false);
    take(&s);
    say_line(&s, "EHLO c", NULL);
    mail_answer = "451 4.3.0 Error: out of memory; try again later";
    CHECK_STR(say_line(&s, "MAIL FROM:<a@b>", NULL), "451 4.3.0 Error: out of memory; try again later\r\n");
    CHECK_INT(s.state, SMTPD_READY);
    mail_answer = NULL;
    say_line(&s, "MAIL FROM:<a@b>", NULL);
    say_line(&s, "RCPT TO:<x@y>", NULL);
    nreset = 0;
    say_line(&s, "EHLO again", NULL);
    CHECK_INT(nreset, 1);
    CHECK_INT(s.state, SMTPD_READY);
    CHECK_HAS(say_line(&s, "RCPT TO:<x@y>", NULL), "503");
    smtpd_line(&s, "", 0, true);
    CHECK_HAS(take(&s), "500 5.5.2 Error: line too long");
    smtpd_timed_out(&s);
    CHECK_STR(take(&s), "421 4.4.2 mx.example.test Error: timeout exceeded\r\n");
    CHECK_INT(s.state, SMTPD_CLOSED);

    /* Refused at the greeting: only QUIT (RFC 5321 3.1). */
    session(&s, true);
    CHECK_STR(take(&s), "554 5.7.1 mx.example.test ESMTP: access denied: client [192.0.2.9] is "
                        "not in mynetworks\r\n");
    CHECK_HAS(refused_log, "CONNECT: 554 5.7.1");
    CHECK_HAS(say_line(&s, "EHLO c", NULL), "503 5.7.1 Error: access denied for [192.0.2.9]");
    CHECK_HAS(say_line(&s, "MAIL FROM:<a@b>", NULL), "503 5.7.1");
    CHECK_STR(say_line(&s, "QUIT", &a), "221 2.0.0 Bye\r\n");
    CHECK_INT(a, SMTPD_CLOSE);
    CHECK_STR(smtpd_state_name(SMTPD_RCPT), "rcpt");
}

/* ------------------------------------------------------------------ */

static void test_base64(void)
{
    unsigned char out[16];
    CHECK_INT(smtpd_base64_decode(guarded("YWxpY2U=", 8), 8, out, sizeof out), 5);
    CHECK(memcmp(out, "alice", 5) == 0);
    CHECK_INT(smtpd_base64_decode(guarded("czNjcmV0", 8), 8, out, sizeof out), 6);
    CHECK(memcmp(out, "s3cret", 6) == 0);
    CHECK_INT(smtpd_base64_decode(guarded("YQ==", 4), 4, out, sizeof out), 1);
    CHECK_INT(smtpd_base64_decode(guarded("", 0), 0, out, sizeof out), 0);
    CHECK_INT(smtpd_base64_decode(guarded("YWxpY2U", 7), 7, out, sizeof out), -1); /* length */
    CHECK_INT(smtpd_base64_decode(guarded("YW=pY2U=", 8), 8, out, sizeof out), -1); /* '=' inside */
    CHECK_INT(smtpd_base64_decode(guarded("Y===", 4), 4, out, sizeof out), -1);
    CHECK_INT(smtpd_base64_decode(guarded("YQ==YQ==", 8), 8, out, sizeof out), -1);
    CHECK_INT(smtpd_base64_decode(guarded("YW*p", 4), 4, out, sizeof out), -1);
    CHECK_INT(smtpd_base64_decode(guarded("czNjcmV0", 8), 8, out, 5), -1); /* past cap */
    CHECK_INT(smtpd_base64_decode(guarded("czNjcmV0", 8), 8, out, 6), 6);
}

static void test_password_file(void)
{
    char line[600], h6[200], hy[200];
    /* Copies: the check wipes crypt()'s static result. */
    const char *r = crypt("s3cret", "$6$saltsaltsalt$");
    CHECK(r != NULL && strncmp(r, "$6$", 3) == 0);
    snprintf(h6, sizeof h6, "%s", r != NULL ? r : "");
    snprintf(passwd_text, sizeof passwd_text, "# users\n\nbob:*\nalice:%s\n", h6);
    CHECK_INT(smtpd_password_check(passwd_text, strlen(passwd_text), "alice", "s3cret"),
              SMTPD_AUTH_OK);
    CHECK_INT(smtpd_password_check(passwd_text, strlen(passwd_text), "alice", "s3creT"),
              SMTPD_AUTH_BAD);
    CHECK_INT(smtpd_password_check(passwd_text, strlen(passwd_text), "alic", "s3cret"),
              SMTPD_AUTH_BAD);
    CHECK_INT(smtpd_password_check(passwd_text, strlen(passwd_text), "bob", ""), SMTPD_AUTH_BAD);
    CHECK_INT(smtpd_password_check(passwd_text, strlen(passwd_text), "# users", ""),
              SMTPD_AUTH_BAD);
    /* Without the final newline, and with CRLF. */
    snprintf(line, sizeof line, "alice:%s", h6);
    CHECK_INT(smtpd_password_check(guarded(line, strlen(line)), strlen(line), "alice", "s3cret"),
              SMTPD_AUTH_OK);
    snprintf(line, sizeof line, "alice:%s\r\n", h6);
    CHECK_INT(smtpd_password_check(line, strlen(line), "alice", "s3cret"), SMTPD_AUTH_OK);
    snprintf(line, sizeof line, "alice:not-a-hash\n");
    CHECK_INT(smtpd_password_check(line, strlen(line), "alice", "not-a-hash"), SMTPD_AUTH_BAD);
    /* yescrypt, mkpasswd's default, where this libcrypt makes it. */
    const char *setting = crypt_gensalt("$y$", 0, NULL, 0);
    r = setting != NULL ? crypt("s3cret", setting) : NULL;
    snprintf(hy, sizeof hy, "%s", r != NULL ? r : "");
    if (strncmp(hy, "$y$", 3) == 0) {
        snprintf(line, sizeof line, "alice:%s\n", hy);
        CHECK_INT(smtpd_password_check(line, strlen(line), "alice", "s3cret"), SMTPD_AUTH_OK);
        CHECK_INT(smtpd_password_check(line, strlen(line), "alice", "wrong"), SMTPD_AUTH_BAD);
    }
    snprintf(passwd_text, sizeof passwd_text, "alice:%s\n", h6);
}

/* Every reply of a session appended here, to prove no secret is echoed. */
static char all_replies[16384];

static const char *say_auth(struct smtpd *s, const char *line, enum smtpd_action *a)
{
    const char *r = say_line(s, line, a);
    size_t k = strlen(all_replies);
    snprintf(all_replies + k, sizeof all_replies - k, "%s", r);
    return r;
}

static void test_auth(void)
{
    struct smtpd s;
    enum smtpd_action a;
    all_replies[0] = '\0';

    /* Not enabled: not offered, 502 as before. */
    session(&s, false);
    take(&s);
    CHECK(strstr(say_line(&s, "EHLO c", NULL), "AUTH") == NULL);
    CHECK_STR(say_line(&s, "AUTH PLAIN AGFsaWNlAHMzY3JldA==", NULL),
              "502 5.5.1 Error: command not implemented\r\n");
    CHECK_STR(say_line(&s, "MAIL FROM:<a@b>", NULL), "250 2.1.0 Ok\r\n");

    /* Enabled and required. */
    session(&s, false);
    s.auth_offered = s.auth_required = true;
    s.error_limit = 0;
    take(&s);
    CHECK_HAS(say_auth(&s, "AUTH PLAIN AGFsaWNlAHMzY3JldA==", NULL), "503 5.5.1 Error: send EHLO first");
    CHECK_STR(say_auth(&s, "EHLO c", NULL),
              "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
              "250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n");
    CHECK_HAS(say_auth(&s, "HELP", NULL), "AUTH");
    CHECK_STR(say_auth(&s, "MAIL FROM:<a@b>", NULL),
              "530 5.7.0 Error: authentication required; use AUTH first "
              "(smtpd_sasl_auth_required)\r\n");
    CHECK_INT(s.state, SMTPD_READY);
    CHECK_HAS(say_auth(&s, "AUTH CRAM-MD5", NULL), "504 5.5.4");
    /* PLAIN, a wrong password: 535, logged with the user, counted. */
    unsigned e = s.errors;
    refused_log[0] = '\0';
    CHECK_STR(say_auth(&s, "AUTH PLAIN AGFsaWNlAHdyb25n", NULL),
              "535 5.7.8 Error: authentication failed\r\n");
    CHECK_INT(s.errors, e + 1);
    CHECK_STR(refused_log, "AUTH: 535 5.7.8 Error: authentication failed (sasl_method=PLAIN, "
                           "sasl_username=alice)\n");
    CHECK(!s.authenticated);
    /* Malformed: no second NUL, a ':' in the name, a newline in the name
     * (logged as '?'), another authzid, not base64. */
    CHECK_HAS(say_auth(&s, "AUTH PLAIN AGFsaWNl", NULL), "501 5.5.2 Error: malformed PLAIN");
    CHECK_HAS(say_auth(&s, "AUTH PLAIN AGFsOmljZQBzM2NyZXQ=", NULL), "535 5.7.8");
    refused_log[0] = '\0';
    nauth = 0;
    CHECK_HAS(say_auth(&s, "AUTH PLAIN AGFsCmljZQB4", NULL), "535 5.7.8");
    CHECK_HAS(refused_log, "sasl_username=al?ice)");
    CHECK_HAS(say_auth(&s, "AUTH PLAIN Ym9iAGFsaWNlAHMzY3JldA==", NULL), "535 5.7.8");
    CHECK_INT(nauth, 0); /* none of these reached the password file */
    CHECK_HAS(say_auth(&s, "AUTH PLAIN !!!!", NULL), "501 5.5.2 Error: cannot decode");
    CHECK_INT(s.state, SMTPD_READY);
    /* PLAIN without an initial response: an empty 334, then cancelled. */
    CHECK_STR(say_auth(&s, "AUTH PLAIN", NULL), "334 \r\n");
    CHECK_INT(s.state, SMTPD_AUTH);
    CHECK_STR(say_auth(&s, "*", NULL), "501 5.7.0 Error: authentication cancelled\r\n");
    CHECK_INT(s.state, SMTPD_READY);
    /* A line in the exchange is a response, never a command. */
    CHECK_STR(say_auth(&s, "AUTH PLAIN", NULL), "334 \r\n");
    CHECK_HAS(say_auth(&s, "MAIL FROM:<a@b>", NULL), "501 5.5.2 Error: cannot decode");
    CHECK_INT(s.state, SMTPD_READY);
    CHECK_STR(say_auth(&s, "AUTH PLAIN", NULL), "334 \r\n");
    smtpd_line(&s, "", 0, true);
    CHECK_HAS(take(&s), "500 5.5.6");
    CHECK_INT(s.state, SMTPD_READY);
    /* PLAIN with the user as authzid: 235; then no second AUTH. */
    CHECK_STR(say_auth(&s, "AUTH PLAIN YWxpY2UAYWxpY2UAczNjcmV0", NULL),
              "235 2.7.0 Authentication successful\r\n");
    CHECK(s.authenticated);
    CHECK_STR(s.auth_user, "alice");
    CHECK_HAS(say_auth(&s, "AUTH PLAIN AGFsaWNlAHMzY3JldA==", NULL), "503 5.5.1 Error: already");
    CHECK_STR(say_auth(&s, "MAIL FROM:<a@b>", NULL), "250 2.1.0 Ok\r\n");
    CHECK_HAS(say_auth(&s, "AUTH LOGIN", NULL), "503 5.5.1 Error: MAIL transaction");
    /* The password is nowhere in the session's memory. */
    CHECK(memmem(&s, sizeof s, "s3cret", 6) == NULL);

    /* LOGIN in two steps; then with the user name as initial response. */
    session(&s, false);
    s.auth_offered = s.auth_required = true;
    take(&s);
    say_auth(&s, "EHLO c", NULL);
    CHECK_STR(say_auth(&s, "AUTH LOGIN", NULL), "334 VXNlcm5hbWU6\r\n");
    CHECK_STR(say_auth(&s, "YWxpY2U=", NULL), "334 UGFzc3dvcmQ6\r\n");
    CHECK_STR(say_auth(&s, "d3Jvbmc=", NULL), "535 5.7.8 Error: authentication failed\r\n");
    CHECK_HAS(refused_log, "sasl_method=LOGIN, sasl_username=alice");
    CHECK_STR(say_auth(&s, "AUTH LOGIN YWxpY2U=", NULL), "334 UGFzc3dvcmQ6\r\n");
    CHECK_STR(say_auth(&s, "*", NULL), "501 5.7.0 Error: authentication cancelled\r\n");
    CHECK_STR(s.auth_user, "");
    CHECK_STR(say_auth(&s, "AUTH LOGIN", NULL), "334 VXNlcm5hbWU6\r\n");
    CHECK_STR(say_auth(&s, "YWxpY2U=", NULL), "334 UGFzc3dvcmQ6\r\n");
    CHECK_STR(say_auth(&s, "czNjcmV0", &a), "235 2.7.0 Authentication successful\r\n");
    CHECK_INT(a, SMTPD_CONTINUE);
    CHECK_INT(s.mech, SMTPD_MECH_LOGIN);
    CHECK_STR(say_auth(&s, "MAIL FROM:<a@b>", NULL), "250 2.1.0 Ok\r\n");
    CHECK(memmem(&s, sizeof s, "s3cret", 6) == NULL);

    /* Enabled, not required: MAIL without AUTH is fine. */
    session(&s, false);
    s.auth_offered = true;
    take(&s);
    say_auth(&s, "EHLO c", NULL);
    CHECK_STR(say_auth(&s, "MAIL FROM:<a@b>", NULL), "250 2.1.0 Ok\r\n");

    /* 535s count toward smtpd_hard_error_limit (5 in session()). */
    session(&s, false);
    s.auth_offered = s.auth_required = true;
    take(&s);
    say_auth(&s, "EHLO c", NULL);
    for (int i = 0; i < 4; i++)
        CHECK_HAS(say_auth(&s, "AUTH PLAIN AGFsaWNlAHdyb25n", &a), "535 5.7.8");
    CHECK_HAS(say_auth(&s, "AUTH PLAIN AGFsaWNlAHdyb25n", &a), "421 4.7.0");
    CHECK_INT(a, SMTPD_CLOSE);

    /* A refused client never gets to AUTH. */
    session(&s, true);
    s.auth_offered = true;
    take(&s);
    CHECK_HAS(say_auth(&s, "AUTH PLAIN AGFsaWNlAHMzY3JldA==", NULL), "503 5.7.1");

    /* No reply ever held the password, plain or in base64. */
    CHECK(strstr(all_replies, "s3cret") == NULL);
    CHECK(strstr(all_replies, "czNjcmV0") == NULL);
    CHECK(strstr(all_replies, "wrong") == NULL);
    CHECK(strstr(refused_log, "s3cret") == NULL);
    CHECK_STR(smtpd_state_name(SMTPD_AUTH), "auth");
}

/* ------------------------------------------------------------------ */

/* in decoded in pieces: first cut at every position, then byte by byte;
 * the output must be want and the decoder must stop after the end line,
 * leaving rest unconsumed. */
static void decode_all(const char *in, const char *want, const char *rest)
{
    size_t n = strlen(in);
    for (size_t cut = 0; cut <= n; cut++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            struct smtpd_data d = {0};
            char out[1024];
            size_t o = 0, i = 0;
            while (i < n && !d.ended) {
                size_t piece = bytewise ? 1 : (i < cut ? cut - i : n - i);
                size_t used;
                /* cap 2 at times: the smallest the decoder accepts */
                size_t cap = (i % 3 == 0) ? 2 : sizeof out - o;
                if (cap > sizeof out - o)
                    cap = sizeof out - o;
                o += smtpd_data_decode(&d, guarded(in + i, piece), piece, &used, out + o, cap);
                i += used;
            }
            out[o] = '\0';
            CHECK(d.ended == (rest != NULL));
            CHECK_STR(out, want);
            if (rest != NULL)
                CHECK_STR(in + i, rest);
        }
    }
}

static void test_data(void)
{
    decode_all("Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\n\nbody\n", "");
    decode_all("..dot\r\n...two\r\n.\r\nQUIT\r\n", ".dot\n..two\n", "QUIT\r\n");
    decode_all("a\rb\r\n.\r\n", "a\rb\n", "");             /* a lone CR stays */
    decode_all("a\r\r\nb\r\n.\r\n", "a\r\nb\n", "");
    decode_all(".x\r\n.\r\n", "x\n", "");                   /* unstuffed anyway */
    decode_all(".\rx\r\n.\r\n", "\rx\n", "");
    decode_all("bare\nlf\n.\n", "bare\nlf\n", "");
    decode_all(".\r\n", "", "");
    decode_all("x.\r\n.\r\n", "x.\n", "");
    decode_all("no end\r\n", "no end\n", NULL);
}

static void test_networks(void)
{
    struct config_network n[4];
    const char *why;
    unsigned char a4[4] = {192, 168, 1, 77}, b4[4] = {192, 168, 2, 1}, lo[4] = {127, 0, 0, 1};
    unsigned char a6[16] = {0}, m6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 5};
    a6[15] = 1;
    CHECK_INT(config_parse_network("192.168.1.0/24", 14, &n[0], &why), 0);
    CHECK_INT(config_parse_network("[::1]/128", 9, &n[1], &why), 0);
    CHECK_INT(config_parse_network("127.0.0.1", 9, &n[2], &why), 0);
    CHECK_INT(n[2].prefix, 32);
    CHECK(config_network_match(n, 3, AF_INET, a4));
    CHECK(!config_network_match(n, 3, AF_INET, b4));
    CHECK(config_network_match(n, 3, AF_INET, lo));
    CHECK(config_network_match(n, 3, AF_INET6, a6));
    CHECK(config_network_match(n, 3, AF_INET6, m6)); /* IPv4-mapped */
    CHECK(!config_network_match(n, 1, AF_INET6, a6));
    CHECK_INT(config_parse_network("::1/128", 7, &n[3], &why), 0);
    CHECK_INT(config_parse_network("0.0.0.0/0", 9, &n[3], &why), 0);
    CHECK(config_network_match(&n[3], 1, AF_INET, b4));
    CHECK_INT(config_parse_network("192.168.1.5/24", 14, &n[3], &why), -1);
    CHECK_HAS(why, "bits set beyond");
    CHECK_INT(config_parse_network("10.0.0.0/33", 11, &n[3], &why), -1);
    CHECK_INT(config_parse_network("10.0.0.0/", 9, &n[3], &why), -1);
    CHECK_INT(config_parse_network("!10.0.0.0/8", 11, &n[3], &why), -1);
    CHECK_INT(config_parse_network("hash:/etc/x", 11, &n[3], &why), -1);
    CHECK_INT(config_parse_network("[::1/128", 8, &n[3], &why), -1);
}

int main(void)
{
    test_parse();
    test_session();
    test_data();
    test_networks();
    test_base64();
    test_password_file();
    test_auth();
    return check_finish("smtpd");
}
