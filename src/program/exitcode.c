/*
 * exitcode.c - failures to exit codes, in one table.
 *
 * Principle: EX_TEMPFAIL (75) whenever sending the same message again later
 * may work -- the server said 4xx, the network failed, or Postfix itself
 * would defer the mail (TLS missing or unverified, a server that broke the
 * protocol, a refused login with smtp_sasl_auth_soft_bounce = yes).  A
 * caller such as cron or a mail user agent then keeps the message.
 */
#include "exitcode.h"

#include <stddef.h>
#include <string.h>
#include <sysexits.h>

static const struct rule {
    hato_code code;
    int temporary;  /* exit code when the library calls it temporary */
    int permanent;  /* ... and when it does not */
    const char *dsn_temp, *dsn_perm;
} rules[] = {
    {HATO_E_NOMEM, EX_TEMPFAIL, EX_TEMPFAIL, "4.3.0", "4.3.0"},
    {HATO_E_ARGUMENT, EX_SOFTWARE, EX_SOFTWARE, "4.3.0", "5.3.0"},
    {HATO_E_STATE, EX_SOFTWARE, EX_SOFTWARE, "4.3.0", "5.3.0"},
    {HATO_E_RESOLVE, EX_TEMPFAIL, EX_NOHOST, "4.4.3", "5.4.4"},
    {HATO_E_CONNECT, EX_TEMPFAIL, EX_TEMPFAIL, "4.4.1", "4.4.1"},
    {HATO_E_TIMEOUT, EX_TEMPFAIL, EX_TEMPFAIL, "4.4.2", "4.4.2"},
    {HATO_E_NETWORK, EX_TEMPFAIL, EX_TEMPFAIL, "4.4.2", "4.4.2"},
    {HATO_E_TLS, EX_TEMPFAIL, EX_TEMPFAIL, "4.7.5", "4.7.5"},
    {HATO_E_TLS_VERIFY, EX_TEMPFAIL, EX_TEMPFAIL, "4.7.5", "4.7.5"},
    {HATO_E_TLS_REQUIRED, EX_TEMPFAIL, EX_TEMPFAIL, "4.7.4", "4.7.4"},
    {HATO_E_PROTOCOL, EX_TEMPFAIL, EX_TEMPFAIL, "4.5.0", "4.5.0"},
    {HATO_E_REPLY, EX_TEMPFAIL, EX_UNAVAILABLE, "4.0.0", "5.0.0"},
    /* Special-cased below for smtp_sasl_auth_soft_bounce. */
    {HATO_E_AUTH, EX_TEMPFAIL, EX_UNAVAILABLE, "4.7.0", "5.7.8"},
    {HATO_E_AUTH_MECH, EX_TEMPFAIL, EX_TEMPFAIL, "4.7.0", "4.7.0"},
    {HATO_E_SASL, EX_SOFTWARE, EX_SOFTWARE, "4.7.0", "4.7.0"},
    /* Normally decided by exitcode_for_refusals(). */
    {HATO_E_RECIPIENTS, EX_TEMPFAIL, EX_UNAVAILABLE, "4.0.0", "5.0.0"},
    {HATO_E_BODY, EX_IOERR, EX_IOERR, "4.3.0", "4.3.0"},
    {HATO_E_CONFIG, EX_CONFIG, EX_CONFIG, "4.3.5", "4.3.5"},
    /* The message cannot pass this relay as it is: the data is the cause,
     * as sendmail's own "554 5.6.3 Cannot send 8-bit data to 7-bit
     * destination" exits EX_DATAERR; a retry would fail the same way.
     * RFC 3463 X.3.4 (too big for the system), X.6.3 (conversion
     * required but not supported). */
    {HATO_E_TOO_BIG, EX_TEMPFAIL, EX_DATAERR, "4.3.4", "5.3.4"},
    {HATO_E_EXTENSION, EX_TEMPFAIL, EX_DATAERR, "4.6.3", "5.6.3"},
};

/* Failures that are final without a 5xx from the server: the library
 * found before sending that this relay cannot take the message. */
static const hato_code final_without_reply[] = {HATO_E_TOO_BIG, HATO_E_EXTENSION};

static const struct rule *find(hato_code code)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (rules[i].code == code)
            return &rules[i];
    return NULL;
}

int exitcode_for_error(hato_code code, bool temporary, bool soft_bounce)
{
    if (code == HATO_OK)
        return EX_OK;
    if (code == HATO_E_AUTH && soft_bounce)
        return EX_TEMPFAIL;
    const struct rule *r = find(code);
    if (r == NULL) /* a code newer than this program */
        return temporary ? EX_TEMPFAIL : EX_UNAVAILABLE;
    return temporary ? r->temporary : r->permanent;
}

bool exitcode_bounces(hato_code code, bool temporary, int reply_code)
{
    if (reply_code >= 500)
        return true;
    for (size_t i = 0; !temporary && i < sizeof final_without_reply / sizeof final_without_reply[0];
         i++)
        if (final_without_reply[i] == code)
            return true;
    return false;
}

/* RFC 3463 X.1.1 (bad mailbox), X.1.2 (bad system), X.1.3, X.1.6
 * (moved); and the plain "550 no such user" / "551" / "553" of servers
 * without enhanced codes. */
static bool says_no_such_user(int code, const char *enhanced)
{
    if (enhanced != NULL && enhanced[0] == '5' && strncmp(enhanced + 1, ".1.", 3) == 0)
        return true;
    if (enhanced == NULL || enhanced[0] == '\0')
        return code == 550 || code == 551 || code == 553;
    return false;
}

int exitcode_for_refusals(const int *codes, const char *const *enhanced, int n)
{
    bool any_temp = false, all_nouser = n > 0;
    for (int i = 0; i < n; i++) {
        if (codes[i] < 500)
            any_temp = true;
        if (!says_no_such_user(codes[i], enhanced ? enhanced[i] : NULL))
            all_nouser = false;
    }
    if (any_temp)
        return EX_TEMPFAIL;
    return all_nouser ? EX_NOUSER : EX_UNAVAILABLE;
}

const char *exitcode_status(int exit_code)
{
    return exit_code == EX_TEMPFAIL ? "deferred" : "bounced";
}

const char *exitcode_dsn(hato_code code, bool temporary)
{
    const struct rule *r = find(code);
    if (r == NULL)
        return temporary ? "4.0.0" : "5.0.0";
    return temporary ? r->dsn_temp : r->dsn_perm;
}

const char *exitcode_name(int exit_code)
{
    switch (exit_code) {
    case EX_OK: return "EX_OK";
    case EX_USAGE: return "EX_USAGE";
    case EX_DATAERR: return "EX_DATAERR";
    case EX_NOUSER: return "EX_NOUSER";
    case EX_NOHOST: return "EX_NOHOST";
    case EX_UNAVAILABLE: return "EX_UNAVAILABLE";
    case EX_SOFTWARE: return "EX_SOFTWARE";
    case EX_OSERR: return "EX_OSERR";
    case EX_IOERR: return "EX_IOERR";
    case EX_TEMPFAIL: return "EX_TEMPFAIL";
    case EX_NOPERM: return "EX_NOPERM";
    case EX_CONFIG: return "EX_CONFIG";
    default: return "unknown";
    }
}
