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
#include <time.h>

#include "api/error.h"
#include "api/options.h"
#include "message/message.h"
#include "session/session.h"
#include "session/smtp.h"
#include "tls/state.h"
#include "tls/tls.h"
#include "util/secret.h"

/* Plaintext decrypted per step; a TLS record holds at most 16 KiB. */
#define PLAIN_PIECE (16 * 1024)
/* Plaintext encrypted per output call: four full records. */
#define ENCRYPT_PIECE (16 * 1024)
/* A saved TLS session: a ticket (Postfix's are ~200 bytes, some servers'
 * a few KB) and, with the certificate chain kept, a few KB more. */
#define SESSION_FILE_MAX (64 * 1024)
/* A TOFU record: two comment lines and one fingerprint line. */
#define TOFU_FILE_MAX 4096

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
    session_cache *cache;  /* borrowed from the client, may be NULL */
    char session_file[TLS_STATE_PATH_MAX]; /* "" without a state directory */
    char tofu_file[TLS_STATE_PATH_MAX];
    unsigned char *fresh; /* owned: the newest TLS session from the server,
                             saved when the session ends (save_session) */
    size_t fresh_len;
};

static void start_tls(hato_session *s);
static void save_session(hato_session *s);

void session_cache_clear(session_cache *c)
{
    if (c == NULL)
        return;
    if (c->data != NULL)
        tls_session_free(c->data, c->len);
    c->data = NULL;
    c->len = 0;
}

hato_session *hato_session_new(const hato_options *o, hato_message *m, const char *peer_address)
{
    return session_new_cached(o, m, peer_address, NULL);
}

hato_session *session_new_cached(const hato_options *o, hato_message *m,
                                 const char *peer_address, session_cache *cache)
{
    if (o == NULL || m == NULL || o->host == NULL)
        return NULL;
    hato_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cache = cache;
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
    save_session(s);
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
    else if (strncmp(why, "TLS ", 4) == 0)
        /* The TLS layer's text already says what failed with whom. */
        smtp_fail(s->core, HATO_E_TLS, HATO_LAYER_TLS, true, "%s", why);
    else
        smtp_fail(s->core, HATO_E_TLS, HATO_LAYER_TLS, true, "TLS with %s failed: %s",
                  s->opt->host, why);
}

/* The TOFU record: comment lines, then "pkey-sha256 AB:CD:...". */
static bool parse_tofu(const unsigned char *data, size_t len, unsigned char key[TLS_KEY_ID_LEN])
{
    static const char tag[] = "pkey-sha256 ";
    const char *p = (const char *)data, *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if ((size_t)(eol - p) == sizeof tag - 1 + 3 * TLS_KEY_ID_LEN - 1 &&
            memcmp(p, tag, sizeof tag - 1) == 0) {
            const char *h = p + sizeof tag - 1;
            for (size_t i = 0; i < TLS_KEY_ID_LEN; i++, h += 3) {
                unsigned v;
                /* Two hex digits cannot overflow; both are checked below. */
                // NOLINTNEXTLINE(cert-err34-c)
                if ((i > 0 && h[-1] != ':') || sscanf(h, "%2x", &v) != 1 ||
                    strchr("0123456789abcdefABCDEF", h[0]) == NULL ||
                    strchr("0123456789abcdefABCDEF", h[1]) == NULL)
                    return false;
                key[i] = (unsigned char)v;
            }
            return true;
        }
        p = eol + 1;
    }
    return false;
}

/* Reads the TOFU record into ts; false after recording a failure. */
static bool load_tofu(hato_session *s, tls_settings *ts, char *peer, size_t peerlen)
{
    const hato_options *o = s->opt;
    char err[600];
    if (o->state_dir == NULL) {
        smtp_fail(s->core, HATO_E_CONFIG, HATO_LAYER_TLS, false,
                  "smtp_tls_security_level = tofu needs a state directory to record the "
                  "server's key in (hato_options_set_state_dir)");
        return false;
    }
    if (!tls_state_path(o->state_dir, "tofu", o->host, options_port(o), s->tofu_file,
                        sizeof s->tofu_file, err, sizeof err)) {
        smtp_fail(s->core, HATO_E_CONFIG, HATO_LAYER_TLS, false, "%s", err);
        return false;
    }
    snprintf(peer, peerlen, "[%s]:%u", o->host, (unsigned)options_port(o));
    ts->tofu = true;
    ts->tofu_file = s->tofu_file;
    ts->tofu_peer = peer;
    unsigned char *data = NULL;
    size_t len = 0;
    tls_state_read_result r = tls_state_read(s->tofu_file, TOFU_FILE_MAX, &data, &len, err,
                                             sizeof err);
    if (r == TLS_STATE_MISSING)
        return true; /* first contact */
    bool ok = r == TLS_STATE_FOUND && parse_tofu(data, len, ts->tofu_key);
    free(data);
    if (!ok) {
        /* Fail closed: a damaged record must not turn into a first contact. */
        smtp_fail(s->core, HATO_E_CONFIG, HATO_LAYER_TLS, false,
                  "trust-on-first-use record %s cannot be used (%s); if the server's key "
                  "should be recorded again, remove it: rm %s",
                  s->tofu_file, r == TLS_STATE_FOUND ? "no pkey-sha256 line" : err,
                  s->tofu_file);
        return false;
    }
    ts->tofu_known = true;
    return true;
}

/* Records the key of the first contact; false after recording a failure. */
static bool record_tofu(hato_session *s)
{
    const hato_options *o = s->opt;
    unsigned char key[TLS_KEY_ID_LEN];
    char hex[3 * TLS_KEY_ID_LEN], err[600], text[512], when[32] = "";
    if (!tls_conn_peer_key_id(s->tls, key)) {
        smtp_fail(s->core, HATO_E_TLS_VERIFY, HATO_LAYER_TLS, true,
                  "TLS with %s: no server key to record for trust on first use", o->host);
        return false;
    }
    tls_colon_hex(key, sizeof key, hex, sizeof hex);
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    snprintf(text, sizeof text,
             "# hato trust-on-first-use record for [%s]:%u (%s), first seen %s\n"
             "# to accept a new key: hato --tofu-accept [%s]:%u, or remove this file\n"
             "pkey-sha256 %s\n",
             o->host, (unsigned)options_port(o), options_tls_name(o), when, o->host,
             (unsigned)options_port(o), hex);
    if (!tls_state_write(s->tofu_file, text, strlen(text), true, err, sizeof err)) {
        /* Without the record every later contact would be a first one. */
        smtp_fail(s->core, HATO_E_CONFIG, HATO_LAYER_TLS, false,
                  "cannot record the key of %s for trust on first use: %s", o->host, err);
        return false;
    }
    log_line(&o->log, HATO_LOG_INFO, "tls: first contact with [%s]:%u: recorded its key, "
             "pkey sha256 %s, in %s", o->host, (unsigned)options_port(o), hex, s->tofu_file);
    return true;
}

/* Offers a session saved by this client or, failing that, by an earlier
 * process.  Any problem only means a full handshake. */
static void offer_session(hato_session *s)
{
    const logger *log = &s->opt->log;
    char why[300], err[600];
    if (s->cache != NULL && s->cache->data != NULL) {
        if (tls_conn_offer_session(s->tls, s->cache->data, s->cache->len, why, sizeof why)) {
            log_line(log, HATO_LOG_DEBUG, "tls: offering the session of the last connection");
            return;
        }
        log_line(log, HATO_LOG_DEBUG, "tls: not offering the last connection's session: %s",
                 why);
    }
    if (s->session_file[0] == '\0')
        return;
    unsigned char *data = NULL;
    size_t len = 0;
    tls_state_read_result r = tls_state_read(s->session_file, SESSION_FILE_MAX, &data, &len,
                                             err, sizeof err);
    if (r == TLS_STATE_FOUND) {
        if (tls_conn_offer_session(s->tls, data, len, why, sizeof why))
            log_line(log, HATO_LOG_DEBUG, "tls: offering the session saved in %s",
                     s->session_file);
        else
            log_line(log, HATO_LOG_DEBUG, "tls: ignoring the session saved in %s: %s; it "
                     "will be replaced", s->session_file, why);
    } else if (r == TLS_STATE_ERROR) {
        log_line(log, HATO_LOG_DEBUG, "tls: ignoring the saved session: %s", err);
    }
    tls_session_free(data, len);
}

/* Keeps a session the TLS layer made ready: in the client, and in the
 * state directory. */
/* A session the server handed over (after the handshake, or a TLS 1.3
 * ticket later) is only kept here: writing it to the state directory
 * costs an fsync, which must not sit between two flights of the
 * conversation.  save_session() files it when the session ends. */
static void store_session(hato_session *s)
{
    unsigned char *data;
    size_t len;
    if (s->tls == NULL || !tls_conn_take_session(s->tls, &data, &len))
        return;
    if (s->fresh != NULL)
        tls_session_free(s->fresh, s->fresh_len);
    s->fresh = data;
    s->fresh_len = len;
}

static void save_session(hato_session *s)
{
    if (s->fresh == NULL)
        return;
    if (s->session_file[0] != '\0') {
        char err[600];
        if (tls_state_write(s->session_file, s->fresh, s->fresh_len, false, err, sizeof err))
            log_line(&s->opt->log, HATO_LOG_DEBUG, "tls: saved the session in %s",
                     s->session_file);
        else
            log_line(&s->opt->log, HATO_LOG_WARNING, "tls: cannot save the session for "
                     "resumption: %s", err);
    }
    if (s->cache != NULL) {
        session_cache_clear(s->cache);
        s->cache->data = s->fresh;
        s->cache->len = s->fresh_len;
    } else {
        tls_session_free(s->fresh, s->fresh_len);
    }
    s->fresh = NULL;
    s->fresh_len = 0;
}

static void start_tls(hato_session *s)
{
    const hato_options *o = s->opt;
    char err[600], tofu_peer[300] = "";
    hato_tls_level level = o->tls_level;
    tls_settings ts = {
        .verify = level == HATO_TLS_VERIFY || level == HATO_TLS_SECURE,
        .ca_file = o->ca_file,
        .ca_path = o->ca_path,
        .min_version = o->tls_min_version == HATO_TLS_V1_3 ? 13 : 12,
        .cert_file = o->cert_file,
        .key_file = o->key_file,
        .pin_digest = o->pin_digest,
        .level = (int)level,
    };
    if (level == HATO_TLS_FINGERPRINT) {
        if (o->npins == 0) {
            smtp_fail(s->core, HATO_E_CONFIG, HATO_LAYER_TLS, false,
                      "smtp_tls_security_level = fingerprint needs a pin in "
                      "smtp_tls_fingerprint_cert_match or smtp_tls_fingerprint_pkey_match");
            return;
        }
        ts.pins = o->pins;
        ts.npins = o->npins;
    }
    if (level == HATO_TLS_TOFU && !load_tofu(s, &ts, tofu_peer, sizeof tofu_peer))
        return;
    if (o->state_dir != NULL &&
        !tls_state_path(o->state_dir, "sessions", o->host, options_port(o), s->session_file,
                        sizeof s->session_file, err, sizeof err)) {
        smtp_fail(s->core, HATO_E_CONFIG, HATO_LAYER_TLS, false, "%s", err);
        return;
    }
    if ((s->tlscfg = tls_config_new(&ts, err, sizeof err)) == NULL) {
        smtp_fail(s->core, HATO_E_CONFIG, HATO_LAYER_TLS, false, "%s", err);
        return;
    }
    if ((s->tls = tls_conn_new(s->tlscfg, options_tls_name(o), err, sizeof err)) == NULL) {
        smtp_fail(s->core, HATO_E_TLS, HATO_LAYER_TLS, true, "%s", err);
        return;
    }
    offer_session(s);
    s->phase = PHASE_HANDSHAKE;
    static const char *const checks[] = {
        [HATO_TLS_NONE] = "not verifying", [HATO_TLS_MAY] = "not verifying",
        [HATO_TLS_ENCRYPT] = "not verifying", [HATO_TLS_VERIFY] = "verifying",
        [HATO_TLS_SECURE] = "verifying", [HATO_TLS_FINGERPRINT] = "checking pins",
        [HATO_TLS_TOFU] = "trust on first use",
    };
    log_line(&o->log, HATO_LOG_DEBUG, "tls: handshake with %s (%s)", options_tls_name(o),
             (unsigned)level <= HATO_TLS_TOFU ? checks[level] : "?");
    tls_status st = tls_conn_handshake(s->tls);
    if (st != TLS_OK && st != TLS_WANT_INPUT)
        fail_tls(s, st);
}

/* Hands the SMTP machine the channel bindings this link offers (SCRAM-PLUS).
 * Only tls-exporter: tls-unique is safe only with the extended master secret
 * (RFC 7627; the triple-handshake attack), and mbedTLS does not say whether
 * a TLS 1.2 handshake used it.  So -PLUS needs TLS 1.3 for now. */
static void pass_channel_bindings(hato_session *s)
{
    static const char *const types[] = {"tls-exporter"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        unsigned char cb[SMTP_CB_MAX];
        size_t len = sizeof cb;
        if (tls_conn_channel_binding(s->tls, types[i], cb, &len))
            smtp_set_channel_binding(s->core, types[i], cb, len);
        secret_wipe(cb, sizeof cb);
    }
}

static void report_chain_line(void *user, const char *text)
{
    smtp_report(user, "  %s", text);
}

/* Probe mode: what a person checks with openssl s_client. */
static void report_tls(hato_session *s)
{
    if (!smtp_probing(s->core))
        return; /* describing the chain costs more than the whole record layer */
    smtp_report(s->core, "TLS: %s", tls_conn_summary(s->tls));
    smtp_report(s->core, "certificate chain as the server sent it:");
    tls_conn_describe_chain(s->tls, report_chain_line, s->core);
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
    /* TOFU's first contact: recorded before any SMTP goes over the link. */
    if (tls_conn_tofu_first(s->tls) && !record_tofu(s))
        return;
    s->phase = PHASE_ESTABLISHED;
    log_line(&s->opt->log, HATO_LOG_INFO, "TLS with %s: %s", s->opt->host,
             tls_conn_summary(s->tls));
    report_tls(s);
    store_session(s);
    pass_channel_bindings(s);
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
    store_session(s); /* a ticket read on the way */
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
    if (s->phase == PHASE_PLAIN) {
        buf_consume(smtp_output(s->core), n);
        return;
    }
    tls_conn_output_done(s->tls, n);
    size_t pending;
    tls_conn_output(s->tls, &pending);
    /* A kept connection waiting for its next message holds no buffers
     * beyond the TLS library's own. */
    if (pending == 0 && smtp_idle(s->core))
        tls_conn_trim(s->tls);
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
    /* Idle connections still listen: a 421 or close_notify ends them. */
    if ((smtp_want(s->core) & SMTP_WANT_DONE) && !smtp_idle(s->core))
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
    while (s->phase == PHASE_ESTABLISHED &&
           (!(smtp_want(s->core) & SMTP_WANT_DONE) || smtp_idle(s->core))) {
        unsigned char plain[PLAIN_PIECE];
        size_t got = 0;
        tls_status st = tls_conn_read(s->tls, plain, sizeof plain, &got);
        store_session(s); /* TLS 1.3 tickets arrive with the first reads */
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

bool hato_session_idle(const hato_session *s)
{
    return smtp_idle(s->core);
}

hato_code hato_session_next(hato_session *s, hato_message *m)
{
    if (m == NULL || !smtp_idle(s->core))
        return HATO_E_STATE;
    message_reset(m);
    smtp_next(s->core, m);
    return HATO_OK;
}

hato_code hato_session_quit(hato_session *s)
{
    if (!smtp_idle(s->core))
        return HATO_E_STATE;
    smtp_quit(s->core);
    return HATO_OK;
}

smtp *session_core(hato_session *s)
{
    return s->core;
}

tls_conn *session_tls(hato_session *s)
{
    return s->tls;
}
