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
    default:
        return GSASL_NO_CALLBACK;
    }
}

typedef enum tamper {
    TAMPER_NONE,
    TAMPER_SERVER_FINAL, /* change the server's SCRAM signature */
    TAMPER_NONCE,        /* a server nonce that does not extend ours */
} tamper;

typedef struct outcome {
    int server_rc;      /* the server's last gsasl_step64 result */
    sasl_status client; /* the client's last result */
    int rounds;
    char first[256];    /* the client's first message, decoded */
    char server_authid[64];
} outcome;

/* Runs mech between hato's client and a libgsasl server that knows
 * server_password, as SMTP AUTH would carry it: client-first mechanisms
 * start with the client's initial response, the others with an empty 334. */
static outcome run(sasl_lib *lib, const char *mech, const char *client_password,
                   const char *server_password, tamper how)
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

    x = sasl_exchange_new(lib, mech, USER, client_password, HOST, err,
                          sizeof err);
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

    /* Not in libgsasl. */
    x = sasl_exchange_new(lib, "XOAUTH2", USER, PASSWORD, HOST, err, sizeof err);
    CHECK(x == NULL);
    CHECK_STR(err, "XOAUTH2 is not supported by libgsasl");
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
    sasl_lib_free(lib);
    return check_finish("sasl");
}
