/*
 * test_sasl.c - real exchanges on libgsasl, in memory: hato's client against
 * known answers and against a libgsasl server session.
 */
#include "sasl/sasl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsasl.h>

#include "check.h"
#include "sasl/oauth.h"
#include "util/secret.h"

#define USER "user"
/* Distinctive, so a leak cannot hide inside an ordinary word. */
#define PASSWORD "Zq7-secret-Vx9"
#define HOST "mx.example.test"

static char err[512];

/* No text meant for a person may hold the password, plain or base64. */
static bool clean(const char *s)
{
    char *b64 = NULL;
    bool ok = strstr(s, PASSWORD) == NULL;

    if (gsasl_base64_to(PASSWORD, strlen(PASSWORD), &b64, NULL) == GSASL_OK) {
        ok = ok && strstr(s, b64) == NULL;
        gsasl_free(b64);
    }
    return ok;
}

/* Decodes base64 into a NUL-terminated buffer of at most cap bytes; returns
 * the decoded length, or -1. */
static long decode(const char *b64, char *out, size_t cap)
{
    char *raw = NULL;
    size_t len = 0;

    if (b64 == NULL || gsasl_base64_from(b64, strlen(b64), &raw, &len) != GSASL_OK)
        return -1;
    if (len + 1 > cap) {
        gsasl_free(raw);
        return -1;
    }
    if (len > 0)
        memcpy(out, raw, len);
    out[len] = '\0';
    gsasl_free(raw);
    return (long)len;
}

static char *encode(const char *raw)
{
    char *b64 = NULL;

    if (gsasl_base64_to(raw, strlen(raw), &b64, NULL) != GSASL_OK)
        return NULL;
    return b64;
}

static void test_lib(sasl_lib *lib)
{
    const char *m = sasl_lib_mechanisms(lib);

    CHECK(m != NULL);
    CHECK_HAS(m, "PLAIN");
    CHECK_HAS(m, "LOGIN");
    CHECK_HAS(m, "CRAM-MD5");
    CHECK_HAS(m, "DIGEST-MD5");
    CHECK_HAS(m, "SCRAM-SHA-1");
    CHECK_HAS(m, "SCRAM-SHA-256");
    CHECK_HAS(m, "SCRAM-SHA-256-PLUS");
    CHECK_HAS(m, "EXTERNAL");
    /* hato's own. */
    CHECK_HAS(m, " OAUTHBEARER XOAUTH2");
    for (const char *p = m; p != NULL && *p != '\0'; p++)
        CHECK(!(*p >= 'a' && *p <= 'z'));
    /* What sasl_select needs from it: the best it can run. */
    char mech[SASL_MECH_MAX], why[256];
    CHECK(sasl_select("PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256", NULL, m,
                      SASL_NOPLAINTEXT, true, mech, why, sizeof why));
    CHECK_STR(mech, "SCRAM-SHA-256");

    /* Two libs side by side: nothing shared. */
    sasl_lib *other = sasl_lib_new(err, sizeof err);
    CHECK(other != NULL);
    if (other != NULL)
        CHECK_STR(sasl_lib_mechanisms(other), m);
    sasl_lib_free(other);
    sasl_lib_free(NULL);
}

static void test_plain(sasl_lib *lib)
{
    char *resp = (char *)"unset";
    char raw[64];
    sasl_exchange *x = sasl_exchange_new(lib, "plain", USER, PASSWORD, HOST,
                                         err, sizeof err);

    CHECK(x != NULL);
    if (x == NULL)
        return;
    CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_DONE);
    /* RFC 4616: authzid (empty), NUL, authcid, NUL, password. */
    CHECK_INT(decode(resp, raw, sizeof raw), 1 + 4 + 1 + 14);
    CHECK(memcmp(raw, "\0" USER "\0" PASSWORD, 20) == 0);
    secret_free(resp);

    /* A challenge after the end is an error, said without the password. */
    CHECK_INT(sasl_exchange_step(x, "", &resp, err, sizeof err), SASL_FAIL);
    CHECK(resp == NULL);
    CHECK_STR(err, "the server sent a challenge after the exchange was over");
    CHECK(clean(err));
    /* And the exchange stays failed. */
    CHECK_INT(sasl_exchange_step(x, "", &resp, err, sizeof err), SASL_FAIL);
    sasl_exchange_free(x);
    sasl_exchange_free(NULL);
}

static void test_login(sasl_lib *lib)
{
    char *resp = NULL;
    char raw[64];
    char *user_prompt = encode("Username:");
    char *pass_prompt = encode("Password:");
    sasl_exchange *x = sasl_exchange_new(lib, "LOGIN", USER, PASSWORD, HOST,
                                         err, sizeof err);

    CHECK(x != NULL);
    if (x == NULL || user_prompt == NULL || pass_prompt == NULL)
        goto done;
    CHECK_STR(user_prompt, "VXNlcm5hbWU6");
    /* The server speaks first: nothing to send with AUTH. */
    CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_MORE);
    CHECK(resp == NULL);
    CHECK_INT(sasl_exchange_step(x, user_prompt, &resp, err, sizeof err),
              SASL_MORE);
    CHECK_INT(decode(resp, raw, sizeof raw), 4);
    CHECK_STR(raw, USER);
    secret_free(resp);
    CHECK_INT(sasl_exchange_step(x, pass_prompt, &resp, err, sizeof err),
              SASL_DONE);
    CHECK_INT(decode(resp, raw, sizeof raw), 14);
    CHECK_STR(raw, PASSWORD);
    secret_free(resp);
done:
    gsasl_free(user_prompt);
    gsasl_free(pass_prompt);
    sasl_exchange_free(x);
}

/* RFC 2195 section 2's example. */
static void test_cram_md5_rfc2195(sasl_lib *lib)
{
    char *resp = NULL;
    char raw[128];
    char *challenge = encode("<1896.697170952@postoffice.reston.mci.net>");
    sasl_exchange *x = sasl_exchange_new(lib, "CRAM-MD5", "tim",
                                         "tanstaaftanstaaf", HOST, err,
                                         sizeof err);

    CHECK(x != NULL);
    if (x == NULL || challenge == NULL)
        goto done;
    CHECK_STR(challenge, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
    CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_MORE);
    CHECK(resp == NULL);
    CHECK_INT(sasl_exchange_step(x, challenge, &resp, err, sizeof err),
              SASL_DONE);
    CHECK(decode(resp, raw, sizeof raw) > 0);
    CHECK_STR(raw, "tim b913a602c7eda7a495b4e6e7334d3890");
    CHECK_STR(resp, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
    secret_free(resp);
done:
    gsasl_free(challenge);
    sasl_exchange_free(x);
}

/* ------------------------------------------------------------------ */
/* A libgsasl server, for whole exchanges                              */

typedef struct server_creds {
    const char *user;
    const char *password; /* what the server knows */
} server_creds;

static int server_callback(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop)
{
    const server_creds *c = gsasl_callback_hook_get(ctx);

    switch (prop) {
    case GSASL_PASSWORD: {
        /* CRAM-MD5, DIGEST-MD5, SCRAM: the server needs the secret. */
        const char *id = gsasl_property_fast(s, GSASL_AUTHID);
        if (id == NULL || strcmp(id, c->user) != 0)
            return GSASL_NO_PASSWORD;
        return gsasl_property_set(s, GSASL_PASSWORD, c->password);
    }
    case GSASL_VALIDATE_SIMPLE: {
        /* PLAIN, LOGIN: the server checks what it was sent. */
        const char *id = gsasl_property_fast(s, GSASL_AUTHID);
        const char *pw = gsasl_property_fast(s, GSASL_PASSWORD);
        const char *authz = gsasl_property_fast(s, GSASL_AUTHZID);
        /* libgsasl's PLAIN server fills in the authorization identity
         * with the user when the client sent an empty one. */
        if (authz != NULL && authz[0] != '\0' && strcmp(authz, c->user) != 0)
            return GSASL_AUTHENTICATION_ERROR;
        if (id != NULL && pw != NULL && strcmp(id, c->user) == 0 &&
            strcmp(pw, c->password) == 0)
            return GSASL_OK;
        return GSASL_AUTHENTICATION_ERROR;
    }
    case GSASL_VALIDATE_EXTERNAL:
        /* The TLS layer vouched for the client; an empty authzid means
         * "whoever the certificate says". */
        return GSASL_OK;
    default:
        return GSASL_NO_CALLBACK;
    }
}

typedef enum tamper {
    TAMPER_NONE,
    TAMPER_SERVER_FINAL, /* change the server's SCRAM signature, or
                            DIGEST-MD5's rspauth */
    TAMPER_NONCE,        /* a server nonce that does not extend ours */
} tamper;

typedef struct outcome {
    int server_rc;      /* the server's last gsasl_step64 result */
    sasl_status client; /* the client's last result */
    int rounds;
    char first[256];    /* the client's first message, decoded */
    char server_authid[64];
} outcome;

/* Channel binding the server sees (type NULL: none). */
typedef struct server_cb {
    const char *type;
    const char *b64;
} server_cb;

/* Runs mech between hato's client and a libgsasl server that knows
 * server_password, as SMTP AUTH would carry it: client-first mechanisms
 * start with the client's initial response, the others with an empty 334.
 * client_cb and scb: the binding on each side (NULL: none). */
static outcome run_cb(sasl_lib *lib, const char *mech,
                      const char *client_password, const char *server_password,
                      tamper how, const sasl_params *client_cb,
                      const server_cb *scb)
{
    outcome out = { .server_rc = GSASL_NEEDS_MORE, .client = SASL_FAIL };
    server_creds creds = { USER, server_password };
    Gsasl *sctx = NULL;
    Gsasl_session *server = NULL;
    sasl_exchange *x = NULL;
    char *to_server = NULL, *to_client = NULL;
    char upper[SASL_MECH_MAX];
    size_t n = 0;

    /* libgsasl's names are case-sensitive; hato's are not. */
    for (; mech[n] != '\0' && n < sizeof upper - 1; n++)
        upper[n] = mech[n] >= 'a' && mech[n] <= 'z' ? (char)(mech[n] - 32) : mech[n];
    upper[n] = '\0';

    if (gsasl_init(&sctx) != GSASL_OK)
        return out;
    gsasl_callback_set(sctx, server_callback);
    gsasl_callback_hook_set(sctx, &creds);
    if (gsasl_server_start(sctx, upper, &server) != GSASL_OK)
        goto done;
    gsasl_property_set(server, GSASL_SERVICE, "smtp");
    gsasl_property_set(server, GSASL_HOSTNAME, HOST);
    if (scb != NULL && scb->type != NULL)
        gsasl_property_set(server,
                           strcmp(scb->type, "tls-unique") == 0
                               ? GSASL_CB_TLS_UNIQUE
                               : GSASL_CB_TLS_EXPORTER,
                           scb->b64);

    sasl_params params = { .user = USER, .password = client_password,
                           .host = HOST };
    if (client_cb != NULL) {
        params.cb_type = client_cb->cb_type;
        params.cb_data = client_cb->cb_data;
        params.cb_len = client_cb->cb_len;
    }
    x = sasl_exchange_start(lib, mech, &params, err, sizeof err);
    CHECK(x != NULL);
    if (x == NULL)
        goto done;

    /* AUTH <mech> [initial response] */
    out.client = sasl_exchange_step(x, NULL, &to_server, err, sizeof err);
    CHECK(out.client != SASL_FAIL);
    CHECK(sasl_client_first(mech) == (to_server != NULL));
    if (to_server != NULL)
        decode(to_server, out.first, sizeof out.first);

    for (out.rounds = 0; out.rounds < 10; out.rounds++) {
        /* The server reads what the client sent (nothing, the first time,
         * for a server-first mechanism) and answers. */
        out.server_rc = gsasl_step64(server, to_server != NULL ? to_server : "",
                                     &to_client);
        secret_free(to_server);
        to_server = NULL;
        if (out.server_rc != GSASL_OK && out.server_rc != GSASL_NEEDS_MORE)
            break; /* 535 */
        if (out.server_rc == GSASL_OK && (to_client == NULL || to_client[0] == '\0'))
            break; /* 235 with nothing more to say */

        if (how != TAMPER_NONE && strncmp(upper, "DIGEST-MD5", 10) == 0) {
            char raw[512];
            if (decode(to_client, raw, sizeof raw) > 10 &&
                strncmp(raw, "rspauth=", 8) == 0 && how == TAMPER_SERVER_FINAL) {
                raw[8] = raw[8] == 'a' ? 'b' : 'a';
                gsasl_free(to_client);
                to_client = encode(raw);
            }
        }
        if (how != TAMPER_NONE && strncmp(upper, "SCRAM-", 6) == 0) {
            char raw[512];
            if (decode(to_client, raw, sizeof raw) > 2) {
                bool final = strncmp(raw, "v=", 2) == 0;
                bool first = strncmp(raw, "r=", 2) == 0;
                if ((how == TAMPER_SERVER_FINAL && final) ||
                    (how == TAMPER_NONCE && first)) {
                    raw[2] = raw[2] == 'A' ? 'B' : 'A';
                    gsasl_free(to_client);
                    to_client = encode(raw);
                }
            }
        }

        /* 334 <to_client> */
        out.client = sasl_exchange_step(x, to_client, &to_server, err,
                                        sizeof err);
        gsasl_free(to_client);
        to_client = NULL;
        if (out.client == SASL_FAIL) {
            CHECK(to_server == NULL);
            break; /* the client would send "*" */
        }
        /* A 334 always gets an answer, if only an empty line. */
        CHECK(to_server != NULL);
        if (out.server_rc == GSASL_OK) {
            /* The server already decided; the client's answer to its
             * final message must be empty, and the client is done. */
            CHECK_STR(to_server, "");
            CHECK_INT(out.client, SASL_DONE);
            break;
        }
    }
    if (out.server_rc == GSASL_OK) {
        const char *id = gsasl_property_fast(server, GSASL_AUTHID);
        snprintf(out.server_authid, sizeof out.server_authid, "%s",
                 id != NULL ? id : "");
    }
done:
    secret_free(to_server);
    gsasl_free(to_client);
    sasl_exchange_free(x);
    gsasl_finish(server);
    gsasl_done(sctx);
    return out;
}

static outcome run(sasl_lib *lib, const char *mech, const char *client_password,
                   const char *server_password, tamper how)
{
    return run_cb(lib, mech, client_password, server_password, how, NULL, NULL);
}

static void test_against_server(sasl_lib *lib)
{
    static const char *const mechs[] = { "PLAIN", "LOGIN", "CRAM-MD5",
                                         "DIGEST-MD5", "SCRAM-SHA-1",
                                         "SCRAM-SHA-256" };

    for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++) {
        outcome o = run(lib, mechs[i], PASSWORD, PASSWORD, TAMPER_NONE);
        CHECK_INT(o.server_rc, GSASL_OK);
        CHECK_INT(o.client, SASL_DONE);
        CHECK_STR(o.server_authid, USER);
        if (o.server_rc != GSASL_OK || o.client != SASL_DONE)
            fprintf(stderr, "  (%s: %s)\n", mechs[i], err);

        /* The wrong password: the server refuses, whichever side checks. */
        o = run(lib, mechs[i], "not-the-password", PASSWORD, TAMPER_NONE);
        CHECK(o.server_rc != GSASL_OK);
    }

    /* SCRAM both ways: the client proves itself, the server proves itself
     * with its final message, which the client checks and answers empty. */
    outcome o = run(lib, "SCRAM-SHA-256", PASSWORD, PASSWORD, TAMPER_NONE);
    CHECK_INT(o.rounds, 1);
    /* GS2 header "n,,": no channel binding, no authorization identity. */
    CHECK(strncmp(o.first, "n,,n=" USER ",r=", 9) == 0);
    o = run(lib, "scram-sha-1", PASSWORD, PASSWORD, TAMPER_NONE);
    CHECK(strncmp(o.first, "n,,n=" USER ",r=", 9) == 0);

    /* A server whose signature is wrong (it does not know the password, or
     * is not the server): the client refuses, without the password. */
    o = run(lib, "SCRAM-SHA-256", PASSWORD, PASSWORD, TAMPER_SERVER_FINAL);
    CHECK_INT(o.server_rc, GSASL_OK);
    CHECK_INT(o.client, SASL_FAIL);
    CHECK_STR(err, "the server's SCRAM signature is wrong: it does not know "
                   "this password, or someone is in between");
    CHECK(clean(err));
    o = run(lib, "SCRAM-SHA-1", PASSWORD, PASSWORD, TAMPER_SERVER_FINAL);
    CHECK_INT(o.client, SASL_FAIL);
    CHECK(clean(err));
    /* A server nonce that is not ours extended. */
    o = run(lib, "SCRAM-SHA-1", PASSWORD, PASSWORD, TAMPER_NONCE);
    CHECK_INT(o.client, SASL_FAIL);
    CHECK_STR(err, "the server's SCRAM nonce does not extend the client's");
    CHECK(clean(err));

    /* The server knows another password: SCRAM fails at the server. */
    o = run(lib, "SCRAM-SHA-256", PASSWORD, "other-password", TAMPER_NONE);
    CHECK(o.server_rc != GSASL_OK);
    CHECK(o.client != SASL_DONE);
}

static void test_errors(sasl_lib *lib)
{
    char *resp = NULL;
    sasl_exchange *x;

    /* Not in libgsasl, nor in hato. */
    x = sasl_exchange_new(lib, "NOPE", USER, PASSWORD, HOST, err, sizeof err);
    CHECK(x == NULL);
    CHECK_STR(err, "NOPE is not supported by libgsasl");
    CHECK(clean(err));
    x = sasl_exchange_new(lib, "", USER, PASSWORD, HOST, err, sizeof err);
    CHECK(x == NULL);
    x = sasl_exchange_new(lib, "SCRAM-SHA-256-PLUS-EXTRA", USER, PASSWORD,
                          HOST, err, sizeof err);
    CHECK(x == NULL);
    CHECK_HAS(err, "not a SASL mechanism name");

    /* A challenge that is not base64. */
    x = sasl_exchange_new(lib, "CRAM-MD5", USER, PASSWORD, HOST, err, sizeof err);
    CHECK(x != NULL);
    if (x != NULL) {
        CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_MORE);
        CHECK_INT(sasl_exchange_step(x, "@@not base64@@", &resp, err, sizeof err),
                  SASL_FAIL);
        CHECK(resp == NULL);
        CHECK_STR(err, "the server's challenge is not valid base64");
        CHECK(clean(err));
    }
    sasl_exchange_free(x);

    /* A SCRAM server-first message that is not one (the fuzzer's find: it
     * was reported as "sASL mechanism could not parse input", libgsasl's
     * words with the acronym lowered). */
    x = sasl_exchange_new(lib, "SCRAM-SHA-1", USER, PASSWORD, HOST, err, sizeof err);
    CHECK(x != NULL);
    if (x != NULL) {
        CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_MORE);
        gsasl_free(resp);
        resp = NULL;
        char *challenge = encode("garbage");
        CHECK_INT(sasl_exchange_step(x, challenge, &resp, err, sizeof err), SASL_FAIL);
        CHECK(resp == NULL);
        CHECK_STR(err, "the server's challenge is not what this mechanism expects at this step");
        gsasl_free(challenge);
    }
    sasl_exchange_free(x);

    /* A server asking for more SCRAM iterations than hato computes: refused
     * at once, before libgsasl spends them (the session fuzzer's find: 4e10
     * iterations held the client for hours). */
    static const struct {
        const char *server_first, *says;
    } too_many[] = {
        {"r=abc,s=QSXCR+Q6sek8bf92,i=40960000000", "asks for 40960000000 SCRAM iterations"},
        {"r=abc,s=QSXCR+Q6sek8bf92,i=1000001", "asks for 1000001 SCRAM iterations"},
        {"r=abc,s=QSXCR+Q6sek8bf92,i=999999999999999999999999999999",
         "iterations; hato computes at most 1000000"},
        {"i=2000000,r=abc,s=QSXCR+Q6sek8bf92", "asks for 2000000 SCRAM"},
    };
    for (size_t i = 0; i < sizeof too_many / sizeof too_many[0]; i++) {
        x = sasl_exchange_new(lib, "SCRAM-SHA-256", USER, PASSWORD, HOST, err, sizeof err);
        CHECK(x != NULL);
        if (x == NULL)
            continue;
        CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_MORE);
        gsasl_free(resp);
        resp = NULL;
        char *challenge = encode(too_many[i].server_first);
        CHECK_INT(sasl_exchange_step(x, challenge, &resp, err, sizeof err), SASL_FAIL);
        CHECK(resp == NULL);
        CHECK_HAS(err, too_many[i].says);
        CHECK_HAS(err, "smtp_sasl_mechanism_filter");
        CHECK(clean(err));
        gsasl_free(challenge);
        sasl_exchange_free(x);
    }

    /* No password at all: libgsasl says so, and so does hato. */
    x = sasl_exchange_new(lib, "PLAIN", USER, NULL, HOST, err, sizeof err);
    CHECK(x != NULL);
    if (x != NULL) {
        CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_FAIL);
        CHECK_STR(err, "no user name or password for this server");
    }
    sasl_exchange_free(x);

    /* libgsasl's own words, when hato has none better. */
    x = sasl_exchange_new(lib, "DIGEST-MD5", USER, PASSWORD, NULL, err,
                          sizeof err);
    CHECK(x != NULL);
    if (x != NULL) {
        char *challenge = encode("nonce=\"abc\",qop=\"auth\",charset=utf-8,"
                                 "algorithm=md5-sess");
        CHECK_INT(sasl_exchange_step(x, challenge, &resp, err, sizeof err),
                  SASL_FAIL);
        CHECK_STR(err, "authentication failed because the host name was not "
                       "provided (libgsasl)");
        gsasl_free(challenge);
    }
    sasl_exchange_free(x);

    /* A tiny error buffer is cut, not overrun. */
    char tiny[8];
    memset(tiny, '#', sizeof tiny);
    x = sasl_exchange_new(lib, "NOPE", USER, PASSWORD, HOST, tiny, 4);
    CHECK(x == NULL);
    CHECK_INT(strlen(tiny), 3);
    CHECK(tiny[4] == '#');
    x = sasl_exchange_new(lib, "NOPE", USER, PASSWORD, HOST, NULL, 0);
    CHECK(x == NULL);
}

/* ------------------------------------------------------------------ */
/* DIGEST-MD5, EXTERNAL, SCRAM-*-PLUS                                   */

static void test_digest_md5(sasl_lib *lib)
{
    char *resp = NULL;
    char raw[1024];
    /* The server's challenge, RFC 2831 section 2.1.1, with a realm. */
    char *challenge = encode("realm=\"example.test\",nonce=\"OA6MG9tEQGm2hh\","
                             "qop=\"auth,auth-int\",charset=utf-8,"
                             "algorithm=md5-sess");
    sasl_exchange *x = sasl_exchange_new(lib, "DIGEST-MD5", USER, PASSWORD,
                                         HOST, err, sizeof err);

    CHECK(x != NULL);
    if (x == NULL || challenge == NULL)
        goto done;
    CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_MORE);
    CHECK(resp == NULL);
    CHECK_INT(sasl_exchange_step(x, challenge, &resp, err, sizeof err),
              SASL_MORE);
    CHECK(decode(resp, raw, sizeof raw) > 0);
    /* Authentication only: no integrity or confidentiality layer, even
     * when the server offers one; the service and host in digest-uri. */
    CHECK_HAS(raw, "qop=auth,");
    CHECK(strstr(raw, "auth-int") == NULL);
    CHECK_HAS(raw, "digest-uri=\"smtp/" HOST "\"");
    CHECK_HAS(raw, "username=\"" USER "\"");
    CHECK_HAS(raw, "realm=\"example.test\"");
    CHECK(clean(raw));
    secret_free(resp);
done:
    gsasl_free(challenge);
    sasl_exchange_free(x);

    /* A whole exchange ends with the server's rspauth checked... */
    outcome o = run(lib, "DIGEST-MD5", PASSWORD, PASSWORD, TAMPER_NONE);
    CHECK_INT(o.server_rc, GSASL_OK);
    CHECK_INT(o.client, SASL_DONE);
    /* ...and a wrong one refused: the server does not know the password. */
    o = run(lib, "DIGEST-MD5", PASSWORD, PASSWORD, TAMPER_SERVER_FINAL);
    CHECK_INT(o.client, SASL_FAIL);
    CHECK(clean(err));
}

static void test_external(sasl_lib *lib)
{
    char *resp = NULL;
    sasl_exchange *x = sasl_exchange_new(lib, "EXTERNAL", USER, NULL, HOST,
                                         err, sizeof err);

    CHECK(x != NULL);
    if (x != NULL) {
        /* An empty authorization identity: "AUTH EXTERNAL =". */
        CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err),
                  SASL_DONE);
        CHECK_STR(resp, "");
        secret_free(resp);
    }
    sasl_exchange_free(x);

    outcome o = run(lib, "EXTERNAL", NULL, PASSWORD, TAMPER_NONE);
    CHECK_INT(o.server_rc, GSASL_OK);
    CHECK_INT(o.client, SASL_DONE);
}

/* 32 bytes, as tls-exporter gives them (RFC 9266 section 2). */
static const unsigned char exporter[32] = {
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba,
    0xcb, 0xdc, 0xed, 0xfe, 0x0f, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
    0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
};

static char *encode_bytes(const unsigned char *b, size_t n)
{
    char *b64 = NULL;

    if (gsasl_base64_to((const char *)b, n, &b64, NULL) != GSASL_OK)
        return NULL;
    return b64;
}

static void test_plus(sasl_lib *lib)
{
    static const char *const mechs[] = { "SCRAM-SHA-256-PLUS",
                                         "SCRAM-SHA-1-PLUS" };
    unsigned char other[sizeof exporter];
    char *same_b64 = encode_bytes(exporter, sizeof exporter);
    char *unique_b64 = encode_bytes(exporter, 12);
    char *other_b64;
    sasl_params cb = { .cb_type = "tls-exporter", .cb_data = exporter,
                       .cb_len = sizeof exporter };

    memcpy(other, exporter, sizeof other);
    other[31] ^= 1;
    other_b64 = encode_bytes(other, sizeof other);
    if (same_b64 == NULL || other_b64 == NULL || unique_b64 == NULL)
        goto done;

    for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++) {
        /* Both ends hold the same channel: success, both ways proven. */
        server_cb scb = { "tls-exporter", same_b64 };
        outcome o = run_cb(lib, mechs[i], PASSWORD, PASSWORD, TAMPER_NONE,
                           &cb, &scb);
        CHECK_INT(o.server_rc, GSASL_OK);
        CHECK_INT(o.client, SASL_DONE);
        CHECK(strncmp(o.first, "p=tls-exporter,,n=" USER ",r=", 22) == 0);
        if (o.server_rc != GSASL_OK)
            fprintf(stderr, "  (%s: %s)\n", mechs[i], err);

        /* Different channels (a man in the middle with two TLS sessions):
         * the server refuses, password right or not. */
        scb.b64 = other_b64;
        o = run_cb(lib, mechs[i], PASSWORD, PASSWORD, TAMPER_NONE, &cb, &scb);
        CHECK(o.server_rc != GSASL_OK);
        CHECK(o.client != SASL_DONE);

        /* tls-unique (TLS 1.2), named as such. */
        sasl_params uniq = { .cb_type = "tls-unique", .cb_data = exporter,
                             .cb_len = 12 };
        server_cb suniq = { "tls-unique", unique_b64 };
        o = run_cb(lib, mechs[i], PASSWORD, PASSWORD, TAMPER_NONE, &uniq,
                   &suniq);
        CHECK_INT(o.server_rc, GSASL_OK);
        CHECK_INT(o.client, SASL_DONE);
        CHECK(strncmp(o.first, "p=tls-unique,,n=" USER ",r=", 20) == 0);
    }

    /* Without binding data, a -PLUS exchange does not start. */
    sasl_exchange *x = sasl_exchange_new(lib, "SCRAM-SHA-256-PLUS", USER,
                                         PASSWORD, HOST, err, sizeof err);
    CHECK(x == NULL);
    CHECK_STR(err, "SCRAM-SHA-256-PLUS needs TLS channel binding, which this "
                   "connection does not provide");
    sasl_params odd = cb;
    odd.cb_type = "tls-server-end-point";
    sasl_params p = { .user = USER, .password = PASSWORD, .host = HOST,
                      .cb_type = odd.cb_type, .cb_data = exporter,
                      .cb_len = sizeof exporter };
    x = sasl_exchange_start(lib, "SCRAM-SHA-256-PLUS", &p, err, sizeof err);
    CHECK(x == NULL);
    CHECK_HAS(err, "tls-server-end-point is not known");

    /* The plain variants ignore binding data: "n,," (libgsasl 2.2 fails
     * the "y" flag), and work against a server that has none. */
    outcome o = run_cb(lib, "SCRAM-SHA-256", PASSWORD, PASSWORD, TAMPER_NONE,
                       &cb, NULL);
    CHECK_INT(o.server_rc, GSASL_OK);
    CHECK_INT(o.client, SASL_DONE);
    CHECK(strncmp(o.first, "n,,n=" USER ",r=", 9) == 0);
done:
    gsasl_free(same_b64);
    gsasl_free(other_b64);
    gsasl_free(unique_b64);
}

/* ------------------------------------------------------------------ */
/* XOAUTH2 and OAUTHBEARER                                              */

/* Google's example token and the RFC 7628 one. */
#define GTOKEN "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg"
#define RTOKEN "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="

static sasl_exchange *oauth_new(sasl_lib *lib, const char *mech,
                                const char *user, const char *token,
                                const char *host, unsigned port)
{
    sasl_params p = { .user = user, .password = token, .host = host,
                      .port = port };
    return sasl_exchange_start(lib, mech, &p, err, sizeof err);
}

static void test_oauth_initial(sasl_lib *lib)
{
    char *resp = NULL;
    char raw[512];
    sasl_exchange *x;

    /* developers.google.com/gmail/imap/xoauth2-protocol, byte for byte. */
    x = oauth_new(lib, "xoauth2", "someuser@example.com", GTOKEN, HOST, 587);
    CHECK(x != NULL);
    if (x != NULL) {
        CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err),
                  SASL_DONE);
        CHECK_STR(resp, "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5"
                        "YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZ"
                        "Mjl0Q2cBAQ==");
        secret_free(resp);
        CHECK(sasl_exchange_server_error(x) == NULL);
    }
    sasl_exchange_free(x);

    /* RFC 7628 section 4.1, byte for byte. */
    x = oauth_new(lib, "OAUTHBEARER", "user@example.com", RTOKEN,
                  "server.example.com", 143);
    CHECK(x != NULL);
    if (x != NULL) {
        CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err),
                  SASL_DONE);
        CHECK_STR(resp, "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1w"
                        "bGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRj"
                        "Mk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB");
        secret_free(resp);
    }
    sasl_exchange_free(x);

    /* RFC 5801 section 4: ',' and '=' in the user are escaped; no user,
     * no a=; no port, no port=. */
    x = oauth_new(lib, "OAUTHBEARER", "a,b=c", "t0k", "h", 0);
    CHECK(x != NULL);
    if (x != NULL) {
        sasl_exchange_step(x, NULL, &resp, err, sizeof err);
        CHECK_INT(decode(resp, raw, sizeof raw), 39);
        CHECK(memcmp(raw, "n,a=a=2Cb=3Dc,\001host=h\001auth=Bearer t0k\001\001",
                     39) == 0);
        secret_free(resp);
    }
    sasl_exchange_free(x);
    x = oauth_new(lib, "OAUTHBEARER", NULL, "t0k", NULL, 25);
    CHECK(x != NULL);
    if (x != NULL) {
        sasl_exchange_step(x, NULL, &resp, err, sizeof err);
        CHECK_INT(decode(resp, raw, sizeof raw), 29);
        CHECK(memcmp(raw, "n,,\001port=25\001auth=Bearer t0k\001\001", 29) == 0);
        secret_free(resp);
    }
    sasl_exchange_free(x);

    /* Tokens that would break the message are refused, and not shown. */
    static const char *const bad[] = { "tok en", "tok\n", "tok\001x", "=abc",
                                       "a=b", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        x = oauth_new(lib, "XOAUTH2", USER, bad[i], HOST, 587);
        CHECK(x == NULL);
        if (bad[i][0] != '\0')
            CHECK(strstr(err, bad[i]) == NULL);
        sasl_exchange_free(x);
    }
    x = oauth_new(lib, "XOAUTH2", USER, "tok en", HOST, 587);
    CHECK(x == NULL);
    CHECK_HAS(err, "the OAuth access token holds a character a bearer token "
                   "may not");
    x = oauth_new(lib, "XOAUTH2", USER, NULL, HOST, 587);
    CHECK(x == NULL);
    CHECK_HAS(err, "no OAuth access token");
    x = oauth_new(lib, "XOAUTH2", NULL, "t0k", HOST, 587);
    CHECK(x == NULL);
    CHECK_STR(err, "XOAUTH2 needs a user name");
    x = oauth_new(lib, "XOAUTH2", "us\001er", "t0k", HOST, 587);
    CHECK(x == NULL);
    CHECK_HAS(err, "control character");
}

static void test_oauth_failure(sasl_lib *lib)
{
    char *resp = NULL;
    char *json = encode("{\"status\":\"invalid_token\",\"scope\":\"example_scope\","
                        "\"openid-configuration\":\"https://example.com/"
                        ".well-known/openid-configuration\"}");
    char *google = encode("{\"status\":\"401\",\"schemes\":\"bearer\","
                          "\"scope\":\"https://mail.google.com/\"}");
    sasl_exchange *x;

    /* OAUTHBEARER: the error challenge is answered with 0x01 (RFC 7628
     * section 3.2.3), and its content kept for the 535's message. */
    x = oauth_new(lib, "OAUTHBEARER", USER, RTOKEN, HOST, 587);
    CHECK(x != NULL);
    if (x == NULL || json == NULL || google == NULL)
        goto done;
    CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_DONE);
    secret_free(resp);
    CHECK_INT(sasl_exchange_step(x, json, &resp, err, sizeof err), SASL_DONE);
    CHECK_STR(resp, "AQ==");
    secret_free(resp);
    CHECK_STR(sasl_exchange_server_error(x),
              "status invalid_token, scope example_scope, "
              "openid-configuration https://example.com/.well-known/"
              "openid-configuration");
    /* Nothing more may come. */
    CHECK_INT(sasl_exchange_step(x, json, &resp, err, sizeof err), SASL_FAIL);
    CHECK(resp == NULL);
    CHECK_STR(err, "the server sent a challenge after the exchange was over");
    sasl_exchange_free(x);

    /* XOAUTH2: Google's challenge, answered with an empty line. */
    x = oauth_new(lib, "XOAUTH2", USER, GTOKEN, HOST, 587);
    CHECK(x != NULL);
    if (x == NULL)
        goto done;
    CHECK_INT(sasl_exchange_step(x, NULL, &resp, err, sizeof err), SASL_DONE);
    secret_free(resp);
    CHECK_INT(sasl_exchange_step(x, google, &resp, err, sizeof err), SASL_DONE);
    CHECK_STR(resp, "");
    secret_free(resp);
    CHECK_STR(sasl_exchange_server_error(x),
              "status 401, scope https://mail.google.com/");
    sasl_exchange_free(x);

    /* Not base64 still gets its answer, and says so. */
    x = oauth_new(lib, "OAUTHBEARER", USER, RTOKEN, HOST, 587);
    if (x != NULL) {
        sasl_exchange_step(x, NULL, &resp, err, sizeof err);
        secret_free(resp);
        CHECK_INT(sasl_exchange_step(x, "%%%", &resp, err, sizeof err),
                  SASL_DONE);
        CHECK_STR(resp, "AQ==");
        secret_free(resp);
        CHECK_STR(sasl_exchange_server_error(x),
                  "the server's error challenge is not valid base64");
    }
    sasl_exchange_free(x);
done:
    gsasl_free(json);
    gsasl_free(google);
}

static bool printable_line(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static const char *summary(const char *json, const char *token)
{
    static char out[512];

    oauth_error_summary(json, strlen(json), token, out, sizeof out);
    CHECK(printable_line(out));
    return out;
}

static void test_oauth_json(void)
{
    /* Numbers and nested values; unknown keys skipped; any order. */
    CHECK_STR(summary(" { \"x\" : [1, {\"a\": null}], \"scope\": \"s1 s2\", "
                      "\"status\" : 401 } ", NULL),
              "status 401, scope s1 s2");
    /* Escapes: printable ASCII as itself, the rest as '?'. */
    CHECK_STR(summary("{\"status\":\"a\\u0041\\u0007\\n\\\"\\/\\\\\"}", NULL),
              "status aA??\"/\\");
    CHECK_STR(summary("{\"status\":\"\xc3\xa9t\xc3\xa9\"}", NULL),
              "status ??t??");
    /* Malformed in many ways. */
    static const char *const bad[] = {
        "", "{", "{\"status\":\"x\"", "{\"status\":\"x\",}", "[\"status\"]",
        "{\"status\" \"x\"}", "{\"status\":\"x\"} trailing", "{status:1}",
        "{\"status\":\"raw\tcontrol\"}", "{\"status\":\"\\q\"}",
        "{\"status\":\"\\u12\"}", "{\"a\":}", "null",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *got = summary(bad[i], NULL);
        CHECK(strstr(got, "not valid JSON") != NULL ||
              strstr(got, "is empty") != NULL);
    }
    /* Deep nesting is refused, not recursed into. */
    char deep[256];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "{\"x\":");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    CHECK_HAS(summary(deep, NULL), "not valid JSON");
    /* No status. */
    CHECK_STR(summary("{\"schemes\":\"bearer\"}", NULL),
              "the server's error challenge names no status");
    /* Huge: refused whole. */
    static char huge[OAUTH_CHALLENGE_MAX + 64];
    memset(huge, ' ', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    memcpy(huge, "{\"status\":\"x\"}", 14);
    CHECK_STR(summary(huge, NULL), "the server's error challenge is too long "
                                   "to read");
    /* A long value is cut with "...". */
    char longv[600];
    n = (size_t)snprintf(longv, sizeof longv, "{\"scope\":\"");
    for (int i = 0; i < 400; i++)
        longv[n++] = (char)('a' + i % 26);
    memcpy(longv + n, "\"}", 3);
    const char *got = summary(longv, NULL);
    CHECK_INT(strlen(got), strlen("scope ") + OAUTH_VALUE_MAX + 3);
    CHECK(strcmp(got + strlen(got) - 3, "...") == 0);
    /* A server echoing the token, whole or in part: not repeated. */
    CHECK_STR(summary("{\"status\":\"invalid_token\",\"scope\":\"" GTOKEN "\"}",
                      GTOKEN),
              "status invalid_token, scope [redacted]");
    CHECK_STR(summary("{\"status\":\"bad ya29.vF9dft4qmTc2 here\"}", GTOKEN),
              "status [redacted]");
    /* A small buffer: cut, marked, never overrun. */
    char small[24];
    memset(small, '#', sizeof small);
    oauth_error_summary("{\"status\":\"invalid_token\",\"scope\":\"x\"}", 39,
                        NULL, small, 16);
    CHECK_INT(strlen(small), 15);
    CHECK(strcmp(small + 12, "...") == 0);
    CHECK(small[16] == '#');
    oauth_error_summary("{}", 2, NULL, NULL, 0);
}

static void test_base64(void)
{
    unsigned char out[16];
    size_t n = 99;
    char *e;

    e = oauth_b64_encode((const unsigned char *)"", 0);
    CHECK_STR(e, "");
    secret_free(e);
    e = oauth_b64_encode((const unsigned char *)"\001", 1);
    CHECK_STR(e, "AQ==");
    secret_free(e);
    e = oauth_b64_encode((const unsigned char *)"ab\xff", 3);
    CHECK_STR(e, "YWL/");
    secret_free(e);
    CHECK(oauth_b64_decode("YWL/", 4, out, sizeof out, &n));
    CHECK_INT(n, 3);
    CHECK(memcmp(out, "ab\xff", 3) == 0);
    CHECK(oauth_b64_decode("AQ==", 4, out, sizeof out, &n));
    CHECK_INT(n, 1);
    CHECK(oauth_b64_decode("", 0, out, sizeof out, &n));
    CHECK_INT(n, 0);
    CHECK(!oauth_b64_decode("AQ=", 3, out, sizeof out, &n));
    CHECK(!oauth_b64_decode("A===", 4, out, sizeof out, &n));
    CHECK(!oauth_b64_decode("AQ=A", 4, out, sizeof out, &n));
    CHECK(!oauth_b64_decode("AQ==AQ==", 8, out, sizeof out, &n));
    CHECK(!oauth_b64_decode("A Q=", 4, out, sizeof out, &n));
    CHECK(!oauth_b64_decode("YWJjZGVm", 8, out, 5, &n));
}

int main(void)
{
    sasl_lib *lib = sasl_lib_new(err, sizeof err);

    CHECK(lib != NULL);
    if (lib == NULL) {
        fprintf(stderr, "sasl_lib_new: %s\n", err);
        return check_finish("sasl");
    }
    test_lib(lib);
    test_plain(lib);
    test_login(lib);
    test_cram_md5_rfc2195(lib);
    test_against_server(lib);
    test_errors(lib);
    test_digest_md5(lib);
    test_external(lib);
    test_plus(lib);
    test_oauth_initial(lib);
    test_oauth_failure(lib);
    test_oauth_json();
    test_base64();
    sasl_lib_free(lib);
    return check_finish("sasl");
}
