/*
 * tls.h - TLS on memory buffers: no sockets here.
 *
 * The session feeds ciphertext it read with tls_conn_feed() and collects
 * ciphertext to write with tls_conn_output(); plaintext goes through
 * tls_conn_write() and tls_conn_read().  tls_mbedtls.c is the only file that
 * includes mbedTLS, so mbedTLS 3.6 and 2.28 differ in that one place.
 */
#ifndef HATO_TLS_TLS_H
#define HATO_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* What a connection needs to know; the strings are borrowed for the call. */
typedef struct tls_settings {
    bool verify;            /* check chain, validity and host name */
    const char *ca_file;    /* PEM bundle; NULL with ca_path NULL = system store */
    const char *ca_path;    /* directory of PEM files */
} tls_settings;

/* The system's trust store on Debian (ca-certificates). */
#define TLS_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

typedef struct tls_config tls_config; /* trust anchors, RNG: shared by conns */
typedef struct tls_conn tls_conn;     /* one connection's TLS state */

typedef enum tls_status {
    TLS_OK = 0,          /* done (handshake complete / data moved) */
    TLS_WANT_INPUT = 1,  /* needs more ciphertext from the server */
    TLS_CLOSED = 2,      /* the server sent close_notify */
    TLS_FAIL = 3,        /* handshake or record failure; tls_conn_error() */
    TLS_FAIL_VERIFY = 4, /* certificate not trusted, expired, wrong name */
    TLS_NOMEM = 5,
} tls_status;

/* Loads the trust anchors.  NULL on failure with one line in err naming the
 * file or directory and what is wrong with it. */
tls_config *tls_config_new(const tls_settings *s, char *err, size_t errlen);
void tls_config_free(tls_config *cfg);

/* A client connection that sends SNI for server_name (not for an IP
 * literal, RFC 6066 section 3) and, when verifying, checks the certificate
 * holds it (an IP literal is checked against the certificate's iPAddress
 * names).  server_name is copied; cfg must outlive the connection. */
tls_conn *tls_conn_new(tls_config *cfg, const char *server_name, char *err, size_t errlen);
void tls_conn_free(tls_conn *c);

/* Ciphertext read from the network (copied).  False when out of memory. */
bool tls_conn_feed(tls_conn *c, const unsigned char *data, size_t len);
/* True when fed ciphertext has not been consumed yet, or a record already
 * read waits to be delivered: call tls_conn_read() before waiting for the
 * network. */
bool tls_conn_has_input(const tls_conn *c);
/* Ciphertext to write; *len 0 when none.  Valid until the next call.  Send
 * it after every handshake, write, read and close call: a read may queue an
 * alert, a failed handshake the alert that tells the server why. */
const unsigned char *tls_conn_output(tls_conn *c, size_t *len);
void tls_conn_output_done(tls_conn *c, size_t n);

/* Advances the handshake as far as the input allows: TLS_WANT_INPUT until
 * done, then TLS_OK; TLS_FAIL_VERIFY for a certificate that does not pass
 * (tls_conn_error() says why), TLS_FAIL for other failures.  A failed
 * connection stays failed. */
tls_status tls_conn_handshake(tls_conn *c);
/* Encrypts all len bytes into the output, or none: TLS_NOMEM when they do
 * not fit beside the output not yet sent (about 1 MiB in all), and the
 * connection stays usable. */
tls_status tls_conn_write(tls_conn *c, const unsigned char *data, size_t len);
/* Decrypts up to cap bytes: TLS_OK with *got > 0, TLS_WANT_INPUT with *got
 * 0, TLS_CLOSED after the server's close_notify, TLS_FAIL (with the alert
 * the server sent, if any).  TLS 1.3 session tickets are skipped. */
tls_status tls_conn_read(tls_conn *c, unsigned char *dst, size_t cap, size_t *got);
/* Queues close_notify (after a completed handshake). */
void tls_conn_close(tls_conn *c);

/* The last failure, one line for a person: for a certificate problem it
 * names the problem with its detail (expiry date, the names the certificate
 * holds and the name expected, the issuer and the trust store searched) and
 * the setting that changes it (smtp_tls_CAfile, smtp_tls_security_level). */
const char *tls_conn_error(const tls_conn *c);
/* After the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384, certificate
 * CN=localhost verified" (or "not verified"). */
const char *tls_conn_summary(const tls_conn *c);

/* The library loaded at run time: "Mbed TLS 3.6.6", "mbed TLS 2.28.3". */
const char *tls_backend_version(void);

#endif
