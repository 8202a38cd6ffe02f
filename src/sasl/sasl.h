/*
 * sasl.h - choosing a SASL mechanism and running its exchange.
 *
 * Choice is a pure function (sasl_select) so every rule is unit-tested
 * without a server.  The exchange runs on GNU libgsasl; sasl_gsasl.c is the
 * only file that includes it.  Challenges and responses travel base64
 * encoded, as SMTP AUTH (RFC 4954) carries them.
 */
#ifndef HATO_SASL_SASL_H
#define HATO_SASL_SASL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest mechanism name: RFC 4422 section 3.1 allows 20 characters. */
#define SASL_MECH_MAX 21

/* Security options, Postfix's names (same bits as HATO_SASL_*). */
enum {
    SASL_NOPLAINTEXT = 1u << 0,  /* refuse PLAIN, LOGIN, XOAUTH2, OAUTHBEARER */
    SASL_NOANONYMOUS = 1u << 1,  /* refuse ANONYMOUS */
    SASL_NODICTIONARY = 1u << 2, /* refuse PLAIN, LOGIN, CRAM-MD5,
                                    DIGEST-MD5, SCRAM-* */
    SASL_MUTUAL_AUTH = 1u << 3,  /* only SCRAM-*, DIGEST-MD5 */
    /* Not options: what the session knows of the link.
     * SASL_LINK_TLS: the link is encrypted, so the message names
     * smtp_sasl_tls_security_options rather than advising TLS that is
     * already there.  Without it the link counts as plain.
     * SASL_HAVE_CERT: a client certificate was presented (EXTERNAL).
     * SASL_HAVE_BINDING: channel binding data exists (the -PLUS variants). */
    SASL_LINK_TLS = 1u << 8,
    SASL_HAVE_CERT = 1u << 9,
    SASL_HAVE_BINDING = 1u << 10,
};

/* Picks the strongest mechanism in the intersection of
 *   offered    what the server advertised (space-separated, any case),
 *   filter     the configured filter (commas and/or spaces; NULL or "" = any),
 *   supported  what the local SASL library can run (space-separated),
 *   security   SASL_* flags in force for this link,
 * and what the credentials allow (have_password false rules out the
 * mechanisms that need one, and the OAuth ones, whose token comes in the
 * password's place).  Preference, strongest first (docs/auth.md):
 *   EXTERNAL, OAUTHBEARER, XOAUTH2   only when the filter names them;
 *                                    EXTERNAL also needs SASL_HAVE_CERT
 *   SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS   need SASL_HAVE_BINDING
 *   SCRAM-SHA-256, SCRAM-SHA-1, DIGEST-MD5, CRAM-MD5, PLAIN, LOGIN.
 * Returns true and writes the name (upper case) to mech, and to why one
 * line saying why each other offered mechanism was passed over ("" when
 * none was), e.g.
 *   "PLAIN and LOGIN are excluded by noplaintext without TLS; also usable,
 *    less preferred: CRAM-MD5"
 * Or returns false, mech "", and writes to why (cut to whylen, ending in
 * "..." when cut) one line that
 * names the server's list, the filter when set, each offered mechanism's
 * reason grouped by reason, and the settings to change, e.g.
 *   "no usable SASL mechanism: server offers CRAM-MD5 DIGEST-MD5;
 *    smtp_sasl_mechanism_filter = plain, login; CRAM-MD5 and DIGEST-MD5 are
 *    not in the filter; to fix, add digest-md5 or cram-md5 to
 *    smtp_sasl_mechanism_filter"
 *   "no usable SASL mechanism: server offers PLAIN LOGIN; PLAIN and LOGIN
 *    are excluded by noplaintext without TLS; to fix, use TLS
 *    (smtp_tls_security_level = encrypt), or allow plaintext mechanisms
 *    (smtp_sasl_security_options = noanonymous)"
 * Server-supplied names are printed with any byte a mechanism name may not
 * hold replaced by '?'.  supported NULL means "not checked". */
bool sasl_select(const char *offered, const char *filter, const char *supported,
                 unsigned security, bool have_password,
                 char mech[SASL_MECH_MAX], char *why, size_t whylen);

/* True when the client speaks first (initial response on the AUTH line,
 * RFC 4954 section 4): PLAIN, EXTERNAL, ANONYMOUS, SCRAM-*, XOAUTH2,
 * OAUTHBEARER. */
bool sasl_client_first(const char *mech);

/* True for the mechanisms in which the server proves it knows the secret
 * (SCRAM-*: the server signature; DIGEST-MD5: rspauth).  A 235 that comes
 * before that proof was checked must be refused: the server skipped it,
 * and may be an impostor that accepts anything. */
bool sasl_mutual(const char *mech);

typedef struct sasl_lib sasl_lib;        /* a libgsasl context */
typedef struct sasl_exchange sasl_exchange;

/* NULL when out of memory or libgsasl failed (err says which). */
sasl_lib *sasl_lib_new(char *err, size_t errlen);
void sasl_lib_free(sasl_lib *lib);
/* The client mechanisms libgsasl offers, space-separated, upper case;
 * owned by lib. */
const char *sasl_lib_mechanisms(const sasl_lib *lib);

typedef enum sasl_status {
    SASL_DONE = 0,  /* the client has nothing more to say */
    SASL_MORE = 1,  /* *response holds the next message; expect a 334 */
    SASL_FAIL = 2,  /* err says why; the exchange is over */
} sasl_status;

/* What an exchange runs with.  Everything is borrowed for the call of
 * sasl_exchange_start only; what the exchange keeps it copies (secrets
 * into memory wiped when the exchange is freed). */
typedef struct sasl_params {
    const char *user;      /* authentication identity; OAUTHBEARER's a= */
    const char *password;  /* the password, or for XOAUTH2 and OAUTHBEARER
                              the OAuth access token */
    const char *host;      /* the server's name: DIGEST-MD5's digest-uri,
                              OAUTHBEARER's host= */
    unsigned port;         /* OAUTHBEARER's port= (0: left out) */
    /* TLS channel binding for the -PLUS variants (RFC 5929, RFC 9266):
     * cb_type "tls-exporter" or "tls-unique", raw bytes.  NULL: none.
     * Ignored by every other mechanism. */
    const char *cb_type;
    const unsigned char *cb_data;
    size_t cb_len;
} sasl_params;

/* Starts mech.  XOAUTH2 and OAUTHBEARER run in hato (oauth.c); the others
 * in libgsasl.  NULL when the mechanism is unknown, the parameters cannot
 * work (e.g. a -PLUS variant without binding data, a token with bytes a
 * bearer token may not hold) or memory ran out; err says which, never
 * with the password or token. */
sasl_exchange *sasl_exchange_start(sasl_lib *lib, const char *mech,
                                   const sasl_params *params, char *err,
                                   size_t errlen);
/* The same with user, password and host only. */
sasl_exchange *sasl_exchange_new(sasl_lib *lib, const char *mech,
                                 const char *user, const char *password,
                                 const char *host, char *err, size_t errlen);
/* One step: challenge is the server's base64 text after "334 " (NULL for
 * the initial response of a client-first mechanism).  On SASL_MORE or
 * SASL_DONE with output, *response is base64 ("" for an empty message),
 * allocated, and the caller frees it with secret_free(); NULL when there
 * is nothing to send.  The first step may always pass NULL: for a
 * server-first mechanism (LOGIN, CRAM-MD5, DIGEST-MD5) it returns SASL_MORE
 * with *response NULL, i.e. send "AUTH <mech>" alone.  A step fed a
 * challenge always yields a response, "" at least (RFC 4954: every 334 is
 * answered); SCRAM's final 334 is verified and answered "" with SASL_DONE.
 * A step after SASL_DONE or SASL_FAIL fails, with one exception: after
 * the initial response of XOAUTH2 or OAUTHBEARER (SASL_DONE), one
 * challenge, the server's JSON error, is accepted and answered as the
 * mechanism requires ("AQ==", a single 0x01, for OAUTHBEARER; "" for
 * XOAUTH2), again with SASL_DONE, so the server can end with its 535;
 * sasl_exchange_server_error() then sums it up.  err never holds the
 * password or token. */
sasl_status sasl_exchange_step(sasl_exchange *x, const char *challenge,
                               char **response, char *err, size_t errlen);
void sasl_exchange_free(sasl_exchange *x);

/* After an OAuth server's error challenge (RFC 7628 section 3.2.2; Google's
 * XOAUTH2 does the same): one printable line summarising it, e.g.
 * "status invalid_token, scope https://mail.google.com/", for the message
 * of the 535 that follows.  NULL when there was none.  Owned by x. */
const char *sasl_exchange_server_error(const sasl_exchange *x);

#endif
