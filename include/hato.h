/*
 * hato.h - the public API of libhato, an SMTP submission client.
 *
 * Two ways to send:
 *
 *   - hato_client: blocking.  It resolves, connects (falling back across
 *     addresses), runs TLS and SMTP and returns when the message is sent or
 *     has failed.  Most programs want this.
 *
 *   - hato_session: the protocol core with no I/O.  The caller connects a
 *     socket itself, feeds what it reads to hato_session_input() and writes
 *     what hato_session_output() hands out; TLS runs inside the session on
 *     those bytes.  For event loops.  hato_client is written only against
 *     this API.
 *
 * Both take their settings from a hato_options object and send a
 * hato_message.  A failure is described by a hato_error.
 *
 * Ownership: setters copy their string arguments unless documented
 * otherwise; the caller keeps ownership of what it passes.  Pointers a
 * getter returns belong to the object they came from and stay valid until
 * the next call that changes that object, or until it is freed.
 *
 * Threads: objects are not locked.  Distinct objects may be used from
 * distinct threads at once; one object must not be used from two threads at
 * the same time.  A hato_options may be shared read-only by any number of
 * clients and sessions once configured (they copy what they need when
 * created).  The library keeps no global mutable state beyond a one-time
 * initialisation of its crypto backend, done on first use and thread-safe.
 *
 * Errors: functions returning hato_code return HATO_OK (0) on success.  The
 * codes are only ever appended to; a value never changes meaning.
 */
#ifndef HATO_H
#define HATO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(HATO_BUILDING) && defined(__GNUC__)
#define HATO_EXPORT __attribute__((visibility("default")))
#else
#define HATO_EXPORT
#endif

#define HATO_VERSION_MAJOR 0
#define HATO_VERSION_MINOR 3
#define HATO_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH", and the TLS backend's, e.g.
 * "mbed TLS 3.6.6".  Static strings. */
HATO_EXPORT const char *hato_version(void);
HATO_EXPORT const char *hato_tls_backend_version(void);

/* ------------------------------------------------------------------ */
/* Errors                                                              */

typedef enum hato_code {
    HATO_OK = 0,
    HATO_E_NOMEM = 1,        /* out of memory; nothing was sent */
    HATO_E_ARGUMENT = 2,     /* a bad argument from the caller */
    HATO_E_STATE = 3,        /* call not valid in the object's state */
    HATO_E_RESOLVE = 4,      /* the relay's name did not resolve */
    HATO_E_CONNECT = 5,      /* no address of the relay accepted a connection */
    HATO_E_TIMEOUT = 6,      /* the server did not answer in time */
    HATO_E_NETWORK = 7,      /* read or write failed, or the server hung up */
    HATO_E_TLS = 8,          /* TLS handshake or record failure */
    HATO_E_TLS_VERIFY = 9,   /* the server's certificate did not verify */
    HATO_E_TLS_REQUIRED = 10,/* the security level needs TLS; the server has none */
    HATO_E_PROTOCOL = 11,    /* the server broke the SMTP protocol */
    HATO_E_REPLY = 12,       /* the server refused a command (see reply code) */
    HATO_E_AUTH = 13,        /* the server refused our authentication */
    HATO_E_AUTH_MECH = 14,   /* no SASL mechanism both sides may use */
    HATO_E_SASL = 15,        /* the local SASL library failed */
    HATO_E_RECIPIENTS = 16,  /* the server refused every recipient */
    HATO_E_BODY = 17,        /* the body reader reported an error */
    HATO_E_CONFIG = 18,      /* a setting cannot work (e.g. unreadable CA file) */
    HATO_E_TOO_BIG = 19,     /* larger than the server's SIZE limit; nothing was sent */
    HATO_E_EXTENSION = 20,   /* the message needs an extension the server lacks
                                (8BITMIME, SMTPUTF8, BINARYMIME, REQUIRETLS) */
} hato_code;

/* Which layer a failure arose in. */
typedef enum hato_layer {
    HATO_LAYER_API = 0,       /* the caller's input */
    HATO_LAYER_TRANSPORT = 1, /* name resolution, connect, socket I/O */
    HATO_LAYER_TLS = 2,
    HATO_LAYER_SMTP = 3,      /* replies and the command sequence */
    HATO_LAYER_SASL = 4,      /* authentication */
    HATO_LAYER_MESSAGE = 5,   /* envelope and body */
} hato_layer;

typedef struct hato_error hato_error;

/* Accessors of an error.  All take a non-NULL error; returned strings are
 * never NULL ("" when absent) and live as long as the error. */
HATO_EXPORT hato_code hato_error_code(const hato_error *e);
HATO_EXPORT hato_layer hato_error_layer(const hato_error *e);
/* True when the same send may succeed later unchanged (4xx replies, network
 * trouble, timeouts); false for permanent failures (5xx, bad settings). */
HATO_EXPORT bool hato_error_temporary(const hato_error *e);
/* The SMTP reply code that caused it (e.g. 535), or 0. */
HATO_EXPORT int hato_error_reply_code(const hato_error *e);
/* The RFC 3463 enhanced status code, e.g. "5.7.8", or "". */
HATO_EXPORT const char *hato_error_enhanced_code(const hato_error *e);
/* The server's reply text (lines joined by "; "), or "".  Never holds
 * credentials: a reply to an AUTH step is not echoed. */
HATO_EXPORT const char *hato_error_server_text(const hato_error *e);
/* One line for a person: what failed, with the object and value, and the
 * setting that changes the outcome where there is one. */
HATO_EXPORT const char *hato_error_message(const hato_error *e);
/* "HATO_E_AUTH" and so on. */
HATO_EXPORT const char *hato_code_name(hato_code code);

/* ------------------------------------------------------------------ */
/* Logging                                                             */

typedef enum hato_log_level {
    HATO_LOG_ERROR = 0,
    HATO_LOG_WARNING = 1,
    HATO_LOG_INFO = 2,   /* one line per connection, TLS and AUTH outcome */
    HATO_LOG_DEBUG = 3,  /* each address tried, TLS details */
    HATO_LOG_TRACE = 4,  /* every protocol line, "> " sent, "< " received */
} hato_log_level;

/* Receives one line, without a trailing newline, valid only during the
 * call.  Credentials never reach it at any level: the core replaces AUTH
 * arguments and SASL exchanges with "[redacted]" before the callback runs. */
typedef void (*hato_log_fn)(void *user, hato_log_level level, const char *line);

/* ------------------------------------------------------------------ */
/* Options                                                             */

typedef struct hato_options hato_options;

/* Postfix's smtp_tls_security_level values.  Every level from ENCRYPT up
 * requires TLS. */
typedef enum hato_tls_level {
    HATO_TLS_NONE = 0,        /* never TLS (plain text) */
    HATO_TLS_MAY = 1,         /* STARTTLS when offered, unverified */
    HATO_TLS_ENCRYPT = 2,     /* TLS required, certificate not verified */
    HATO_TLS_VERIFY = 3,      /* TLS required, certificate and name verified (default) */
    HATO_TLS_SECURE = 4,      /* as VERIFY; for a relay the checks are the same */
    HATO_TLS_FINGERPRINT = 5, /* TLS required; the certificate or its public key
                                 must match a pinned digest (no CA involved) */
    HATO_TLS_TOFU = 6,        /* TLS required; trust on first use: the server's
                                 public key is recorded in the state directory on
                                 first contact and must match afterwards */
} hato_tls_level;

typedef enum hato_tls_version {
    HATO_TLS_V1_2 = 12,
    HATO_TLS_V1_3 = 13,
} hato_tls_version;

typedef enum hato_family {
    HATO_FAMILY_ANY = 0,  /* Postfix inet_protocols = all */
    HATO_FAMILY_IPV4 = 1,
    HATO_FAMILY_IPV6 = 2,
} hato_family;

/* SASL security options, Postfix's names (docs/auth.md). */
enum {
    HATO_SASL_NOPLAINTEXT = 1u << 0,  /* no mechanism that sends the secret
                                         itself: PLAIN, LOGIN, XOAUTH2,
                                         OAUTHBEARER */
    HATO_SASL_NOANONYMOUS = 1u << 1,  /* no ANONYMOUS */
    HATO_SASL_NODICTIONARY = 1u << 2, /* no mechanism whose recorded exchange
                                         allows offline password guessing:
                                         PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5,
                                         SCRAM-* */
    HATO_SASL_MUTUAL_AUTH = 1u << 3,  /* only mechanisms that prove the
                                         server knows the password:
                                         SCRAM-*, DIGEST-MD5 */
};

/* Each step's timeout, RFC 5321 section 4.5.3.2, Postfix's key in brackets. */
typedef enum hato_timeout {
    HATO_TIMEOUT_CONNECT = 0,   /* per address (smtp_connect_timeout, 30 s) */
    HATO_TIMEOUT_HELO = 1,      /* greeting, EHLO/HELO, AUTH (smtp_helo_timeout, 300 s) */
    HATO_TIMEOUT_STARTTLS = 2,  /* STARTTLS and handshake (smtp_starttls_timeout, 300 s) */
    HATO_TIMEOUT_MAIL = 3,      /* smtp_mail_timeout, 300 s */
    HATO_TIMEOUT_RCPT = 4,      /* smtp_rcpt_timeout, 300 s */
    HATO_TIMEOUT_DATA_INIT = 5, /* DATA's 354 (smtp_data_init_timeout, 120 s) */
    HATO_TIMEOUT_DATA_XFER = 6, /* each body write (smtp_data_xfer_timeout, 180 s) */
    HATO_TIMEOUT_DATA_DONE = 7, /* reply to the final dot (smtp_data_done_timeout, 600 s) */
    HATO_TIMEOUT_QUIT = 8,      /* smtp_quit_timeout, 300 s */
    HATO_TIMEOUT_COUNT_ = 9
} hato_timeout;

/* A new options object with the defaults noted at each setter, or NULL when
 * out of memory.  Freed with hato_options_free(), which wipes the password. */
HATO_EXPORT hato_options *hato_options_new(void);
HATO_EXPORT void hato_options_free(hato_options *o);

/* The relay: host name or address literal (without brackets) and port.
 * Required.  Port 0 means 587, or 465 in wrapper mode. */
HATO_EXPORT hato_code hato_options_set_relay(hato_options *o, const char *host, uint16_t port);
HATO_EXPORT hato_code hato_options_set_family(hato_options *o, hato_family family);
HATO_EXPORT hato_code hato_options_set_timeout(hato_options *o, hato_timeout which, unsigned milliseconds);

/* TLS: level (default HATO_TLS_VERIFY), implicit TLS from the first byte
 * (RFC 8314; default false, i.e. STARTTLS), trust anchors (default the
 * system store), and the name the certificate must hold (default the relay
 * host).  A NULL path restores the default. */
HATO_EXPORT hato_code hato_options_set_tls_level(hato_options *o, hato_tls_level level);
HATO_EXPORT hato_code hato_options_set_tls_wrapper(hato_options *o, bool implicit_tls);
HATO_EXPORT hato_code hato_options_set_ca_file(hato_options *o, const char *path);
HATO_EXPORT hato_code hato_options_set_ca_path(hato_options *o, const char *directory);
HATO_EXPORT hato_code hato_options_set_tls_server_name(hato_options *o, const char *name);
/* Oldest protocol version accepted (default HATO_TLS_V1_2; older ones are
 * never offered).  HATO_TLS_V1_3 fails against a TLS 1.2-only library or
 * server. */
HATO_EXPORT hato_code hato_options_set_tls_min_version(hato_options *o, hato_tls_version v);
/* A client certificate and its private key (PEM files), for servers that
 * ask for one and for SASL EXTERNAL.  NULL cert clears both. */
HATO_EXPORT hato_code hato_options_set_client_cert(hato_options *o, const char *cert_file, const char *key_file);
/* HATO_TLS_FINGERPRINT: adds a pin, colon-separated hex as Postfix prints
 * it ("AB:CD:..."), of the whole certificate (public_key false) or of its
 * SubjectPublicKeyInfo (public_key true); any one match passes. */
HATO_EXPORT hato_code hato_options_add_tls_fingerprint(hato_options *o, bool public_key, const char *hex);
/* Digest of the pins: "sha256" (default), "sha384", "sha512" or "sha1". */
HATO_EXPORT hato_code hato_options_set_tls_fingerprint_digest(hato_options *o, const char *digest);
/* A directory private to the user (created 0700 when missing) where the
 * library keeps TLS session tickets per relay, so a later process resumes
 * instead of paying a full handshake, and the keys pinned by HATO_TLS_TOFU.
 * NULL (default): no files; sessions are still resumed within one client. */
HATO_EXPORT hato_code hato_options_set_state_dir(hato_options *o, const char *directory);

/* Authentication.  With credentials set, the client authenticates when the
 * server offers AUTH.  The password is copied into memory that is wiped when
 * replaced or freed.  NULL user clears both. */
HATO_EXPORT hato_code hato_options_set_credentials(hato_options *o, const char *user, const char *password);
/* Mechanism filter, Postfix's smtp_sasl_mechanism_filter: names separated by
 * commas or white space, case-insensitive; NULL or "" allows all. */
HATO_EXPORT hato_code hato_options_set_sasl_mechanisms(hato_options *o, const char *filter);
/* HATO_SASL_* flags for unencrypted and for TLS links.  Defaults:
 * NOPLAINTEXT|NOANONYMOUS without TLS, NOANONYMOUS with TLS. */
HATO_EXPORT hato_code hato_options_set_sasl_security(hato_options *o, unsigned plain_link, unsigned tls_link);

/* The name sent in EHLO/HELO (default: the host's name from gethostname(),
 * or "localhost"). */
HATO_EXPORT hato_code hato_options_set_helo_name(hato_options *o, const char *name);

/* EHLO keywords to treat as not offered (Postfix's
 * smtp_discard_ehlo_keywords): "chunking" for a server whose BDAT is
 * broken, "pipelining", "starttls" and so on, separated by commas or
 * spaces, any case; names hato does not use are accepted and change
 * nothing.  NULL or "" (default): none. */
HATO_EXPORT hato_code hato_options_set_discard_ehlo_keywords(hato_options *o, const char *list);

/* Keep the connection (with its TLS session and login) open after a
 * message for up to idle_ms, so that the next hato_client_send reuses it
 * instead of connecting, negotiating TLS and logging in again; a server
 * that closed the idle connection meanwhile is reconnected to without the
 * caller noticing.  0 (default): QUIT after each message.  The connection
 * is closed by hato_client_free. */
HATO_EXPORT hato_code hato_options_set_keep_alive(hato_options *o, unsigned idle_ms);

/* Log callback and the most verbose level it receives (default: none). */
HATO_EXPORT hato_code hato_options_set_log(hato_options *o, hato_log_fn fn, void *user, hato_log_level max_level);

/* Relays: MX records and fallbacks (Postfix's relayhost without brackets
 * and smtp_fallback_relay).
 *
 * Connecting: every name is resolved to its addresses, which are raced
 * (Happy Eyeballs, RFC 8305): IPv6 and IPv4 alternating, IPv6 first; the
 * next address starts 250 ms after the previous one, or at once when it
 * failed; the first connection wins.  Each address may take the
 * HATO_TIMEOUT_CONNECT time, and one name's race at most twice that.
 *
 * hato_options_set_relay_mx: true looks up the relay host's MX records
 * first (Postfix's "relayhost = example.com"; false, the default, is
 * "[example.com]") and connects to the MX hosts in order of preference
 * (equal preferences in the DNS answer's order), each one's addresses
 * raced, on the relay's port.  A domain without MX records is its own
 * host (RFC 5321 section 5.1); a null MX (RFC 7505) fails with a
 * permanent HATO_E_RESOLVE; a failed MX lookup with a temporary one.
 * The certificate is checked against the MX host's name unless
 * hato_options_set_tls_server_name says otherwise.  An address literal
 * is never looked up.  Uses the thread-safe res_n* resolver.
 *
 * hato_options_add_fallback_relay: appends a copy of relay (its relay,
 * MX choice, TLS settings, credentials, timeouts: everything but its own
 * fallbacks, which are ignored) to o's list, at most 8.  hato_client_send
 * tries o's relay, then each fallback in the order added, and moves on
 * only while nothing of the message can have been delivered: the relay
 * (every MX host of it) could not be resolved or reached, or the
 * connection failed before any recipient was answered and before any of
 * the content was taken from the message (with CHUNKING the first BDAT
 * chunk goes out with MAIL and RCPT) -- a 4xx reply (greeting, EHLO,
 * MAIL), TLS, authentication, a timeout, a dropped connection or a
 * protocol error -- so a message is never sent twice.  A 5xx reply, an
 * error in the message itself or a null MX ends the send at once.  When
 * every relay failed, hato_client_error() carries the last one's code
 * and a message naming each relay's failure.  hato_client_peer() names
 * the relay (MX host) that was used.  The log goes to o's callback.
 * Returns HATO_E_ARGUMENT when relay has no relay host, is o itself, or
 * the list is full; HATO_E_NOMEM. */
HATO_EXPORT hato_code hato_options_set_relay_mx(hato_options *o, bool mx);
HATO_EXPORT hato_code hato_options_add_fallback_relay(hato_options *o, const hato_options *relay);

/* ------------------------------------------------------------------ */
/* Messages                                                            */

typedef struct hato_message hato_message;

/* Fills buf with up to cap bytes of the message (headers and body, as
 * RFC 5322 text; LF or CRLF line ends).  Returns the count, 0 at the end,
 * or -1 on error (the send then fails with HATO_E_BODY and the message is
 * not delivered: the session never sends the final dot). */
typedef ptrdiff_t (*hato_read_fn)(void *user, char *buf, size_t cap);

HATO_EXPORT hato_message *hato_message_new(void);
HATO_EXPORT void hato_message_free(hato_message *m);
/* Envelope sender (MAIL FROM); "" is the null sender <>.  Required. */
HATO_EXPORT hato_code hato_message_set_sender(hato_message *m, const char *address);
/* Recipients of one message, at most: Postfix's smtpd_recipient_limit
 * default, so a relay with its defaults takes them all; and 1000 of the
 * longest addresses (RFC 5321 4.5.3.1.3) still fit the output buffer of one
 * pipelined envelope (docs/architecture.md, "Limits").  Send more as
 * several messages. */
#define HATO_MAX_RECIPIENTS 1000

/* One envelope recipient (RCPT TO).  At least one is required.  Addresses
 * holding CR, LF, NUL, '<' or '>' are refused with HATO_E_ARGUMENT, and so
 * is a recipient beyond HATO_MAX_RECIPIENTS. */
HATO_EXPORT hato_code hato_message_add_recipient(hato_message *m, const char *address);
/* The content, pulled in fixed-size pieces during the send. */
HATO_EXPORT hato_code hato_message_set_reader(hato_message *m, hato_read_fn fn, void *user);
/* Or the whole content in memory.  Borrowed, not copied: it must stay
 * valid until the send returns. */
HATO_EXPORT hato_code hato_message_set_content(hato_message *m, const char *data, size_t len);

/* What the body holds, for MAIL FROM's BODY= (RFC 6152, RFC 3030). */
typedef enum hato_body {
    HATO_BODY_AUTO = 0,       /* default: content in memory is scanned for
                                 bytes above 127; a reader's content is
                                 declared 8BITMIME whenever the server offers
                                 it.  To a server without 8BITMIME, a body
                                 that turns out to hold 8-bit bytes fails
                                 with HATO_E_EXTENSION before the end of
                                 data, so it is never delivered damaged. */
    HATO_BODY_7BIT = 1,       /* US-ASCII only; nothing declared */
    HATO_BODY_8BITMIME = 2,   /* lines of 8-bit text: BODY=8BITMIME */
    HATO_BODY_BINARYMIME = 3, /* any bytes, sent exactly as given (no line-end
                                 conversion) with BDAT: needs the server's
                                 CHUNKING and BINARYMIME */
} hato_body;
HATO_EXPORT hato_code hato_message_set_body(hato_message *m, hato_body body);
/* The content's size in bytes, for SIZE= (RFC 1870) when a reader supplies
 * it; content set in memory is measured.  A message larger than the
 * server's limit fails with HATO_E_TOO_BIG before anything is sent. */
HATO_EXPORT hato_code hato_message_set_size(hato_message *m, uint64_t bytes);
/* The headers hold UTF-8 (RFC 6532), so the message needs SMTPUTF8.
 * Addresses are checked without this: a UTF-8 address asks for SMTPUTF8 by
 * itself, and without the server's support its domain is sent as an
 * A-label (IDNA 2008) while a UTF-8 local part fails with HATO_E_EXTENSION. */
HATO_EXPORT hato_code hato_message_set_smtputf8(hato_message *m, bool utf8_headers);

/* Delivery status notifications (RFC 3461), sent when the server offers
 * DSN and dropped otherwise (as Postfix does).  notify: 0 for the server's
 * default, HATO_DSN_NEVER alone, or any of SUCCESS, FAILURE, DELAY; it
 * applies to every recipient, each also sent with ORCPT=rfc822;address.
 * envid: printable ASCII up to 100 characters, or NULL. */
enum {
    HATO_DSN_NEVER = 1u << 0,
    HATO_DSN_SUCCESS = 1u << 1,
    HATO_DSN_FAILURE = 1u << 2,
    HATO_DSN_DELAY = 1u << 3,
};
typedef enum hato_dsn_ret {
    HATO_DSN_RET_DEFAULT = 0,
    HATO_DSN_RET_FULL = 1,    /* RET=FULL: return the whole message */
    HATO_DSN_RET_HDRS = 2,    /* RET=HDRS: only the headers */
} hato_dsn_ret;
HATO_EXPORT hato_code hato_message_set_dsn(hato_message *m, unsigned notify, hato_dsn_ret ret, const char *envid);
/* RFC 8689: every hop must use verified TLS.  The send fails with
 * HATO_E_EXTENSION unless the link is TLS at level VERIFY or above and the
 * server offers REQUIRETLS. */
HATO_EXPORT hato_code hato_message_set_requiretls(hato_message *m, bool require);

/* After a send: each recipient's outcome, in the order added.
 * Returns the reply code to its RCPT (250 accepted; 0 when it was never
 * tried), and sets *text to the server's reply ("" when none). */
HATO_EXPORT size_t hato_message_recipient_count(const hato_message *m);
HATO_EXPORT const char *hato_message_recipient(const hato_message *m, size_t i);
HATO_EXPORT int hato_message_recipient_reply(const hato_message *m, size_t i, const char **enhanced_code, const char **text);
/* After a send: the server's reply to the end of the data (e.g. 250 with
 * "2.0.0" and "Ok: queued as 4XYZ"), or 0 when the data was never ended. */
HATO_EXPORT int hato_message_data_reply(const hato_message *m, const char **enhanced_code, const char **text);
/* True when the server took the message for every accepted recipient. */
HATO_EXPORT bool hato_message_sent(const hato_message *m);

/* ------------------------------------------------------------------ */
/* Blocking client                                                     */

typedef struct hato_client hato_client;

/* A client with a copy of the options (later changes to o do not affect
 * it), or NULL when out of memory. */
HATO_EXPORT hato_client *hato_client_new(const hato_options *o);
HATO_EXPORT void hato_client_free(hato_client *c);
/* Connects, sends m, and quits.  HATO_OK when the server accepted the
 * message for at least one recipient (check each with
 * hato_message_recipient_reply: some may have been refused).  Otherwise the
 * code of the failure; hato_client_error() describes it. */
HATO_EXPORT hato_code hato_client_send(hato_client *c, hato_message *m);
/* The last send's failure, or NULL after a success. */
HATO_EXPORT const hato_error *hato_client_error(const hato_client *c);
/* The relay of the last connection as "host[address]:port", or "" before
 * one was made. */
HATO_EXPORT const char *hato_client_peer(const hato_client *c);

/* Receives one line of a probe report, without newline. */
typedef void (*hato_probe_fn)(void *user, const char *line);
/* Diagnoses the relay without sending mail: which of the relay host's
 * ports 25, 465 and 587 answer (short timeouts; a silent 25 with an
 * answering 587 is Outbound Port 25 Blocking), then on the configured
 * port: the greeting, TLS version, cipher and certificate chain (subject,
 * issuer, validity, SHA-256 fingerprint) and whether it verifies, the
 * capabilities before and after STARTTLS, the SASL mechanisms offered, the
 * one hato would choose and why the others were passed over, and, when
 * credentials are set, whether the login succeeds.  Each line goes to fn.
 * Returns HATO_OK when a message could be sent with these settings;
 * otherwise the failure, described by hato_client_error(). */
HATO_EXPORT hato_code hato_client_probe(hato_client *c, hato_probe_fn fn, void *user);

/* ------------------------------------------------------------------ */
/* Session: the protocol core without I/O                              */

typedef struct hato_session hato_session;

enum {
    HATO_WANT_READ = 1u << 0,  /* feed bytes from the server */
    HATO_WANT_WRITE = 1u << 1, /* hato_session_output() has bytes */
    HATO_WANT_DONE = 1u << 2,  /* finished; see hato_session_error() */
};

/* A session with a copy of the options, for one message, or NULL when out
 * of memory.  m is borrowed until the session is done or freed.  The caller
 * connects to the relay first; peer_address (for logs, may be NULL) is the
 * address it connected to. */
HATO_EXPORT hato_session *hato_session_new(const hato_options *o, hato_message *m, const char *peer_address);
HATO_EXPORT void hato_session_free(hato_session *s);
/* HATO_WANT_* bits: what the session waits for now. */
HATO_EXPORT unsigned hato_session_want(const hato_session *s);
/* Bytes to write to the socket; *len is 0 when none.  The pointer is valid
 * until the next call on s.  After writing n of them, call
 * hato_session_output_done(s, n). */
HATO_EXPORT const uint8_t *hato_session_output(hato_session *s, size_t *len);
HATO_EXPORT void hato_session_output_done(hato_session *s, size_t n);
/* Bytes read from the socket; all are consumed (copied as needed). */
HATO_EXPORT hato_code hato_session_input(hato_session *s, const uint8_t *data, size_t len);
/* The server closed the connection. */
HATO_EXPORT hato_code hato_session_input_eof(hato_session *s);
/* How long, in milliseconds, the current wait may last before the caller
 * should call hato_session_timed_out(); -1 when not waiting. */
HATO_EXPORT int hato_session_timeout(const hato_session *s);
HATO_EXPORT hato_code hato_session_timed_out(hato_session *s);
/* Reading or writing the socket failed; reason (e.g. strerror's text) goes
 * into the error.  Ends the session with HATO_E_NETWORK. */
HATO_EXPORT hato_code hato_session_io_failed(hato_session *s, const char *reason);
/* With keep-alive (hato_options_set_keep_alive): true when the message is
 * done (HATO_WANT_DONE) and the connection is open for another.  From then
 * on the session no longer uses the message, which its owner may free.
 * Input while idle (a server's 421 or EOF) ends the session. */
HATO_EXPORT bool hato_session_idle(const hato_session *s);
/* Starts message m on an idle session (RSET already done where needed);
 * HATO_E_STATE when the session is not idle. */
HATO_EXPORT hato_code hato_session_next(hato_session *s, hato_message *m);
/* Ends an idle session politely: QUIT, then HATO_WANT_DONE. */
HATO_EXPORT hato_code hato_session_quit(hato_session *s);
/* The session's failure, or NULL while running or after success. */
HATO_EXPORT const hato_error *hato_session_error(const hato_session *s);

#ifdef __cplusplus
}
#endif
#endif
