/*
 * params.h - what one mail transaction declares: the ESMTP parameters of
 * MAIL FROM and RCPT TO, and how the content travels.
 *
 * mail_plan_make() decides once per message, from the message and the
 * server's capabilities, before anything of the transaction is written; a
 * message the server cannot take (too big, 8-bit or UTF-8 without the
 * extension, REQUIRETLS on a link that cannot honour it) fails there, so it
 * is never half sent.  Pure functions: no I/O, testable alone.
 */
#ifndef HATO_MESSAGE_PARAMS_H
#define HATO_MESSAGE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/error.h"
#include "message/body.h"
#include "message/message.h"
#include "reply/ehlo.h"

/* RFC 5321 4.5.3.1.4 allows 512 octets; each extension adds its own
 * allowance (SIZE 26 ... DSN 100 + ORCPT 500); this holds them all. */
#define PARAMS_LINE_MAX 2048

typedef struct mail_link {
    const ehlo_caps *caps;   /* after STARTTLS when TLS is used */
    bool tls_verified;       /* TLS with the server's identity checked
                                (levels verify, secure, fingerprint) */
    const char *host;        /* for error messages */
} mail_link;

typedef struct mail_plan {
    bool chunking;           /* BDAT instead of DATA */
    body_mode body_mode;
    const char *body_param;  /* "8BITMIME", "BINARYMIME" or NULL */
    bool refuse_8bit;        /* the content must not hold 8-bit bytes: the
                                server cannot take them, or the caller said
                                7BIT; checked as the body streams */
    bool smtputf8;           /* SMTPUTF8 on MAIL; addresses go as they are */
    bool dsn;                /* NOTIFY/ORCPT/RET/ENVID go out */
    bool requiretls;
    uint64_t size;           /* SIZE= value; 0: not declared */
} mail_plan;

/* Fills plan for m over link; false with err set (HATO_E_TOO_BIG,
 * HATO_E_EXTENSION or HATO_E_ARGUMENT, all permanent) when the server
 * cannot take the message. */
bool mail_plan_make(mail_plan *plan, const hato_message *m, const mail_link *link,
                    hato_error *err);

/* "MAIL FROM:<...> params" and "RCPT TO:<...> params" (recipient i), without
 * CRLF; false when the line does not fit (cannot happen for a message
 * mail_plan_make accepted, whose addresses are checked). */
bool mail_from_line(const mail_plan *plan, const hato_message *m, char *line, size_t cap);
bool rcpt_to_line(const mail_plan *plan, const hato_message *m, size_t i, char *line, size_t cap);

/* RFC 3461 section 4: printable ASCII but "+" and "=" as is, the rest as
 * "+HH".  Appends to dst (NUL-terminated, cap bytes); false if it does not
 * fit. */
bool xtext_append(char *dst, size_t cap, const char *src);

#endif
