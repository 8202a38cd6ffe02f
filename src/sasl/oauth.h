/*
 * oauth.h - XOAUTH2 and OAUTHBEARER (RFC 7628), which libgsasl 2.2 lacks.
 *
 * Internal to src/sasl: sasl_gsasl.c hands these mechanisms to this file,
 * so callers see one sasl_exchange whatever runs it.  Also the base64 that
 * this file needs, since only sasl_gsasl.c may use libgsasl's.
 */
#ifndef HATO_SASL_OAUTH_H
#define HATO_SASL_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "sasl/sasl.h"

/* Longest error challenge read, decoded.  A reply line is at most 2048
 * bytes (architecture.md), so a real one is far smaller; beyond this it is
 * hostile and only said to be too long. */
#define OAUTH_CHALLENGE_MAX 4096
/* Longest value shown from the challenge: a scope list or a URL. */
#define OAUTH_VALUE_MAX 160

typedef struct oauth_exchange oauth_exchange;

/* True for "XOAUTH2" and "OAUTHBEARER" (upper case). */
bool oauth_is_mech(const char *upper);

/* Starts one; the user, token and host are copied (the token into memory
 * wiped on free).  NULL with err set when the token is missing or holds
 * a byte a bearer token may not (RFC 6750 section 2.1), when the user or
 * host holds a control byte, or when memory runs out.  err never holds
 * the token. */
oauth_exchange *oauth_start(const char *upper, const sasl_params *params,
                            char *err, size_t errlen);
/*
 * First call, challenge NULL: *response is the initial response (base64,
 * free with secret_free) and SASL_DONE.  A later challenge is the
 * server's error (RFC 7628 section 3.2.2): it is summarised (see
 * oauth_server_error) and answered as the mechanism requires so that the
 * server can end with its 535: OAUTHBEARER with a single 0x01 ("AQ=="),
 * XOAUTH2 with an empty line; SASL_DONE again.  Any further challenge
 * fails.
 */
sasl_status oauth_step(oauth_exchange *x, const char *challenge,
                       char **response, char *err, size_t errlen);
/* The summary of the server's error challenge, or NULL. */
const char *oauth_server_error(const oauth_exchange *x);
void oauth_free(oauth_exchange *x);

/*
 * The pieces, for tests.
 *
 * oauth_error_summary: reads an error challenge (JSON, as decoded from
 * base64, len bytes, not NUL-terminated) and writes one printable line
 * to out (cut to outlen, ending in "..." when cut): the values of
 * "status", "scope" and "openid-configuration", each cut to
 * OAUTH_VALUE_MAX, bytes outside printable ASCII shown as '?'; a value
 * that shares a run of bytes with token (a server echoing it) is shown
 * as "[redacted]".  Malformed, too long, or without those keys: says so.
 */
void oauth_error_summary(const char *json, size_t len, const char *token,
                         char *out, size_t outlen);

/* Standard base64 (RFC 4648 section 4) with padding.  Encode: allocated,
 * NUL-terminated, NULL when out of memory; free with secret_free.
 * Decode: strict (no white space, padding where due); false when the
 * input is not base64 or the result would not fit cap. */
char *oauth_b64_encode(const unsigned char *in, size_t len);
bool oauth_b64_decode(const char *in, size_t inlen, unsigned char *out,
                      size_t cap, size_t *outlen);

#endif
