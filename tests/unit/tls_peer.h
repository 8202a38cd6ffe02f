/*
 * tls_peer.h - the TLS tests' in-memory mbedTLS server ("the peer"): its
 * wire is two buffers (in: the client's bytes, out: its own), so a test
 * shuttles bytes between it and the client under test without a socket.
 * Test code may include mbedTLS (this header brings its headers); the
 * library keeps it to src/tls/tls_mbedtls.c.
 *
 * Also the setup every such test shares: the temporary directory with the
 * certificates of tests/setup/make-ca.sh (HATO_SOURCE_ROOT names the source
 * tree), PSA under mbedTLS 3, and one session-ticket key for every peer, so
 * that a session from one connection resumes on the next, as with one real
 * server.  Header-only: each test includes it once.
 */
#ifndef HATO_TEST_TLS_PEER_H
#define HATO_TEST_TLS_PEER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#endif

#include "check.h"
#include "util/buf.h"

/* The temporary directory: certificates, keys, state directories. */
static char dir[64];

/* dir/name; the same name gives the same pointer, valid to the end. */
static const char *in_dir(const char *name)
{
    static char names[24][32], paths[24][128];
    static int used;
    for (int i = 0; i < used; i++)
        if (strcmp(names[i], name) == 0)
            return paths[i];
    if (used == 24)
        abort(); /* a test with too many files: raise the table size */
    snprintf(names[used], sizeof names[0], "%s", name);
    snprintf(paths[used], sizeof paths[0], "%s/%s", dir, name);
    return paths[used++];
}

/* ---- the peer ------------------------------------------------------- */

typedef struct tls_peer_opts {
    const char *crt;       /* file in dir; default server.crt */
    bool tls12_only;       /* cap the peer at TLS 1.2 (mbedTLS 3 only) */
    bool no_common_suite;  /* offer only a suite the client lacks */
    bool want_client_cert; /* request and require a client certificate */
    bool tickets;          /* issue session tickets, with the shared key */
} tls_peer_opts;

typedef struct tls_peer {
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt crt, ca;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    buf in, out; /* the wire: bytes from the client, bytes to the client */
    bool done;   /* handshake complete */
    int failed;  /* mbedTLS error of the handshake (or, as a test records
                    it, of a later read or write), 0 if none */
    bool got_sni;
    char sni[256];
} tls_peer;

static mbedtls_ssl_ticket_context tls_peer_ticket;
static mbedtls_entropy_context tls_peer_ticket_entropy;
static mbedtls_ctr_drbg_context tls_peer_ticket_drbg;

static int tls_peer_send(void *ctx, const unsigned char *p, size_t n)
{
    tls_peer *s = ctx;
    return buf_append(&s->out, p, n) ? (int)n : MBEDTLS_ERR_SSL_ALLOC_FAILED;
}

static int tls_peer_recv(void *ctx, unsigned char *p, size_t n)
{
    tls_peer *s = ctx;
    size_t have = buf_size(&s->in);
    if (have == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > have)
        n = have;
    memcpy(p, buf_head(&s->in), n);
    buf_consume(&s->in, n);
    return (int)n;
}

/* Notes the name the client asked for (SNI); the one certificate serves. */
static int tls_peer_sni(void *ctx, mbedtls_ssl_context *ssl, const unsigned char *name,
                        size_t len)
{
    (void)ssl;
    tls_peer *s = ctx;
    s->got_sni = true;
    if (len >= sizeof s->sni)
        len = sizeof s->sni - 1;
    memcpy(s->sni, name, len);
    s->sni[len] = '\0';
    return 0;
}

/* A server with server.key and o.crt from dir, ready for the handshake;
 * false with a message on stderr. */
static bool tls_peer_init(tls_peer *s, tls_peer_opts o)
{
    memset(s, 0, sizeof *s);
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_ssl_init(&s->ssl);
    mbedtls_x509_crt_init(&s->crt);
    mbedtls_x509_crt_init(&s->ca);
    mbedtls_pk_init(&s->key);
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    buf_init(&s->in, 0);
    buf_init(&s->out, 0);
    int rc = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy, NULL, 0);
    if (rc == 0)
        rc = mbedtls_x509_crt_parse_file(&s->crt, in_dir(o.crt ? o.crt : "server.crt"));
    if (rc == 0)
        rc = mbedtls_x509_crt_parse_file(&s->ca, in_dir("ca.crt"));
#if MBEDTLS_VERSION_MAJOR >= 3
    if (rc == 0)
        rc = mbedtls_pk_parse_keyfile(&s->key, in_dir("server.key"), NULL,
                                      mbedtls_ctr_drbg_random, &s->drbg);
#else
    if (rc == 0)
        rc = mbedtls_pk_parse_keyfile(&s->key, in_dir("server.key"), NULL);
#endif
    if (rc == 0)
        rc = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
                                         MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc == 0) {
        mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
        rc = mbedtls_ssl_conf_own_cert(&s->conf, &s->crt, &s->key);
    }
    if (rc == 0) {
        mbedtls_ssl_conf_sni(&s->conf, tls_peer_sni, s);
        /* A NULL-cipher suite: never compiled into the client, so the
         * server answers the hello with a handshake_failure alert. */
        static const int null_suite[] = {MBEDTLS_TLS_RSA_WITH_NULL_SHA256, 0};
        if (o.no_common_suite)
            mbedtls_ssl_conf_ciphersuites(&s->conf, null_suite);
#if MBEDTLS_VERSION_MAJOR >= 3
        if (o.tls12_only)
            mbedtls_ssl_conf_max_tls_version(&s->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
        if (o.want_client_cert) {
            mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
            mbedtls_ssl_conf_ca_chain(&s->conf, &s->ca, NULL);
        }
    }
    if (rc == 0 && o.tickets)
        /* With TLS 1.3 they arrive after the handshake, before the first
         * data, as Postfix sends them.  One key for all peers. */
        mbedtls_ssl_conf_session_tickets_cb(&s->conf, mbedtls_ssl_ticket_write,
                                            mbedtls_ssl_ticket_parse, &tls_peer_ticket);
    if (rc == 0)
        rc = mbedtls_ssl_setup(&s->ssl, &s->conf);
    if (rc == 0)
        mbedtls_ssl_set_bio(&s->ssl, s, tls_peer_send, tls_peer_recv, NULL);
    if (rc != 0)
        fprintf(stderr, "test server setup failed: -0x%04x\n", (unsigned)-rc);
    return rc == 0;
}

static void tls_peer_free(tls_peer *s)
{
    mbedtls_ssl_free(&s->ssl);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_x509_crt_free(&s->crt);
    mbedtls_x509_crt_free(&s->ca);
    mbedtls_pk_free(&s->key);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
    buf_free(&s->in);
    buf_free(&s->out);
}

/* The handshake as far as the bytes on the wire take it: done or failed
 * are set when it ends.  Nothing once it has ended. */
static void tls_peer_step(tls_peer *s)
{
    if (s->done || s->failed)
        return;
    int rc = mbedtls_ssl_handshake(&s->ssl);
    if (rc == 0)
        s->done = true;
    else if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
        s->failed = rc;
}

/* Writes all n bytes as application data; false on an error, whose
 * mbedTLS code goes to *err unless err is NULL. */
static bool tls_peer_write_all(tls_peer *s, const unsigned char *p, size_t n, int *err)
{
    size_t done = 0;
    while (done < n) {
        int rc = mbedtls_ssl_write(&s->ssl, p + done, n - done);
        if (rc <= 0) {
            if (err != NULL)
                *err = rc;
            return false;
        }
        done += (size_t)rc;
    }
    return true;
}

/* ---- the pump: the wire between client and peer -------------------- */

/* Bytes the client wrote, onto the peer's wire (one check). */
static void tls_peer_put(tls_peer *s, const unsigned char *p, size_t n)
{
    CHECK(buf_append(&s->in, p, n));
}

/* The next piece of what the peer sent, at most max bytes (0 if it sent
 * nothing), at *p; tls_peer_taken drops the piece once the client has it. */
static size_t tls_peer_pending(tls_peer *s, size_t max, const unsigned char **p)
{
    size_t n = buf_size(&s->out);
    *p = buf_head(&s->out);
    return n < max ? n : max;
}

static void tls_peer_taken(tls_peer *s, size_t n)
{
    buf_consume(&s->out, n);
}

/* ---- setup ---------------------------------------------------------- */

/* Before any peer: PSA (the peer's TLS 1.3 needs it), the shared ticket
 * key, and dir made as /tmp/hato-<name>-XXXXXX; false with a message. */
static bool tls_peer_setup(const char *name)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    if (psa_crypto_init() != PSA_SUCCESS) {
        fprintf(stderr, "psa_crypto_init failed\n");
        return false;
    }
#endif
    mbedtls_ssl_ticket_init(&tls_peer_ticket);
    mbedtls_entropy_init(&tls_peer_ticket_entropy);
    mbedtls_ctr_drbg_init(&tls_peer_ticket_drbg);
    if (mbedtls_ctr_drbg_seed(&tls_peer_ticket_drbg, mbedtls_entropy_func,
                              &tls_peer_ticket_entropy, NULL, 0) != 0 ||
        mbedtls_ssl_ticket_setup(&tls_peer_ticket, mbedtls_ctr_drbg_random,
                                 &tls_peer_ticket_drbg, MBEDTLS_CIPHER_AES_256_GCM, 3600) != 0) {
        fprintf(stderr, "ticket setup failed\n");
        return false;
    }
    snprintf(dir, sizeof dir, "/tmp/hato-%s-XXXXXX", name);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return false;
    }
    return true;
}

/* The certificates of tests/setup/make-ca.sh in dir: ca.crt, server.crt
 * and server.key for localhost, 127.0.0.1 and ::1, other-ca.crt. */
static bool tls_peer_make_certs(void)
{
    const char *root = getenv("HATO_SOURCE_ROOT");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/setup/make-ca.sh' '%s'", root ? root : ".", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed (is HATO_SOURCE_ROOT set?)\n", cmd);
        return false;
    }
    return true;
}

/* At the end: dir removed, the ticket key freed. */
static void tls_peer_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    mbedtls_ssl_ticket_free(&tls_peer_ticket);
    mbedtls_ctr_drbg_free(&tls_peer_ticket_drbg);
    mbedtls_entropy_free(&tls_peer_ticket_entropy);
}

#endif
