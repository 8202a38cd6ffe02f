/*
 * test_exitcode.c - the failures a message cannot get past (too big for
 * the relay, an extension it lacks) bounce with EX_DATAERR; the others
 * keep their status.
 */
#include <sysexits.h>

#include "check.h"
#include "exitcode.h"

static void test_new_codes(void)
{
    /* Permanent: the data is the cause, as sendmail's 8-bit-to-7-bit. */
    CHECK_INT(exitcode_for_error(HATO_E_TOO_BIG, false, true), EX_DATAERR);
    CHECK_INT(exitcode_for_error(HATO_E_EXTENSION, false, true), EX_DATAERR);
    /* Should the library ever call one temporary, it waits in the queue. */
    CHECK_INT(exitcode_for_error(HATO_E_TOO_BIG, true, true), EX_TEMPFAIL);
    CHECK_STR(exitcode_dsn(HATO_E_TOO_BIG, false), "5.3.4");
    CHECK_STR(exitcode_dsn(HATO_E_EXTENSION, false), "5.6.3");
    CHECK_STR(exitcode_status(EX_DATAERR), "bounced");
}

static void test_bounces(void)
{
    /* Decided by the library before sending: no reply, still final. */
    CHECK(exitcode_bounces(HATO_E_TOO_BIG, false, 0));
    CHECK(exitcode_bounces(HATO_E_EXTENSION, false, 0));
    CHECK(!exitcode_bounces(HATO_E_EXTENSION, true, 0));
    /* The server's 552 to SIZE= or its 5xx to anything. */
    CHECK(exitcode_bounces(HATO_E_TOO_BIG, false, 552));
    CHECK(exitcode_bounces(HATO_E_REPLY, false, 554));
    /* Everything else without a 5xx waits: network, TLS, 4xx. */
    CHECK(!exitcode_bounces(HATO_E_REPLY, true, 451));
    CHECK(!exitcode_bounces(HATO_E_CONNECT, true, 0));
    CHECK(!exitcode_bounces(HATO_E_TLS_REQUIRED, false, 0));
    CHECK(!exitcode_bounces(HATO_E_CONFIG, false, 0));
}

static void test_unchanged(void)
{
    CHECK_INT(exitcode_for_error(HATO_E_REPLY, false, true), EX_UNAVAILABLE);
    CHECK_INT(exitcode_for_error(HATO_E_AUTH, false, true), EX_TEMPFAIL);
    CHECK_INT(exitcode_for_error(HATO_E_AUTH, false, false), EX_UNAVAILABLE);
    CHECK_INT(exitcode_for_error(HATO_E_CONNECT, true, true), EX_TEMPFAIL);
}

int main(void)
{
    test_new_codes();
    test_bounces();
    test_unchanged();
    return check_finish("test_exitcode");
}
