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
    SASL_NOPLAINTEXT = 1u << 0, /* refuse PLAIN, LOGIN */
    SASL_NOANONYMOUS = 1u << 1, /* refuse ANONYMOUS */
    /* Not an option: the session sets it when the link is encrypted, so the
     * message names smtp_sasl_tls_security_options rather than advising
     * TLS that is already there.  Without it the link counts as plain. */
    SASL_LINK_TLS = 1u << 8,
};

/* Picks the strongest mechanism in the intersection of
 *   offered    what the server advertised (space-separated, any case),
 *   filter     the configured filter (commas and/or spaces; NULL or "" = any),
 *   supported  what the local SASL library can run (space-separated),
 *   security   SASL_* flags in force for this link,
 * and what the credentials allow (have_password false rules out the
 * mechanisms that need one).  Preference, strongest first:
 *   SCRAM-SHA-256, SCRAM-SHA-1, DIGEST-MD5, CRAM-MD5, PLAIN, LOGIN.
 * Returns true and writes the name (upper case) to mech, or false, mech ""
 * and writes to why (cut to whylen, ending in "..." when cut) one line that
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
 * RFC 4954 section 4): PLAIN, EXTERNAL, ANONYMOUS, SCRAM-*. */
bool sasl_client_first(const char *mech);

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

/* Starts mech for user with password (both copied; the copies are wiped
 * when the exchange is freed).  host is the server's name (DIGEST-MD5's
 * digest-uri, GSSAPI); service is "smtp". */
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
 * A step after SASL_DONE or SASL_FAIL fails.  err never holds the
 * password. */
sasl_status sasl_exchange_step(sasl_exchange *x, const char *challenge,
                               char **response, char *err, size_t errlen);
void sasl_exchange_free(sasl_exchange *x);

#endif
