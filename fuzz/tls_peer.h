/*
 * tls_peer.h - the server's side of TLS for the session_tls fuzz target:
 * an mbedTLS server on memory buffers, so the fuzzer's script can play an
 * SMTP server behind a real handshake and reach everything hato does after
 * it (the second EHLO, AUTH over TLS, SCRAM-PLUS, EXTERNAL, close_notify,
 * a damaged record).  Its own random bytes are a fixed stream; hato's
 * (and, under mbedTLS 3.6, PSA's for the TLS 1.3 key shares) are not, so
 * the handshake's bytes differ from run to run.  What hato does with the
 * SMTP inside does not: an input takes the same path through hato twice,
 * which is what the fuzzer's coverage and a replayed crash rely on.
 *
 * The certificate and key are fuzz/tls/cert.pem and key.pem: a self-signed
 * P-256 certificate for relay.example, a test fixture only.
 */
#ifndef HATO_FUZZ_TLS_PEER_H
#define HATO_FUZZ_TLS_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tls_peer tls_peer;

typedef struct tls_peer_options {
    bool tls12_only;     /* else TLS 1.3 when the client offers it */
    bool ask_client_cert; /* CertificateRequest (optional), for EXTERNAL */
} tls_peer_options;

/* The fixture's PEM text, for the client's trust anchor and its own
 * certificate (the same pair serves both sides). */
extern const char tls_peer_cert_pem[];
extern const char tls_peer_key_pem[];
/* Its SHA-256 fingerprint, colon-separated, as hato_options_add_tls_fingerprint
 * takes it. */
extern const char tls_peer_cert_sha256[];

/* NULL only when out of memory or when the fixture does not load (aborts
 * are the harness's business). */
tls_peer *tls_peer_new(const tls_peer_options *opt);
void tls_peer_free(tls_peer *p);

/* Ciphertext from the client. */
void tls_peer_feed(tls_peer *p, const uint8_t *data, size_t n);
/* Moves the handshake on with what was fed: 1 done, 0 needs more, -1 failed. */
int tls_peer_handshake(tls_peer *p);
/* The client's plaintext, up to cap bytes; 0 when there is none now. */
size_t tls_peer_read(tls_peer *p, char *buf, size_t cap);
/* The server's plaintext, encrypted into the output; with corrupt, one
 * byte of the record's ciphertext is flipped on the way out. */
void tls_peer_write(tls_peer *p, const char *data, size_t n, bool corrupt);
/* close_notify. */
void tls_peer_close(tls_peer *p);
/* Ciphertext for the client: everything queued, taken whole. */
const uint8_t *tls_peer_output(tls_peer *p, size_t *n);
void tls_peer_output_done(tls_peer *p);

#endif
