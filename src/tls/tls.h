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

/* A pinned digest (HATO_TLS_FINGERPRINT): of the whole certificate (DER) or
 * of its SubjectPublicKeyInfo (DER), as Postfix's
 * smtp_tls_fingerprint_cert_match and smtp_tls_fingerprint_pkey_match. */
#define TLS_PIN_MAX 64 /* SHA-512 */
typedef struct tls_pin {
    bool pkey;
    size_t len;
    unsigned char digest[TLS_PIN_MAX];
} tls_pin;

/* SHA-256 of a server key, the TOFU record. */
#define TLS_KEY_ID_LEN 32

/* What a connection needs to know; the strings and arrays are borrowed for
 * the call (tls_config_new copies what it keeps). */
typedef struct tls_settings {
    bool verify;            /* check chain, validity and host name */
    const char *ca_file;    /* PEM bundle; NULL with ca_path NULL = system store */
    const char *ca_path;    /* directory of PEM files */
    int min_version;        /* 12 (also when 0) or 13 */
    const char *cert_file;  /* client certificate, PEM; NULL: none */
    const char *key_file;   /* its private key, PEM; NULL: inside cert_file */
    const tls_pin *pins;    /* npins > 0: the leaf must match one (no CA) */
    size_t npins;
    const char *pin_digest; /* "sha256" (also when NULL), "sha384", "sha512", "sha1" */
    bool tofu;              /* trust on first use: tofu_key, when known, must match */
    bool tofu_known;        /* a key was recorded before */
    unsigned char tofu_key[TLS_KEY_ID_LEN];
    const char *tofu_file;  /* the record, for messages */
    const char *tofu_peer;  /* "[host]:port", for the accept command in messages */
    int level;              /* the policy (hato_tls_level), bound into saved sessions */
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
/* Releases the ciphertext buffers while they are empty (an idle kept
 * connection); they grow again when needed. */
void tls_conn_trim(tls_conn *c);

/* Advances the handshake as far as the input allows: TLS_WANT_INPUT until
 * done, then TLS_OK; TLS_FAIL_VERIFY for a certificate that does not pass
 * (tls_conn_error() says why), TLS_FAIL for other failures.  With pins or
 * TOFU the server's certificate is checked before TLS_OK, and a mismatch is
 * TLS_FAIL_VERIFY with a bad_certificate alert queued: nothing else has been
 * sent.  A failed connection stays failed. */
tls_status tls_conn_handshake(tls_conn *c);
/* Encrypts all len bytes into the output, or none: TLS_NOMEM when they do
 * not fit beside the output not yet sent (about 1 MiB in all), and the
 * connection stays usable. */
tls_status tls_conn_write(tls_conn *c, const unsigned char *data, size_t len);
/* Decrypts up to cap bytes: TLS_OK with *got > 0, TLS_WANT_INPUT with *got
 * 0, TLS_CLOSED after the server's close_notify, TLS_FAIL (with the alert
 * the server sent, if any).  A TLS 1.3 session ticket read on the way is
 * kept for tls_conn_take_session(). */
tls_status tls_conn_read(tls_conn *c, unsigned char *dst, size_t cap, size_t *got);
/* Queues close_notify (after a completed handshake). */
void tls_conn_close(tls_conn *c);

/* The last failure, one line for a person: for a certificate problem it
 * names the problem with its detail (expiry date, the names the certificate
 * holds and the name expected, the issuer and the trust store searched) and
 * the setting that changes it (smtp_tls_CAfile, smtp_tls_security_level). */
const char *tls_conn_error(const tls_conn *c);
/* After the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384, certificate
 * CN=localhost verified, new session" (or "not verified", "matches a pinned
 * fingerprint", ...; "session resumed"). */
const char *tls_conn_summary(const tls_conn *c);

/* After the handshake: whether it resumed an earlier session (no
 * certificate was sent: the checks made when the session was new stand). */
bool tls_conn_resumed(const tls_conn *c);
/* After the handshake with HATO_TLS_TOFU: no key was recorded yet, the
 * caller records tls_conn_peer_key_id() now. */
bool tls_conn_tofu_first(const tls_conn *c);
/* After the handshake: "TLSv1.3", and the suite's IANA name
 * ("TLS_AES_256_GCM_SHA384"); "" before. */
const char *tls_conn_version(const tls_conn *c);
const char *tls_conn_cipher(const tls_conn *c);
/* SHA-256 of the server's SubjectPublicKeyInfo; false when the handshake
 * carried no certificate (a resumed session without one). */
bool tls_conn_peer_key_id(const tls_conn *c, unsigned char out[TLS_KEY_ID_LEN]);
/* Digest bytes as Postfix prints fingerprints: "AB:CD:..." (cap >= 3 n). */
void tls_colon_hex(const unsigned char *d, size_t n, char *dst, size_t cap);

/* For a probe: one line per certificate the server sent, leaf first:
 * subject, issuer, validity (UTC), SHA-256 of the certificate and of its
 * public key (colon hex), and the verification result. */
void tls_conn_describe_chain(const tls_conn *c, void (*line)(void *user, const char *text),
                             void *user);

/* Channel binding data (RFC 5929, RFC 9266) into out (room for *len bytes,
 * at least 32); *len set to the length.  "tls-exporter": 32 bytes, TLS 1.3
 * only (mbedTLS does not tell whether a TLS 1.2 handshake used the extended
 * master secret, without which RFC 9266 forbids it).  "tls-unique": the
 * first Finished message's verify_data, TLS 1.2 only.  False when the type
 * is unknown or unavailable on this connection. */
bool tls_conn_channel_binding(tls_conn *c, const char *type, unsigned char *out, size_t *len);

/* ---- session resumption ---------------------------------------------
 * A saved session is mbedTLS's serialised session behind a small header
 * holding a digest of everything its checks depended on (level, server
 * name, trust anchors, pins, TOFU key, minimum version, client
 * certificate, library version): a resumed handshake skips the certificate
 * checks, so a session is offered only under the same settings. */

/* Offers a saved session before the handshake.  False, with the reason in
 * why, when it does not apply (other settings, too old, damaged, another
 * library version): then the handshake is a full one. */
bool tls_conn_offer_session(tls_conn *c, const unsigned char *data, size_t len, char *why,
                            size_t whylen);
/* A session worth saving appeared (after a TLS 1.2 handshake; after a
 * TLS 1.3 ticket, which comes with the first reads): true with *data, a new
 * allocation the caller owns and releases with tls_session_free(). */
bool tls_conn_take_session(tls_conn *c, unsigned char **data, size_t *len);
/* Wipes and frees a saved session; NULL is fine. */
void tls_session_free(unsigned char *data, size_t len);

/* The library loaded at run time: "Mbed TLS 3.6.6", "mbed TLS 2.28.3". */
const char *tls_backend_version(void);

#endif
