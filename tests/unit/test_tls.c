/*
 * test_tls.c - the TLS layer in real handshakes, in memory.
 *
 * The test plays the server with mbedTLS itself (tls_peer.h) and shuttles
 * bytes between the two ends' buffers, the server's bytes fed to the client
 * in random pieces.  Certificates come from tests/setup/make-ca.sh in a
 * temporary directory; expired and not-yet-valid ones, and a client
 * certificate, are made here, the dated ones with `openssl ca`, whose
 * -startdate/-enddate Debian 12's OpenSSL 3.0 has (its req/x509 lack
 * -not_before/-not_after).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/md.h>

#include "check.h"
#include "tls/state.h"
#include "tls/tls.h"
#include "tls_peer.h"
#include "util/buf.h"

/* With TEST_VERBOSE set, shows the messages a person would read. */
static void show(const char *what, const char *msg)
{
    if (getenv("TEST_VERBOSE") != NULL)
        fprintf(stderr, "[%s] %s\n", what, msg);
}

/* ---- the server ----------------------------------------------------- */

/* The shared peer, all this test needs of a server. */
typedef tls_peer server;
typedef tls_peer_opts server_opts;

/* Client output to the server, all of it. */
static void to_server(tls_conn *c, server *s)
{
    size_t n;
    const unsigned char *p = tls_conn_output(c, &n);
    if (n > 0) {
        tls_peer_put(s, p, n);
        tls_conn_output_done(c, n);
    }
}

/* Server output to the client, up to max bytes (a random piece). */
static size_t to_client(server *s, tls_conn *c, size_t max)
{
    const unsigned char *p;
    size_t n = tls_peer_pending(s, max, &p);
    if (n > 0) {
        CHECK(tls_conn_feed(c, p, n));
        tls_peer_taken(s, n);
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
        tls_peer_step(s);
        if (st != TLS_WANT_INPUT) {
            /* TLS 1.3: the server still takes the client's Finished. */
            for (int j = 0; j < 4 && st == TLS_OK && !s->done && !s->failed; j++)
                tls_peer_step(s);
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
    return tls_peer_write_all(s, p, n, NULL);
}

/* ---- fixtures -------------------------------------------------------- */

typedef struct pair {
    tls_config *cfg;
    tls_conn *c;
    server s;
    tls_status st;
} pair;

/* A saved session to offer before the next connect_pair's handshake. */
static const unsigned char *offer_data;
static size_t offer_len;
static bool offer_taken;

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
    o.tickets = true; /* every server here: resumption is always possible */
    if (!tls_peer_init(&p->s, o)) {
        tls_conn_free(p->c);
        tls_config_free(p->cfg);
        return false;
    }
    if (offer_data != NULL) {
        char why[300] = "";
        offer_taken = tls_conn_offer_session(p->c, offer_data, offer_len, why, sizeof why);
        show("offer", offer_taken ? "taken" : why);
        offer_data = NULL;
    }
    p->st = handshake(p->c, &p->s, max_piece);
    return true;
}

static void pair_free(pair *p)
{
    tls_conn_free(p->c);
    tls_config_free(p->cfg);
    tls_peer_free(&p->s);
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

/* ---- issue 3: pins, TOFU, versions, client certificates, sessions ----- */

#ifndef MBEDTLS_PRIVATE
#define MBEDTLS_PRIVATE(member) member
#endif

/* The digest of the server certificate (pkey false) or of its key. */
static size_t server_digest(mbedtls_md_type_t type, bool pkey, unsigned char *out)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    size_t n = 0;
    if (mbedtls_x509_crt_parse_file(&crt, in_dir("server.crt")) == 0) {
        const mbedtls_md_info_t *info = mbedtls_md_info_from_type(type);
        const mbedtls_x509_buf *b = pkey ? &crt.pk_raw : &crt.raw;
        if (info != NULL && mbedtls_md(info, b->p, b->len, out) == 0)
            n = mbedtls_md_get_size(info);
    }
    mbedtls_x509_crt_free(&crt);
    CHECK(n > 0);
    return n;
}

/* The server greets and the client answers: in TLS 1.3 the ticket comes
 * before the greeting, as with Postfix. */
static void exchange(pair *p)
{
    unsigned char b[8];
    CHECK(server_write_all(&p->s, (const unsigned char *)"220 hi\r\n", 8));
    CHECK(client_read_all(p->c, &p->s, b, 8, 700));
    CHECK_INT(tls_conn_write(p->c, (const unsigned char *)"QUIT\r\n", 6), TLS_OK);
    to_server(p->c, &p->s);
    CHECK(server_read_all(&p->s, b, 6));
}

static void test_pins(void)
{
    tls_pin pins[2] = {{0}};
    pins[0].len = server_digest(MBEDTLS_MD_SHA256, false, pins[0].digest);
    tls_settings set = {.pins = pins, .npins = 1, .level = 5};
    pair p;
    /* A pinned certificate needs no CA and no name. */
    if (connect_pair(&p, set, "example.org", (server_opts){0}, 4096)) {
        CHECK_INT(p.st, TLS_OK);
        show("cert pin", tls_conn_summary(p.c));
        CHECK_HAS(tls_conn_summary(p.c), "matches a pinned fingerprint");
        pair_free(&p);
    }
    /* The key's SHA-512 beside a wrong certificate pin: any one passes. */
    pins[0].digest[0] ^= 1;
    pins[1].pkey = true;
    pins[1].len = server_digest(MBEDTLS_MD_SHA512, true, pins[1].digest);
    set = (tls_settings){.pins = pins + 1, .npins = 1, .pin_digest = "sha512", .level = 5};
    if (connect_pair(&p, set, "10.1.2.3", (server_opts){.tls12_only = true}, 300)) {
        CHECK_INT(p.st, TLS_OK);
        pair_free(&p);
    }
    /* No match: refused, and the message shows what the server has. */
    set = (tls_settings){.pins = pins, .npins = 1, .level = 5};
    unsigned char dc[32], dk[32];
    char hc[100], hk[100];
    tls_colon_hex(dc, server_digest(MBEDTLS_MD_SHA256, false, dc), hc, sizeof hc);
    tls_colon_hex(dk, server_digest(MBEDTLS_MD_SHA256, true, dk), hk, sizeof hk);
    for (int tls12 = 0; tls12 < 2; tls12++) {
        if (!connect_pair(&p, set, "localhost", (server_opts){.tls12_only = tls12}, 4096))
            continue;
        CHECK_INT(p.st, TLS_FAIL_VERIFY);
        const char *e = tls_conn_error(p.c);
        show("pin mismatch", e);
        CHECK_HAS(e, "matches no pinned fingerprint");
        CHECK_HAS(e, hc);
        CHECK_HAS(e, hk);
        CHECK_HAS(e, "smtp_tls_fingerprint_cert_match");
        CHECK_HAS(e, "smtp_tls_fingerprint_pkey_match");
        CHECK_INT(tls_conn_handshake(p.c), TLS_FAIL);
        CHECK_INT(tls_conn_write(p.c, (const unsigned char *)"x", 1), TLS_FAIL);
        /* The server got the alert, not data. */
        to_server(p.c, &p.s);
        unsigned char b[4];
        int rc = p.s.done ? mbedtls_ssl_read(&p.s.ssl, b, sizeof b) : p.s.failed;
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        while (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            rc = mbedtls_ssl_read(&p.s.ssl, b, sizeof b);
#endif
        if (p.s.done && rc == 0)
            rc = -1;
        CHECK(rc < 0 && rc != MBEDTLS_ERR_SSL_WANT_READ);
        pair_free(&p);
    }
    /* A pin of the wrong length for the digest. */
    char err[512];
    set = (tls_settings){.pins = pins + 1, .npins = 1, .level = 5};
    CHECK(tls_config_new(&set, err, sizeof err) == NULL);
    show("pin length", err);
    CHECK_HAS(err, "smtp_tls_fingerprint_digest");
}

static void test_tofu(void)
{
    tls_settings set = {.tofu = true, .level = 6, .tofu_file = "/state/tofu/localhost:587",
                        .tofu_peer = "[localhost]:587"};
    pair p;
    unsigned char key[TLS_KEY_ID_LEN] = {0};
    if (connect_pair(&p, set, "localhost", (server_opts){0}, 4096)) {
        CHECK_INT(p.st, TLS_OK);
        CHECK(tls_conn_tofu_first(p.c));
        CHECK(tls_conn_peer_key_id(p.c, key));
        show("tofu first", tls_conn_summary(p.c));
        pair_free(&p);
    }
    unsigned char want[32];
    CHECK_INT(server_digest(MBEDTLS_MD_SHA256, true, want), 32);
    CHECK(memcmp(key, want, 32) == 0);
    set.tofu_known = true;
    memcpy(set.tofu_key, key, sizeof key);
    if (connect_pair(&p, set, "localhost", (server_opts){.tls12_only = true}, 4096)) {
        CHECK_INT(p.st, TLS_OK);
        CHECK(!tls_conn_tofu_first(p.c));
        CHECK_HAS(tls_conn_summary(p.c), "matched the one recorded");
        pair_free(&p);
    }
    set.tofu_key[31] ^= 0x80;
    char was[100], now[100];
    tls_colon_hex(set.tofu_key, 32, was, sizeof was);
    tls_colon_hex(key, 32, now, sizeof now);
    if (connect_pair(&p, set, "localhost", (server_opts){0}, 4096)) {
        CHECK_INT(p.st, TLS_FAIL_VERIFY);
        const char *e = tls_conn_error(p.c);
        show("tofu change", e);
        CHECK_HAS(e, "changed since first contact");
        CHECK_HAS(e, was);
        CHECK_HAS(e, now);
        CHECK_HAS(e, "hato --tofu-accept [localhost]:587");
        CHECK_HAS(e, "rm /state/tofu/localhost:587");
        pair_free(&p);
    }
}

static void test_min_version(void)
{
    tls_settings set = verify_with(in_dir("ca.crt"));
    set.min_version = 13;
    char err[512];
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
    pair p;
    if (connect_pair(&p, set, "localhost", (server_opts){.tls12_only = true}, 4096)) {
        CHECK(p.st == TLS_FAIL);
        show("1.3 against 1.2", tls_conn_error(p.c));
        CHECK_HAS(tls_conn_error(p.c), "TLS 1.3");
        CHECK_HAS(tls_conn_error(p.c), "smtp_tls_mandatory_protocols");
        pair_free(&p);
    }
    if (connect_pair(&p, set, "localhost", (server_opts){0}, 4096)) {
        CHECK_INT(p.st, TLS_OK);
        CHECK_STR(tls_conn_version(p.c), "TLSv1.3");
        pair_free(&p);
    }
#else
    CHECK(tls_config_new(&set, err, sizeof err) == NULL);
    show("1.3 on 2.28", err);
    CHECK_HAS(err, "no TLS 1.3");
    CHECK_HAS(err, "smtp_tls_mandatory_protocols");
#endif
    set.min_version = 11;
    CHECK(tls_config_new(&set, err, sizeof err) == NULL);
}

static void test_client_cert(void)
{
    pair p;
    tls_settings set = verify_with(in_dir("ca.crt"));
    /* Asked for and not configured. */
    if (connect_pair(&p, set, "localhost", (server_opts){.want_client_cert = true,
                                                         .tls12_only = true}, 4096)) {
        /* mbedTLS's server gives up without an alert; OpenSSL's (Postfix)
         * sends handshake_failure, which is played here. */
        CHECK(p.s.failed != 0);
        if (p.st == TLS_WANT_INPUT) {
            CHECK_INT(mbedtls_ssl_send_alert_message(&p.s.ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                                     MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE), 0);
            to_client(&p.s, p.c, (size_t)-1);
            p.st = tls_conn_handshake(p.c);
        }
        CHECK_INT(p.st, TLS_FAIL);
        show("no client cert", tls_conn_error(p.c));
        CHECK_HAS(tls_conn_error(p.c), "smtp_tls_cert_file");
        pair_free(&p);
    }
    set.cert_file = in_dir("client.crt");
    set.key_file = in_dir("client.key");
    for (int tls12 = 0; tls12 < 2; tls12++) {
        if (!connect_pair(&p, set, "localhost",
                          (server_opts){.want_client_cert = true, .tls12_only = tls12}, 4096))
            continue;
        CHECK_INT(p.st, TLS_OK);
        CHECK(p.s.done);
        const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&p.s.ssl);
        CHECK(peer != NULL);
        exchange(&p);
        pair_free(&p);
    }
    char err[512];
    set.key_file = in_dir("client-open.key");
    CHECK(tls_config_new(&set, err, sizeof err) == NULL);
    show("open key", err);
    CHECK_HAS(err, in_dir("client-open.key"));
    CHECK_HAS(err, "chmod 600");
    set.key_file = in_dir("server.key"); /* not this certificate's */
    CHECK(tls_config_new(&set, err, sizeof err) == NULL);
    CHECK_HAS(err, "does not hold the key");
    set.cert_file = "/nonexistent/client.crt";
    CHECK(tls_config_new(&set, err, sizeof err) == NULL);
    CHECK_HAS(err, "/nonexistent/client.crt");
    CHECK_HAS(err, "smtp_tls_cert_file");
}

static bool got_session(pair *p, unsigned char **data, size_t *len)
{
    bool ok = tls_conn_take_session(p->c, data, len);
    CHECK(ok);
    return ok;
}

static void check_resume(bool tls12)
{
    server_opts o = {.tls12_only = tls12};
    tls_settings set = verify_with(in_dir("ca.crt"));
    set.level = 3;
    pair p;
    unsigned char *first = NULL, *second = NULL;
    size_t first_len = 0, second_len = 0;
    if (!connect_pair(&p, set, "localhost", o, 4096))
        return;
    CHECK_INT(p.st, TLS_OK);
    CHECK(!tls_conn_resumed(p.c));
    exchange(&p);
    bool have = got_session(&p, &first, &first_len);
    pair_free(&p);
    if (!have)
        return;

    /* In process: the same settings resume. */
    offer_data = first;
    offer_len = first_len;
    if (connect_pair(&p, set, "localhost", o, 4096)) {
        CHECK(offer_taken);
        CHECK_INT(p.st, TLS_OK);
        CHECK(tls_conn_resumed(p.c));
        show("resumed", tls_conn_summary(p.c));
        CHECK_HAS(tls_conn_summary(p.c), "session resumed");
        CHECK_HAS(tls_conn_summary(p.c), tls12 ? "TLSv1.2" : expected_version(false));
        exchange(&p);
        if (got_session(&p, &second, &second_len))
            tls_session_free(first, first_len), first = NULL;
        pair_free(&p);
    }
    if (second == NULL) {
        tls_session_free(first, first_len);
        return;
    }

    /* Through the state directory, as a later process would. */
    char sdir[128], path[TLS_STATE_PATH_MAX], err[600];
    snprintf(sdir, sizeof sdir, "%s/state", dir);
    CHECK(tls_state_path(sdir, "sessions", "localhost", 587, path, sizeof path, err,
                         sizeof err));
    CHECK(tls_state_write(path, second, second_len, true, err, sizeof err));
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    unsigned char *back = NULL;
    size_t back_len = 0;
    CHECK_INT(tls_state_read(path, 65536, &back, &back_len, err, sizeof err), TLS_STATE_FOUND);
    CHECK(back_len == second_len && memcmp(back, second, second_len) == 0);

    /* Not under another name, another level, or damaged. */
    offer_data = back;
    offer_len = back_len;
    if (connect_pair(&p, set, "127.0.0.1", o, 4096)) {
        CHECK(!offer_taken);
        CHECK_INT(p.st, TLS_OK);
        CHECK(!tls_conn_resumed(p.c));
        pair_free(&p);
    }
    tls_settings enc = {.verify = false, .level = 2};
    offer_data = back;
    if (connect_pair(&p, enc, "localhost", o, 4096)) {
        CHECK(!offer_taken);
        CHECK(!tls_conn_resumed(p.c));
        pair_free(&p);
    }
    back[back_len - 1] ^= 1;
    offer_data = back;
    if (connect_pair(&p, set, "localhost", o, 4096)) {
        CHECK(!offer_taken);
        CHECK_INT(p.st, TLS_OK);
        pair_free(&p);
    }
    back[back_len - 1] ^= 1;
    offer_data = back;
    if (connect_pair(&p, set, "localhost", o, 4096)) {
        CHECK(offer_taken);
        CHECK_INT(p.st, TLS_OK);
        CHECK(tls_conn_resumed(p.c));
        /* The probe's view of a resumed link. */
        pair_free(&p);
    }
    tls_session_free(back, back_len);
    tls_session_free(second, second_len);
}

/* Anchor files in other shapes: a bundle with a damaged entry, CRLF line
 * ends and text around the blocks, and a DER file. */
static void test_anchor_formats(void)
{
    const char *odd = in_dir("odd-bundle.pem");
    FILE *f = fopen(odd, "wb");
    FILE *ca = fopen(in_dir("ca.crt"), "rb");
    CHECK(f != NULL && ca != NULL);
    if (f == NULL || ca == NULL) {
        if (f != NULL)
            fclose(f);
        if (ca != NULL)
            fclose(ca);
        return;
    }
    fputs("# a comment\r\n-----BEGIN CERTIFICATE-----\r\nMIIB!!notbase64\r\n"
          "-----END CERTIFICATE-----\r\nsubject=CN = hato test CA\r\n", f);
    for (int ch; (ch = fgetc(ca)) != EOF;) {
        if (ch == '\n')
            fputc('\r', f);
        fputc(ch, f);
    }
    fclose(ca);
    fclose(f);
    check_verified("localhost", false, 4096, verify_with(odd));

    char cmd[512];
    snprintf(cmd, sizeof cmd, "openssl x509 -in '%s' -outform DER -out '%s'", in_dir("ca.crt"),
             in_dir("ca.der"));
    if (system(cmd) == 0)
        check_verified("localhost", false, 4096, verify_with(in_dir("ca.der")));
    else
        CHECK(!"openssl x509 -outform DER");
}

/* Appends file from to file to (created when missing). */
static bool append_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "ab");
    bool ok = in != NULL && out != NULL;
    char chunk[4096];
    size_t n;
    while (ok && (n = fread(chunk, 1, sizeof chunk, in)) > 0)
        ok = fwrite(chunk, 1, n, out) == n;
    if (in != NULL)
        fclose(in);
    if (out != NULL && fclose(out) != 0)
        ok = false;
    return ok;
}

/* A saved session is bound to the anchors' files as they were: a CA added
 * to the file (or removed from it) stops resumption. */
static void test_resume_anchors(void)
{
    const char *anchors = in_dir("anchors.pem");
    CHECK(append_file(in_dir("ca.crt"), anchors));
    tls_settings set = verify_with(anchors);
    server_opts o = {.tls12_only = true};
    pair p;
    unsigned char *first = NULL;
    size_t first_len = 0;
    if (!connect_pair(&p, set, "localhost", o, 4096))
        return;
    CHECK_INT(p.st, TLS_OK);
    exchange(&p);
    bool have = got_session(&p, &first, &first_len);
    pair_free(&p);
    if (!have)
        return;
    offer_data = first;
    offer_len = first_len;
    if (connect_pair(&p, set, "localhost", o, 4096)) {
        CHECK(offer_taken);
        CHECK(tls_conn_resumed(p.c));
        pair_free(&p);
    }
    CHECK(append_file(in_dir("other-ca.crt"), anchors));
    offer_data = first;
    offer_len = first_len;
    if (connect_pair(&p, set, "localhost", o, 4096)) {
        CHECK(!offer_taken);
        CHECK_INT(p.st, TLS_OK);
        CHECK(!tls_conn_resumed(p.c));
        pair_free(&p);
    }
    tls_session_free(first, first_len);
}

static void test_resume(void)
{
    check_resume(true);
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
    check_resume(false);
#endif
}

static void test_state_dir(void)
{
    char sdir[128], path[TLS_STATE_PATH_MAX], err[600];
    snprintf(sdir, sizeof sdir, "%s/st2", dir);
    CHECK(tls_state_path(sdir, "tofu", "../evil/x", 25, path, sizeof path, err, sizeof err));
    show("path", path);
    CHECK(strstr(path, "/../") == NULL && strstr(path, "evil/") == NULL);
    struct stat sb;
    CHECK(stat(sdir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
    CHECK(chmod(sdir, 0775) == 0);
    CHECK(!tls_state_path(sdir, "tofu", "h", 25, path, sizeof path, err, sizeof err));
    show("open state dir", err);
    CHECK_HAS(err, "chmod 700");
    CHECK(chmod(sdir, 0700) == 0);
    snprintf(sdir, sizeof sdir, "%s/nope/deeper", dir);
    CHECK(!tls_state_path(sdir, "tofu", "h", 25, path, sizeof path, err, sizeof err));
    CHECK_HAS(err, sdir);
    unsigned char *d;
    size_t n;
    CHECK_INT(tls_state_read("/nonexistent/hato/x", 10, &d, &n, err, sizeof err),
              TLS_STATE_MISSING);
}

static void test_channel_binding(void)
{
    unsigned char cb[64];
    size_t len;
    pair p;
    tls_settings set = verify_with(in_dir("ca.crt"));
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
    unsigned char want[64];
    if (connect_pair(&p, set, "localhost", (server_opts){0}, 4096)) {
        CHECK_INT(p.st, TLS_OK);
        len = sizeof cb;
        CHECK(tls_conn_channel_binding(p.c, "tls-exporter", cb, &len));
        CHECK_INT(len, 32);
        static const char label[] = "EXPORTER-Channel-Binding";
        CHECK_INT(mbedtls_ssl_export_keying_material(&p.s.ssl, want, 32, label,
                                                     sizeof label - 1, NULL, 0, 0), 0);
        CHECK(memcmp(cb, want, 32) == 0);
        len = sizeof cb;
        CHECK(!tls_conn_channel_binding(p.c, "tls-unique", cb, &len));
        pair_free(&p);
    }
#endif
    if (connect_pair(&p, set, "localhost", (server_opts){.tls12_only = true}, 4096)) {
        CHECK_INT(p.st, TLS_OK);
        len = sizeof cb;
        CHECK(!tls_conn_channel_binding(p.c, "tls-exporter", cb, &len));
        len = sizeof cb;
        CHECK(tls_conn_channel_binding(p.c, "tls-unique", cb, &len));
        CHECK_INT(len, 12);
        /* The first Finished of a full handshake is the client's. */
        CHECK(memcmp(cb, p.s.ssl.MBEDTLS_PRIVATE(peer_verify_data), 12) == 0);
        len = sizeof cb;
        CHECK(!tls_conn_channel_binding(p.c, "tls-server-end-point", cb, &len));
        pair_free(&p);
    }
}

static void collect(void *user, const char *line)
{
    buf *b = user;
    CHECK(buf_append_str(b, line) && buf_append_str(b, "\n"));
}

static void test_describe(void)
{
    pair p;
    if (!connect_pair(&p, verify_with(in_dir("ca.crt")), "localhost", (server_opts){0}, 4096))
        return;
    CHECK_INT(p.st, TLS_OK);
    buf b;
    buf_init(&b, 0);
    tls_conn_describe_chain(p.c, collect, &b);
    CHECK(buf_append(&b, "", 1));
    const char *text = (const char *)buf_head(&b);
    show("chain", text);
    CHECK_HAS(text, "certificate 0: subject O=hato tests, CN=localhost; issuer O=hato tests, "
              "CN=hato test CA; valid ");
    unsigned char d[32];
    char hex[100];
    tls_colon_hex(d, server_digest(MBEDTLS_MD_SHA256, false, d), hex, sizeof hex);
    CHECK_HAS(text, hex);
    CHECK_HAS(text, "; verified");
    CHECK(tls_conn_cipher(p.c)[0] != '\0');
    buf_free(&b);
    pair_free(&p);
}

/* ---- setup ----------------------------------------------------------- */

static bool make_certs(void)
{
    if (!tls_peer_make_certs())
        return false;
    char cmd[4096];
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
             "-enddate 20991231000000Z -out future.crt 2>/dev/null; "
             /* A client certificate from the same CA, its key 0600. */
             "openssl req -newkey rsa:2048 -nodes -keyout client.key -subj "
             "'/O=hato tests/CN=hato client' -out old/client.csr 2>/dev/null; "
             "printf 'extendedKeyUsage=clientAuth\\nbasicConstraints=CA:FALSE\\n' > old/cext; "
             "openssl x509 -req -in old/client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-days 30 -extfile old/cext -out client.crt 2>/dev/null; chmod 600 client.key; "
             "cp client.key client-open.key; chmod 644 client-open.key",
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
    if (!tls_peer_setup("tls"))
        return 1;
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
        test_pins();
        test_tofu();
        test_min_version();
        test_client_cert();
        test_resume();
        test_resume_anchors();
        test_anchor_formats();
        test_state_dir();
        test_channel_binding();
        test_describe();
    } else {
        CHECK(!"certificates");
    }
    tls_peer_cleanup();
    printf("backend: %s\n", tls_backend_version());
    return check_finish("tls");
}
