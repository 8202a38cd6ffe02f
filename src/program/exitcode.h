/*
 * exitcode.h - the one table from failures to sysexits.h exit codes and to
 * the maillog's dsn= and status= fields.  docs/hato.8 lists it for users.
 */
#ifndef HATO_PROGRAM_EXITCODE_H
#define HATO_PROGRAM_EXITCODE_H

#include <stdbool.h>

#include "hato.h"

/* How a failure of the library maps.  soft_bounce is the configuration's
 * smtp_sasl_auth_soft_bounce. */
int exitcode_for_error(hato_code code, bool temporary, bool soft_bounce);

/* Whether a failed send bounces (instead of waiting in the queue): the
 * server's permanent reply (5xx), or a permanent HATO_E_TOO_BIG or
 * HATO_E_EXTENSION, which the library decides before sending. */
bool exitcode_bounces(hato_code code, bool temporary, int reply_code);

/* The exit status for refused recipients, given their reply codes and
 * enhanced codes: EX_TEMPFAIL when any refusal was 4xx... see exitcode.c.
 * Used both when every recipient was refused and when only some were. */
int exitcode_for_refusals(const int *codes, const char *const *enhanced, int n);

/* "deferred" for EX_TEMPFAIL, else "bounced": the maillog's status=. */
const char *exitcode_status(int exit_code);

/* A default RFC 3463 code for the maillog when the server gave none. */
const char *exitcode_dsn(hato_code code, bool temporary);

/* "EX_TEMPFAIL" and so on, for messages and tests. */
const char *exitcode_name(int exit_code);

#endif
