/*
 * test_tls.c - the TLS layer in real handshakes, in memory.
 *
 * The test plays the server with mbedTLS itself (test code may include it;
 * the library keeps it to tls_mbedtls.c) and shuttles bytes between the two
 * ends' buffers, the server's bytes fed to the client in random pieces.
 * Certificates come from tests/setup/make-ca.sh in a temporary directory;
 * expired and not-yet-valid ones are signed with `openssl ca`, whose
 * -startdate/-enddate Debian 12's OpenSSL 3.0 has (its req/x509 lack
 * -not_before/-not_after).
 */
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
#include "tls/tls.h"
#include "util/buf.h"

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

/* With TEST_VERBOSE set, shows the messages a person would read. */
static void show(const char *what, const char *msg)
{
    if (getenv("TEST_VERBOSE") != NULL)
        fprintf(stderr, "[%s] %s\n", what, msg);
}

/* ---- the server ----------------------------------------------------- */

typedef struct server_opts {
    const char *crt;     /* file in dir; default server.crt */
    bool tls12_only;     /* cap the server at TLS 1.2 */
    bool no_common_suite; /* offer only a suite the client lacks */
} server_opts;

typedef struct server {
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt crt, ca;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_ticket_context ticket;
    buf in, out;
    bool done;
    int failed; /* mbedTLS error of the handshake, 0 if none */
    bool got_sni;
    char sni[256];
} server;

static int srv_send(void *ctx, const unsigned char *p, size_t n)
{
    server *s = ctx;
    return buf_append(&s->out, p, n) ? (int)n : MBEDTLS_ERR_SSL_ALLOC_FAILED;
}

static int srv_recv(void *ctx, unsigned char *p, size_t n)
{
    server *s = ctx;
    size_t have = buf_size(&s->in);
    if (have == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > have)
        n = have;
    memcpy(p, buf_head(&s->in), n);
    buf_consume(&s->in, n);
    return (int)n;
}

static int srv_sni(void *ctx, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len)
{
    (void)ssl;
    server *s = ctx;
    s->got_sni = true;
    if (len >= sizeof s->sni)
        len = sizeof s->sni - 1;
    memcpy(s->sni, name, len);
    s->sni[len] = '\0';
    return 0;
}

static bool server_init(server *s, server_opts o)
{
    memset(s, 0, sizeof *s);
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_ssl_init(&s->ssl);
    mbedtls_x509_crt_init(&s->crt);
    mbedtls_x509_crt_init(&s->ca);
    mbedtls_pk_init(&s->key);
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    mbedtls_ssl_ticket_init(&s->ticket);
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
        mbedtls_ssl_conf_sni(&s->conf, srv_sni, s);
        /* A NULL-cipher suite: never compiled into the client, so the
         * server answers the hello with a handshake_failure alert. */
        static const int null_suite[] = {MBEDTLS_TLS_RSA_WITH_NULL_SHA256, 0};
        if (o.no_common_suite)
            mbedtls_ssl_conf_ciphersuites(&s->conf, null_suite);
#if MBEDTLS_VERSION_MAJOR >= 3
        if (o.tls12_only)
            mbedtls_ssl_conf_max_tls_version(&s->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
        /* Tickets: with TLS 1.3 they arrive after the handshake, before the
         * first data, as Postfix sends them. */
        rc = mbedtls_ssl_ticket_setup(&s->ticket, mbedtls_ctr_drbg_random, &s->drbg,
                                      MBEDTLS_CIPHER_AES_256_GCM, 3600);
    }
    if (rc == 0) {
        mbedtls_ssl_conf_session_tickets_cb(&s->conf, mbedtls_ssl_ticket_write,
                                            mbedtls_ssl_ticket_parse, &s->ticket);
        rc = mbedtls_ssl_setup(&s->ssl, &s->conf);
    }
    if (rc == 0)
        mbedtls_ssl_set_bio(&s->ssl, s, srv_send, srv_recv, NULL);
    if (rc != 0)
        fprintf(stderr, "test server setup failed: -0x%04x\n", (unsigned)-rc);
    return rc == 0;
}

static void server_free(server *s)
{
    mbedtls_ssl_free(&s->ssl);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_ssl_ticket_free(&s->ticket);
    mbedtls_x509_crt_free(&s->crt);
    mbedtls_x509_crt_free(&s->ca);
    mbedtls_pk_free(&s->key);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
    buf_free(&s->in);
    buf_free(&s->out);
}

static void server_step(server *s)
{
    if (s->done || s->failed)
        return;
    int rc = mbedtls_ssl_handshake(&s->ssl);
    if (rc == 0)
        s->done = true;
    else if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
        s->failed = rc;
}

/* Client output to the server, all of it. */
static void to_server(tls_conn *c, server *s)
{
    size_t n;
    const unsigned char *p = tls_conn_output(c, &n);
    if (n > 0) {
        CHECK(buf_append(&s->in, p, n));
        tls_conn_output_done(c, n);
    }
}

/* Server output to the client, up to max bytes (a random piece). */
static size_t to_client(server *s, tls_conn *c, size_t max)
{
    size_t n = buf_size(&s->out);
    if (n > max)
        n = max;
    if (n > 0) {
        CHECK(tls_conn_feed(c, buf_head(&s->out), n));
        buf_consume(&s->out, n);
    }
    return n;
}

static size_t piece(size_t max_piece)
{
    return max_piece <= 1 ? 1 : 1 + (size_t)rand() % max_piece;
}

/* Runs both handshakes; the server's bytes reach the client in pieces of at
 * most max_piece bytes. */
static tls_status handshake(tls_conn *c, server *s, size_t max_piece)
{
    for (int i = 0; i < 200000; i++) {
        tls_status st = tls_conn_handshake(c);
        to_server(c, s); /* also an alert the client sent */
        server_step(s);
        if (st != TLS_WANT_INPUT) {
            /* TLS 1.3: the server still takes the client's Finished. */
            for (int j = 0; j < 4 && st == TLS_OK && !s->done && !s->failed; j++)
                server_step(s);
            return st;
        }
        if (to_client(s, c, piece(max_piece)) == 0 && buf_size(&s->in) == 0 && s->failed)
            return TLS_WANT_INPUT; /* stuck: the server gave up */
    }
    return TLS_WANT_INPUT;
}

/* Reads want bytes the server sent, feeding in pieces. */
static bool client_read_all(tls_conn *c, server *s, unsigned char *dst, size_t want,
                            size_t max_piece)
{
    size_t have = 0;
    for (int i = 0; i < 10000000 && have < want; i++) {
        size_t got = 0;
        tls_status st = tls_conn_read(c, dst + have, want - have < 4096 ? want - have : 4096, &got);
        have += got;
        if (st == TLS_WANT_INPUT) {
            if (to_client(s, c, piece(max_piece)) == 0)
                return false;
        } else if (st != TLS_OK) {
            fprintf(stderr, "read: %d %s\n", st, tls_conn_error(c));
            return false;
        }
        to_server(c, s);
    }
    return have == want;
}

static bool server_read_all(server *s, unsigned char *dst, size_t want)
{
    size_t have = 0;
    while (have < want) {
        int rc = mbedtls_ssl_read(&s->ssl, dst + have, want - have);
        if (rc <= 0) {
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
                continue;
#endif
            fprintf(stderr, "server read: -0x%04x\n", (unsigned)-rc);
            return false;
        }
        have += (size_t)rc;
    }
    return true;
}

static bool server_write_all(server *s, const unsigned char *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        int rc = mbedtls_ssl_write(&s->ssl, p + done, n - done);
        if (rc <= 0)
            return false;
        done += (size_t)rc;
    }
    return true;
}

/* ---- fixtures -------------------------------------------------------- */

typedef struct pair {
    tls_config *cfg;
    tls_conn *c;
    server s;
    tls_status st;
} pair;

/* A config, a connection to name and a server; the handshake run. */
static bool connect_pair(pair *p, tls_settings set, const char *name, server_opts o,
                         size_t max_piece)
{
    char err[512] = "";
    memset(p, 0, sizeof *p);
    p->cfg = tls_config_new(&set, err, sizeof err);
    if (p->cfg == NULL) {
        fprintf(stderr, "tls_config_new: %s\n", err);
        return false;
    }
    p->c = tls_conn_new(p->cfg, name, err, sizeof err);
    if (p->c == NULL) {
        fprintf(stderr, "tls_conn_new: %s\n", err);
        tls_config_free(p->cfg);
        return false;
    }
    if (!server_init(&p->s, o)) {
        tls_conn_free(p->c);
        tls_config_free(p->cfg);
        return false;
    }
    p->st = handshake(p->c, &p->s, max_piece);
    return true;
}

static void pair_free(pair *p)
{
    tls_conn_free(p->c);
    tls_config_free(p->cfg);
    server_free(&p->s);
}

static tls_settings verify_with(const char *ca_file)
{
    return (tls_settings){.verify = true, .ca_file = ca_file};
}

static const char *expected_version(bool tls12_only)
{
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
    return tls12_only ? "TLSv1.2 " : "TLSv1.3 ";
#else
    (void)tls12_only;
    return "TLSv1.2 ";
#endif
}

/* ---- the cases ------------------------------------------------------- */

static void test_version(void)
{
    const char *v = tls_backend_version();
    CHECK(strncmp(v, "mbed TLS ", 9) == 0 || strncmp(v, "Mbed TLS ", 9) == 0);
    CHECK(strchr(v, '.') != NULL);
}

static void test_config_errors(void)
{
    char err[512];
    tls_settings set = verify_with("/nonexistent/hato/ca.pem");
    CHECK(tls_config_new(&set, err, sizeof err) == NULL);
    CHECK_HAS(err, "/nonexistent/hato/ca.pem");
    show("missing CA file", err);
    CHECK_HAS(err, "No such file or directory");
    CHECK_HAS(err, "smtp_tls_CAfile");

    set = (tls_settings){.verify = true, .ca_path = "/nonexistent/hato/certs"};
    CHECK(tls_config_new(&set, err, sizeof err) == NULL);
    show("missing CA dir", err);
    CHECK_HAS(err, "/nonexistent/hato/certs");
    CHECK_HAS(err, "smtp_tls_CApath");

    /* A readable file without a certificate: the key. */
    set = verify_with(in_dir("server.key"));
    CHECK(tls_config_new(&set, err, sizeof err) == NULL);
    CHECK_HAS(err, in_dir("server.key"));
    show("not a CA file", err);
    CHECK_HAS(err, "no certificate");
    CHECK_HAS(err, "smtp_tls_CAfile");

    /* Without verification nothing is loaded, so a bad path does not matter. */
    set = (tls_settings){.verify = false, .ca_file = "/nonexistent/hato/ca.pem"};
    tls_config *cfg = tls_config_new(&set, err, sizeof err);
    CHECK(cfg != NULL);
    tls_config_free(cfg);

    /* The system store, when there is one. */
    FILE *f = fopen(TLS_SYSTEM_CA_FILE, "r");
    if (f != NULL) {
        fclose(f);
        set = (tls_settings){.verify = true};
        cfg = tls_config_new(&set, err, sizeof err);
        CHECK(cfg != NULL);
        tls_config_free(cfg);
    }

    /* Connections need a name. */
    set = verify_with(in_dir("ca.crt"));
    cfg = tls_config_new(&set, err, sizeof err);
    CHECK(cfg != NULL);
    if (cfg != NULL) {
        CHECK(tls_conn_new(cfg, "", err, sizeof err) == NULL);
        CHECK_HAS(err, "no server name");
        tls_config_free(cfg);
    }
}

static void check_verified(const char *name, bool tls12_only, size_t max_piece,
                           tls_settings set)
{
    pair p;
    server_opts o = {.tls12_only = tls12_only};
    if (!connect_pair(&p, set, name, o, max_piece)) {
        CHECK(!"connect");
        return;
    }
    CHECK_INT(p.st, TLS_OK);
    if (p.st != TLS_OK)
        fprintf(stderr, "%s: %s\n", name, tls_conn_error(p.c));
    CHECK(p.s.done);
    const char *sum = tls_conn_summary(p.c);
    show(name, sum);
    CHECK_HAS(sum, expected_version(tls12_only));
    CHECK_HAS(sum, "certificate CN=localhost verified");
    CHECK(strstr(sum, "TLS_") != NULL && strchr(sum, '-') == NULL);
    bool ip = strchr(name, ':') != NULL || strspn(name, "0123456789.") == strlen(name);
    if (ip) {
        CHECK(!p.s.got_sni); /* RFC 6066 section 3: no literal addresses */
    } else {
        CHECK(p.s.got_sni);
        CHECK_STR(p.s.sni, name);
    }
    pair_free(&p);
}

static void test_verified(void)
{
    tls_settings set = verify_with(in_dir("ca.crt"));
    check_verified("localhost", false, 4096, set);
    check_verified("localhost", false, 1, set); /* every split point */
    check_verified("127.0.0.1", false, 700, set);
    check_verified("::1", false, 700, set);
    check_verified("localhost", true, 300, set);
    check_verified("127.0.0.1", true, 300, set);
    check_verified("::1", true, 300, set);
    /* Anchors from a directory (CApath). */
    set = (tls_settings){.verify = true, .ca_path = in_dir("cadir")};
    check_verified("localhost", false, 4096, set);
}

static void check_data(bool tls12_only)
{
    pair p;
    server_opts o = {.tls12_only = tls12_only};
    if (!connect_pair(&p, verify_with(in_dir("ca.crt")), "localhost", o, 4096)) {
        CHECK(!"connect");
        return;
    }
    CHECK_INT(p.st, TLS_OK);
    tls_conn *c = p.c;
    server *s = &p.s;

    /* Nothing to read yet: want input, 0 bytes. */
    unsigned char small[64];
    size_t got = 99;
    to_client(s, c, (size_t)-1); /* a ticket, if the server sent one */
    CHECK_INT(tls_conn_read(c, small, sizeof small, &got), TLS_WANT_INPUT);
    CHECK_INT(got, 0);
    CHECK(!tls_conn_has_input(c));

    /* A line each way; a ticket (TLS 1.3) precedes the reply. */
    CHECK_INT(tls_conn_write(c, (const unsigned char *)"EHLO client\r\n", 13), TLS_OK);
    to_server(c, s);
    unsigned char line[13];
    CHECK(server_read_all(s, line, sizeof line));
    CHECK(memcmp(line, "EHLO client\r\n", 13) == 0);
    CHECK(server_write_all(s, (const unsigned char *)"250 ok\r\n", 8));
    CHECK(client_read_all(c, s, small, 8, 3));
    CHECK(memcmp(small, "250 ok\r\n", 8) == 0);

    /* 1 MB from the client in ten writes without draining in between. */
    size_t big = 1000000;
    unsigned char *data = malloc(big), *back = malloc(big);
    if (data == NULL || back == NULL) {
        CHECK(!"malloc");
        free(data);
        free(back);
        pair_free(&p);
        return;
    }
    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char)(i * 7 + i / 251);
    for (size_t off = 0; off < big; off += big / 10)
        CHECK_INT(tls_conn_write(c, data + off, big / 10), TLS_OK);
    to_server(c, s);
    CHECK(server_read_all(s, back, big));
    CHECK(memcmp(data, back, big) == 0);

    /* 1 MB from the server, arriving in pieces of up to 5000 bytes. */
    memset(back, 0, big);
    CHECK(server_write_all(s, data, big));
    CHECK(client_read_all(c, s, back, big, 5000));
    CHECK(memcmp(data, back, big) == 0);

    /* Leftover input is reported. */
    CHECK(server_write_all(s, (const unsigned char *)"x", 1));
    to_client(s, c, 3);
    CHECK(tls_conn_has_input(c));
    CHECK(client_read_all(c, s, small, 1, 4096));
    CHECK(!tls_conn_has_input(c));

    /* More than the output holds is refused, with nothing written: one
     * write too large, or one that does not fit beside pending output. */
    unsigned char *huge = calloc(1, 2u << 20);
    if (huge != NULL) {
        size_t before, after;
        tls_conn_output(c, &before);
        CHECK_INT(tls_conn_write(c, huge, 2u << 20), TLS_NOMEM);
        show("too big", tls_conn_error(c));
        CHECK_HAS(tls_conn_error(c), "write it in pieces");
        tls_conn_output(c, &after);
        CHECK_INT(after, before);
        CHECK_INT(tls_conn_write(c, huge, 600000), TLS_OK);
        tls_conn_output(c, &before);
        CHECK_INT(tls_conn_write(c, huge, 600000), TLS_NOMEM);
        show("no room", tls_conn_error(c));
        CHECK_HAS(tls_conn_error(c), "send the output first");
        tls_conn_output(c, &after);
        CHECK_INT(after, before);
        to_server(c, s);
        CHECK_INT(tls_conn_write(c, huge, 600000), TLS_OK);
        to_server(c, s);
        CHECK(server_read_all(s, huge, 1200000));
        free(huge);
    }
    /* The connection still works after that refusal. */
    CHECK_INT(tls_conn_write(c, (const unsigned char *)"QUIT\r\n", 6), TLS_OK);
    to_server(c, s);
    CHECK(server_read_all(s, line, 6));
    CHECK(memcmp(line, "QUIT\r\n", 6) == 0);

    /* close_notify from the server. */
    CHECK_INT(mbedtls_ssl_close_notify(&s->ssl), 0);
    to_client(s, c, (size_t)-1);
    CHECK_INT(tls_conn_read(c, small, sizeof small, &got), TLS_CLOSED);
    CHECK_INT(got, 0);

    free(data);
    free(back);
    pair_free(&p);
}

static void test_close_by_client(void)
{
    pair p;
    if (!connect_pair(&p, verify_with(in_dir("ca.crt")), "localhost", (server_opts){0}, 4096)) {
        CHECK(!"connect");
        return;
    }
    CHECK_INT(p.st, TLS_OK);
    tls_conn_close(p.c);
    to_server(p.c, &p.s);
    unsigned char b[16];
    int rc;
    do
        rc = mbedtls_ssl_read(&p.s.ssl, b, sizeof b);
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    while (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET);
#else
    while (0);
#endif
    CHECK_INT(rc, MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
    pair_free(&p);
}

static void test_wrong_ca(void)
{
    pair p;
    const char *other = in_dir("other-ca.crt");
    if (!connect_pair(&p, verify_with(other), "localhost", (server_opts){0}, 4096)) {
        CHECK(!"connect");
        return;
    }
    CHECK_INT(p.st, TLS_FAIL_VERIFY);
    const char *e = tls_conn_error(p.c);
    show("wrong CA", e);
    CHECK_HAS(e, "certificate of localhost");
    CHECK_HAS(e, "CN=hato test CA"); /* the issuer */
    CHECK_HAS(e, other);             /* the store searched */
    CHECK_HAS(e, "smtp_tls_CAfile");
    CHECK_HAS(e, "smtp_tls_security_level = encrypt");
    CHECK_HAS(e, "less safe");
    /* It stays failed. */
    CHECK_INT(tls_conn_handshake(p.c), TLS_FAIL);
    size_t got;
    unsigned char b[4];
    CHECK_INT(tls_conn_read(p.c, b, sizeof b, &got), TLS_FAIL);
    /* The server heard about it. */
    CHECK(p.s.failed != 0);
    pair_free(&p);

    /* A CA directory without the issuer names the directory. */
    tls_settings set = {.verify = true, .ca_path = in_dir("otherdir")};
    if (connect_pair(&p, set, "localhost", (server_opts){0}, 4096)) {
        CHECK_INT(p.st, TLS_FAIL_VERIFY);
        show("wrong CA dir", tls_conn_error(p.c));
        CHECK_HAS(tls_conn_error(p.c), in_dir("otherdir"));
        CHECK_HAS(tls_conn_error(p.c), "smtp_tls_CApath");
        pair_free(&p);
    }
}

static void check_wrong_name(const char *name, bool tls12_only)
{
    pair p;
    server_opts o = {.tls12_only = tls12_only};
    if (!connect_pair(&p, verify_with(in_dir("ca.crt")), name, o, 4096)) {
        CHECK(!"connect");
        return;
    }
    CHECK_INT(p.st, TLS_FAIL_VERIFY);
    const char *e = tls_conn_error(p.c);
    show("wrong name", e);
    CHECK_HAS(e, "is for localhost, 127.0.0.1, ::1, not ");
    CHECK_HAS(e, name);
    CHECK_HAS(e, "smtp_tls_security_level = encrypt");
    CHECK(strstr(e, "issued by") == NULL);
    pair_free(&p);
}

static void test_wrong_name(void)
{
    check_wrong_name("example.org", false);
    check_wrong_name("example.org", true);
    check_wrong_name("10.1.2.3", false);
    check_wrong_name("10.1.2.3", true);
    check_wrong_name("::2", false);
    /* The IPv4 name given as an IPv4-mapped IPv6 address is another name. */
    check_wrong_name("::ffff:127.0.0.2", false);
}

static void test_no_verify(void)
{
    pair p;
    tls_settings set = {.verify = false, .ca_file = in_dir("other-ca.crt")};
    if (!connect_pair(&p, set, "example.org", (server_opts){.crt = "expired.crt"}, 4096)) {
        CHECK(!"connect");
        return;
    }
    CHECK_INT(p.st, TLS_OK);
    show("no verify", tls_conn_summary(p.c));
    CHECK_HAS(tls_conn_summary(p.c), "certificate CN=localhost not verified");
    CHECK(p.s.got_sni); /* SNI even without verification */
    CHECK_INT(tls_conn_write(p.c, (const unsigned char *)"hi", 2), TLS_OK);
    to_server(p.c, &p.s);
    unsigned char b[2];
    CHECK(server_read_all(&p.s, b, 2));
    pair_free(&p);

    /* An address that is not the certificate's, unverified. */
    if (connect_pair(&p, set, "10.1.2.3", (server_opts){0}, 4096)) {
        CHECK_INT(p.st, TLS_OK);
        CHECK(!p.s.got_sni);
        CHECK_HAS(tls_conn_summary(p.c), "not verified");
        pair_free(&p);
    } else {
        CHECK(!"connect");
    }
}

static void test_dates(void)
{
    pair p;
    if (connect_pair(&p, verify_with(in_dir("ca.crt")), "localhost",
                     (server_opts){.crt = "expired.crt"}, 4096)) {
        CHECK_INT(p.st, TLS_FAIL_VERIFY);
        show("expired", tls_conn_error(p.c));
        CHECK_HAS(tls_conn_error(p.c), "certificate of localhost expired on 2020-01-02 00:00:00 UTC");
        CHECK_HAS(tls_conn_error(p.c), "renewed certificate");
        CHECK_HAS(tls_conn_error(p.c), "smtp_tls_security_level = encrypt");
        pair_free(&p);
    } else {
        CHECK(!"connect");
    }
    if (connect_pair(&p, verify_with(in_dir("ca.crt")), "127.0.0.1",
                     (server_opts){.crt = "future.crt"}, 4096)) {
        CHECK_INT(p.st, TLS_FAIL_VERIFY);
        show("future", tls_conn_error(p.c));
        CHECK_HAS(tls_conn_error(p.c),
                  "certificate of 127.0.0.1 is not valid before 2099-01-01 00:00:00 UTC");
        CHECK_HAS(tls_conn_error(p.c), "clock");
        pair_free(&p);
    } else {
        CHECK(!"connect");
    }
}

static void test_alert(void)
{
    /* The server finds no cipher suite in common and says so. */
    pair p;
    if (connect_pair(&p, verify_with(in_dir("ca.crt")), "localhost",
                     (server_opts){.tls12_only = true, .no_common_suite = true}, 4096)) {
        CHECK_INT(p.st, TLS_FAIL);
        show("no common suite", tls_conn_error(p.c));
        CHECK_HAS(tls_conn_error(p.c), "TLS handshake with localhost failed");
        CHECK_HAS(tls_conn_error(p.c), "the server sent alert handshake_failure (40)");
        pair_free(&p);
    } else {
        CHECK(!"connect");
    }

    /* A fatal alert after the handshake ends the reading. */
    if (connect_pair(&p, verify_with(in_dir("ca.crt")), "localhost", (server_opts){0}, 4096)) {
        CHECK_INT(p.st, TLS_OK);
        CHECK_INT(mbedtls_ssl_send_alert_message(&p.s.ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                                 MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR), 0);
        unsigned char b[8];
        size_t got;
        to_client(&p.s, p.c, (size_t)-1);
        CHECK_INT(tls_conn_read(p.c, b, sizeof b, &got), TLS_FAIL);
        CHECK_HAS(tls_conn_error(p.c), "TLS read with localhost failed: the server sent alert "
                  "internal_error (80)");
        pair_free(&p);
    } else {
        CHECK(!"connect");
    }
}

/* ---- setup ----------------------------------------------------------- */

static bool make_certs(void)
{
    const char *root = getenv("HATO_SOURCE_ROOT");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/setup/make-ca.sh' '%s'", root ? root : ".", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed (is HATO_SOURCE_ROOT set?)\n", cmd);
        return false;
    }
    /* Expired and not-yet-valid certificates for the same key and names. */
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; mkdir -p old cadir otherdir; cp ca.crt cadir/; "
             "cp other-ca.crt otherdir/; : > old/index.txt; echo 1000 > old/serial; "
             "printf '[ca]\\ndefault_ca = t\\n[t]\\ndatabase = old/index.txt\\n"
             "new_certs_dir = old\\nserial = old/serial\\ndefault_md = sha256\\n"
             "policy = p\\nunique_subject = no\\n[p]\\ncommonName = supplied\\n"
             "organizationName = optional\\n' > old/ca.cnf; "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\n"
             "basicConstraints=CA:FALSE\\n' > old/ext; "
             "openssl req -new -key server.key -subj '/O=hato tests/CN=localhost' "
             "-out old/server.csr 2>/dev/null; "
             "openssl ca -batch -notext -config old/ca.cnf -cert ca.crt -keyfile ca.key "
             "-in old/server.csr -extfile old/ext -startdate 20200101000000Z "
             "-enddate 20200102000000Z -out expired.crt 2>/dev/null; "
             "openssl ca -batch -notext -config old/ca.cnf -cert ca.crt -keyfile ca.key "
             "-in old/server.csr -extfile old/ext -startdate 20990101000000Z "
             "-enddate 20991231000000Z -out future.crt 2>/dev/null",
             dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "making the expired certificates failed\n");
        return false;
    }
    return true;
}

int main(void)
{
    srand(12345);
#if MBEDTLS_VERSION_MAJOR >= 3
    /* The test's own server uses PSA for TLS 1.3 too. */
    if (psa_crypto_init() != PSA_SUCCESS) {
        fprintf(stderr, "psa_crypto_init failed\n");
        return 1;
    }
#endif
    snprintf(dir, sizeof dir, "/tmp/hato-tls-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (make_certs()) {
        test_version();
        test_config_errors();
        test_verified();
        check_data(false);
        check_data(true);
        test_close_by_client();
        test_wrong_ca();
        test_wrong_name();
        test_no_verify();
        test_dates();
        test_alert();
    } else {
        CHECK(!"certificates");
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("backend: %s\n", tls_backend_version());
    return check_finish("tls");
}
