/*
 * tls_peer.c - the session_tls target's TLS server (tls_peer.h).
 *
 * Ownership: a tls_peer owns its mbedTLS contexts and both byte buffers;
 * tls_peer_free releases them.  One peer serves one fuzz input.
 */
#include "tls_peer.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#if defined(MBEDTLS_SSL_TICKET_C)
#include <mbedtls/ssl_ticket.h>
#endif
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#endif

/* A self-signed P-256 certificate for relay.example, valid until 2126, and
 * its key: made for this fixture with
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
 *     -nodes -days 36500 -subj /CN=relay.example \
 *     -addext subjectAltName=DNS:relay.example \
 *     -addext basicConstraints=critical,CA:TRUE
 * It protects nothing: it exists so that a handshake can complete. */
const char tls_peer_cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBoDCCAUegAwIBAgIUcsCOOyBxcbqm1+On71P9FseOvAcwCgYIKoZIzj0EAwIw\n"
    "GDEWMBQGA1UEAwwNcmVsYXkuZXhhbXBsZTAgFw0yNjExMjgwNDE1MTJaGA8yMTI2\n"
    "MTEwNDA0MTUxMlowGDEWMBQGA1UEAwwNcmVsYXkuZXhhbXBsZTBZMBMGByqGSM49\n"
    "AgEGCCqGSM49AwEHA0IABGy2RaF2UNk9CqR9Y3rRLVc4WLo+qt5QUn2vt2wrQcAF\n"
    "7SbD4Bo2+UiFZZzd/OjmJkfdjuPkowIsBKxIFBus5AajbTBrMB0GA1UdDgQWBBQT\n"
    "Pw2RwmNRaRHZER44D5g89NzrETAfBgNVHSMEGDAWgBQTPw2RwmNRaRHZER44D5g8\n"
    "9NzrETAYBgNVHREEETAPgg1yZWxheS5leGFtcGxlMA8GA1UdEwEB/wQFMAMBAf8w\n"
    "CgYIKoZIzj0EAwIDRwAwRAIgI6lH5v5xnO7tonOmtzV1qa2uNTikej0b/t5L9s6u\n"
    "X3MCIC8crjDez3oa43mwK+D1zVsGp8azzNJLC4C7r8oslaCr\n"
    "-----END CERTIFICATE-----\n";
const char tls_peer_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZ/CLnWQj9lhjbUFU\n"
    "I2jit0tBW+3fM1utS7/8OnmmUCyhRANCAARstkWhdlDZPQqkfWN60S1XOFi6Pqre\n"
    "UFJ9r7dsK0HABe0mw+AaNvlIhWWc3fzo5iZH3Y7j5KMCLASsSBQbrOQG\n"
    "-----END PRIVATE KEY-----\n";
const char tls_peer_cert_sha256[] =
    "5E:5A:01:B4:EE:FD:47:43:77:B7:F5:7C:F9:48:69:BA:"
    "B6:7E:E3:2F:54:0E:21:9B:CA:4A:FA:EB:29:AE:D5:9C";

/* A growing byte buffer with a read position. */
struct bytes {
    uint8_t *data;
    size_t len, off, cap;
};

static void bytes_add(struct bytes *b, const uint8_t *p, size_t n)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (d == NULL)
            abort(); /* the harness's own memory: not what is tested */
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

struct tls_peer {
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
#if defined(MBEDTLS_SSL_TICKET_C)
    mbedtls_ssl_ticket_context tickets;
#endif
    uint64_t rng_state;
    struct bytes in;   /* the client's ciphertext, not yet read by mbedTLS */
    struct bytes out;  /* ciphertext for the client */
    bool corrupt_next; /* flip a byte of the next record sent */
    bool handshake_done;
};

/* Not random at all: xorshift64 from a fixed seed, so that the same input
 * gives the same handshake.  The keys it makes protect nothing. */
static int fixed_rng(void *ctx, unsigned char *out, size_t n)
{
    uint64_t *s = ctx;
    for (size_t i = 0; i < n; i++) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        out[i] = (unsigned char)*s;
    }
    return 0;
}

static int bio_send(void *ctx, const unsigned char *buf, size_t n)
{
    tls_peer *p = ctx;
    size_t at = p->out.len;
    bytes_add(&p->out, buf, n);
    /* mbedTLS sends one whole record per call: its last byte is ciphertext
     * (or the authentication tag), so the client's check must fail. */
    if (p->corrupt_next && n > 5) {
        p->out.data[at + n - 1] ^= 0x01;
        p->corrupt_next = false;
    }
    return (int)n;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t n)
{
    tls_peer *p = ctx;
    size_t avail = p->in.len - p->in.off;
    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > avail)
        n = avail;
    memcpy(buf, p->in.data + p->in.off, n);
    p->in.off += n;
    return (int)n;
}

tls_peer *tls_peer_new(const tls_peer_options *opt)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    if (psa_crypto_init() != PSA_SUCCESS)
        return NULL;
#endif
    tls_peer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->rng_state = 0x9e3779b97f4a7c15u;
    mbedtls_ssl_config_init(&p->conf);
    mbedtls_ssl_init(&p->ssl);
    mbedtls_x509_crt_init(&p->crt);
    mbedtls_pk_init(&p->key);
#if defined(MBEDTLS_SSL_TICKET_C)
    mbedtls_ssl_ticket_init(&p->tickets);
#endif
    bool ok = mbedtls_x509_crt_parse(&p->crt, (const unsigned char *)tls_peer_cert_pem,
                                     sizeof tls_peer_cert_pem) == 0;
#if MBEDTLS_VERSION_MAJOR >= 3
    ok = ok && mbedtls_pk_parse_key(&p->key, (const unsigned char *)tls_peer_key_pem,
                                    sizeof tls_peer_key_pem, NULL, 0, fixed_rng,
                                    &p->rng_state) == 0;
#else
    ok = ok && mbedtls_pk_parse_key(&p->key, (const unsigned char *)tls_peer_key_pem,
                                    sizeof tls_peer_key_pem, NULL, 0) == 0;
#endif
    ok = ok && mbedtls_ssl_config_defaults(&p->conf, MBEDTLS_SSL_IS_SERVER,
                                           MBEDTLS_SSL_TRANSPORT_STREAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT) == 0;
    if (ok) {
        mbedtls_ssl_conf_rng(&p->conf, fixed_rng, &p->rng_state);
        ok = mbedtls_ssl_conf_own_cert(&p->conf, &p->crt, &p->key) == 0;
    }
    if (ok && opt->ask_client_cert) {
        mbedtls_ssl_conf_ca_chain(&p->conf, &p->crt, NULL);
        mbedtls_ssl_conf_authmode(&p->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
    } else {
        mbedtls_ssl_conf_authmode(&p->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    if (opt->tls12_only) {
#if MBEDTLS_VERSION_MAJOR >= 3
        mbedtls_ssl_conf_max_tls_version(&p->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
        mbedtls_ssl_conf_max_version(&p->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                     MBEDTLS_SSL_MINOR_VERSION_3);
#endif
    }
#if defined(MBEDTLS_SSL_TICKET_C) && defined(MBEDTLS_SSL_SESSION_TICKETS)
    /* Tickets, so that hato's handling of a NewSessionTicket (TLS 1.3: a
     * record after the handshake, in the middle of SMTP replies) runs. */
    ok = ok && mbedtls_ssl_ticket_setup(&p->tickets, fixed_rng, &p->rng_state,
                                        MBEDTLS_CIPHER_AES_128_GCM, 3600) == 0;
    if (ok)
        mbedtls_ssl_conf_session_tickets_cb(&p->conf, mbedtls_ssl_ticket_write,
                                            mbedtls_ssl_ticket_parse, &p->tickets);
#endif
    ok = ok && mbedtls_ssl_setup(&p->ssl, &p->conf) == 0;
    if (!ok) {
        tls_peer_free(p);
        return NULL;
    }
    mbedtls_ssl_set_bio(&p->ssl, p, bio_send, bio_recv, NULL);
    return p;
}

void tls_peer_free(tls_peer *p)
{
    if (p == NULL)
        return;
    mbedtls_ssl_free(&p->ssl);
    mbedtls_ssl_config_free(&p->conf);
#if defined(MBEDTLS_SSL_TICKET_C)
    mbedtls_ssl_ticket_free(&p->tickets);
#endif
    mbedtls_pk_free(&p->key);
    mbedtls_x509_crt_free(&p->crt);
    free(p->in.data);
    free(p->out.data);
    free(p);
}

void tls_peer_feed(tls_peer *p, const uint8_t *data, size_t n)
{
    bytes_add(&p->in, data, n);
}

int tls_peer_handshake(tls_peer *p)
{
    if (p->handshake_done)
        return 1;
    int rc = mbedtls_ssl_handshake(&p->ssl);
    if (rc == 0) {
        p->handshake_done = true;
        return 1;
    }
    return rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE ? 0 : -1;
}

size_t tls_peer_read(tls_peer *p, char *buf, size_t cap)
{
    if (!p->handshake_done)
        return 0;
    int rc = mbedtls_ssl_read(&p->ssl, (unsigned char *)buf, cap);
    return rc > 0 ? (size_t)rc : 0;
}

void tls_peer_write(tls_peer *p, const char *data, size_t n, bool corrupt)
{
    if (!p->handshake_done)
        return;
    p->corrupt_next = corrupt;
    while (n > 0) {
        int rc = mbedtls_ssl_write(&p->ssl, (const unsigned char *)data, n);
        if (rc <= 0)
            break;
        data += rc;
        n -= (size_t)rc;
    }
    p->corrupt_next = false;
}

void tls_peer_close(tls_peer *p)
{
    if (p->handshake_done)
        mbedtls_ssl_close_notify(&p->ssl);
}

const uint8_t *tls_peer_output(tls_peer *p, size_t *n)
{
    *n = p->out.len - p->out.off;
    return *n > 0 ? p->out.data + p->out.off : NULL;
}

void tls_peer_output_done(tls_peer *p)
{
    p->out.off = p->out.len = 0;
}
