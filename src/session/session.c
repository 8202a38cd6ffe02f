/*
 * session.c - the public sans-I/O session: the SMTP state machine with TLS
 * between it and the caller's socket.
 *
 * Without TLS the SMTP output is the wire output.  With TLS, input is
 * ciphertext that goes through the TLS layer before the SMTP machine sees
 * it, and the SMTP output is encrypted on its way out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/options.h"
#include "message/message.h"
#include "session/smtp.h"
#include "tls/tls.h"

/* Plaintext decrypted per step; a TLS record holds at most 16 KiB. */
#define PLAIN_PIECE (16 * 1024)
/* Plaintext encrypted per output call: four full records. */
#define ENCRYPT_PIECE (64 * 1024)

typedef enum tls_phase {
    PHASE_PLAIN,       /* no TLS (yet) */
    PHASE_HANDSHAKE,
    PHASE_ESTABLISHED,
} tls_phase;

struct hato_session {
    hato_options *opt;   /* owned copy */
    smtp *core;          /* owned */
    tls_config *tlscfg;  /* owned, made when TLS starts */
    tls_conn *tls;       /* owned */
    tls_phase phase;
    char peer[128];
};

static void start_tls(hato_session *s);

hato_session *hato_session_new(const hato_options *o, hato_message *m, const char *peer_address)
{
    if (o == NULL || m == NULL || o->host == NULL)
        return NULL;
    hato_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    if ((s->opt = options_copy(o)) == NULL || (s->core = smtp_new(s->opt, m)) == NULL) {
        hato_session_free(s);
        return NULL;
    }
    snprintf(s->peer, sizeof s->peer, "%s", peer_address ? peer_address : "");
    message_reset(m);
    if (s->opt->tls_wrapper)
        /* RFC 8314: the handshake comes before the greeting. */
        start_tls(s);
    return s;
}

void hato_session_free(hato_session *s)
{
    if (s == NULL)
        return;
    tls_conn_free(s->tls);
    tls_config_free(s->tlscfg);
    smtp_free(s->core);
    hato_options_free(s->opt);
    free(s);
}

static void fail_tls(hato_session *s, tls_status st)
{
    const char *why = s->tls ? tls_conn_error(s->tls) : "";
    if (st == TLS_NOMEM)
        smtp_fail(s->core, HATO_E_NOMEM, HATO_LAYER_TLS, true, "out of memory in TLS");
    else if (st == TLS_FAIL_VERIFY)
        /* Postfix defers a certificate failure: a renewed certificate or a
         * corrected trust store lets the message go later. */
        smtp_fail(s->core, HATO_E_TLS_VERIFY, HATO_LAYER_TLS, true,
                  "TLS with %s failed: %s", s->opt->host, why);
    else if (st == TLS_CLOSED)
        smtp_eof(s->core);
    else
        smtp_fail(s->core, HATO_E_TLS, HATO_LAYER_TLS, true, "TLS with %s failed: %s",
                  s->opt->host, why);
}

static void start_tls(hato_session *s)
{
    const hato_options *o = s->opt;
    char err[512];
    tls_settings ts = {
        .verify = o->tls_level == HATO_TLS_VERIFY,
        .ca_file = o->ca_file,
        .ca_path = o->ca_path,
    };
    if ((s->tlscfg = tls_config_new(&ts, err, sizeof err)) == NULL) {
        smtp_fail(s->core, HATO_E_CONFIG, HATO_LAYER_TLS, false, "%s", err);
        return;
    }
    if ((s->tls = tls_conn_new(s->tlscfg, options_tls_name(o), err, sizeof err)) == NULL) {
        smtp_fail(s->core, HATO_E_TLS, HATO_LAYER_TLS, true, "%s", err);
        return;
    }
    s->phase = PHASE_HANDSHAKE;
    log_line(&o->log, HATO_LOG_DEBUG, "tls: handshake with %s (%s)", options_tls_name(o),
             ts.verify ? "verifying" : "not verifying");
    tls_status st = tls_conn_handshake(s->tls);
    if (st != TLS_OK && st != TLS_WANT_INPUT)
        fail_tls(s, st);
}

static void handshake_step(hato_session *s)
{
    tls_status st = tls_conn_handshake(s->tls);
    if (st == TLS_WANT_INPUT)
        return;
    if (st != TLS_OK) {
        fail_tls(s, st);
        return;
    }
    s->phase = PHASE_ESTABLISHED;
    log_line(&s->opt->log, HATO_LOG_INFO, "TLS with %s: %s", s->opt->host,
             tls_conn_summary(s->tls));
    if (s->opt->tls_wrapper)
        smtp_tls_wrapped(s->core);
    else
        smtp_tls_started(s->core);
}

/* Moves the SMTP machine's output into TLS records. */
static void encrypt_output(hato_session *s)
{
    buf *out = smtp_output(s->core);
    if (buf_size(out) == 0)
        return;
    /* A few full records at a time keeps the ciphertext buffer small. */
    size_t n = buf_size(out) < ENCRYPT_PIECE ? buf_size(out) : ENCRYPT_PIECE;
    tls_status st = tls_conn_write(s->tls, buf_head(out), n);
    if (st != TLS_OK) {
        fail_tls(s, st);
        return;
    }
    buf_consume(out, n);
}

unsigned hato_session_want(const hato_session *s)
{
    unsigned core = smtp_want(s->core);
    unsigned w = 0;
    if (s->tls != NULL) {
        size_t pending;
        tls_conn_output(s->tls, &pending);
        if (pending > 0)
            w |= HATO_WANT_WRITE;
    }
    if (core & SMTP_WANT_DONE)
        /* After a failure the connection is given up; after a success the
         * last records (close_notify) still go out. */
        return w && smtp_error(s->core) == NULL ? w : HATO_WANT_DONE;
    if (s->phase == PHASE_HANDSHAKE)
        return w ? w : HATO_WANT_READ;
    if (core & SMTP_WANT_WRITE)
        w |= HATO_WANT_WRITE;
    if (core & SMTP_WANT_READ)
        w |= HATO_WANT_READ;
    return w;
}

const uint8_t *hato_session_output(hato_session *s, size_t *len)
{
    if (s->phase == PHASE_PLAIN) {
        buf *out = smtp_output(s->core);
        *len = buf_size(out);
        return buf_head(out);
    }
    if (s->phase == PHASE_ESTABLISHED) {
        size_t pending;
        tls_conn_output(s->tls, &pending);
        /* Fill records only once the previous ones left: fixed memory. */
        if (pending == 0)
            encrypt_output(s);
    }
    return tls_conn_output(s->tls, len);
}

void hato_session_output_done(hato_session *s, size_t n)
{
    if (s->phase == PHASE_PLAIN)
        buf_consume(smtp_output(s->core), n);
    else
        tls_conn_output_done(s->tls, n);
}

/* After plaintext input: the machine may now want TLS. */
static void after_input(hato_session *s)
{
    if (s->phase == PHASE_PLAIN && (smtp_want(s->core) & SMTP_WANT_TLS))
        start_tls(s);
}

static hato_code status_of(const hato_session *s)
{
    const hato_error *e = smtp_error(s->core);
    return e ? e->code : HATO_OK;
}

hato_code hato_session_input(hato_session *s, const uint8_t *data, size_t len)
{
    if (smtp_want(s->core) & SMTP_WANT_DONE)
        return status_of(s) ? status_of(s) : HATO_E_STATE;
    if (s->phase == PHASE_PLAIN) {
        smtp_input(s->core, (const char *)data, len);
        after_input(s);
        return status_of(s);
    }
    if (!tls_conn_feed(s->tls, data, len)) {
        smtp_fail(s->core, HATO_E_NOMEM, HATO_LAYER_TLS, true, "out of memory in TLS");
        return status_of(s);
    }
    if (s->phase == PHASE_HANDSHAKE)
        handshake_step(s);
    while (s->phase == PHASE_ESTABLISHED && !(smtp_want(s->core) & SMTP_WANT_DONE)) {
        unsigned char plain[PLAIN_PIECE];
        size_t got = 0;
        tls_status st = tls_conn_read(s->tls, plain, sizeof plain, &got);
        if (got > 0)
            smtp_input(s->core, (const char *)plain, got);
        if (st == TLS_WANT_INPUT && got == 0)
            break;
        if (st != TLS_OK && st != TLS_WANT_INPUT) {
            fail_tls(s, st);
            break;
        }
    }
    return status_of(s);
}

hato_code hato_session_input_eof(hato_session *s)
{
    smtp_eof(s->core);
    return status_of(s);
}

int hato_session_timeout(const hato_session *s)
{
    if (smtp_want(s->core) & SMTP_WANT_DONE)
        return -1;
    hato_timeout kind = s->phase == PHASE_HANDSHAKE ? HATO_TIMEOUT_STARTTLS : smtp_timeout_kind(s->core);
    return (int)s->opt->timeout_ms[kind];
}

hato_code hato_session_timed_out(hato_session *s)
{
    hato_timeout kind = s->phase == PHASE_HANDSHAKE ? HATO_TIMEOUT_STARTTLS : smtp_timeout_kind(s->core);
    if (s->phase == PHASE_HANDSHAKE)
        smtp_fail(s->core, HATO_E_TIMEOUT, HATO_LAYER_TLS, true,
                  "timed out: TLS handshake with %s did not finish within %u s (%s)",
                  s->opt->host, (s->opt->timeout_ms[kind] + 999) / 1000,
                  smtp_timeout_key(kind));
    else
        smtp_timed_out(s->core, s->opt->timeout_ms[kind]);
    return status_of(s);
}

hato_code hato_session_io_failed(hato_session *s, const char *reason)
{
    smtp_fail(s->core, HATO_E_NETWORK, HATO_LAYER_TRANSPORT, true, "connection to %s%s%s%s: %s",
              s->opt->host, s->peer[0] ? " [" : "", s->peer, s->peer[0] ? "]" : "",
              reason ? reason : "failed");
    return status_of(s);
}

const hato_error *hato_session_error(const hato_session *s)
{
    return smtp_error(s->core);
}
