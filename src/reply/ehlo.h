/*
 * ehlo.h - the server's capabilities from its EHLO reply (RFC 5321 4.1.1.1).
 */
#ifndef HATO_REPLY_EHLO_H
#define HATO_REPLY_EHLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reply/reply.h"

/* Room for the AUTH list: Postfix/Dovecot list ~10 mechanisms; longer
 * lists are truncated at a whole name. */
#define EHLO_AUTH_MAX 512

enum ehlo_flag {
    EHLO_STARTTLS = 1u << 0,
    EHLO_PIPELINING = 1u << 1,
    EHLO_8BITMIME = 1u << 2,
    EHLO_SMTPUTF8 = 1u << 3,
    EHLO_CHUNKING = 1u << 4,
    EHLO_DSN = 1u << 5,
    EHLO_ENHANCEDSTATUSCODES = 1u << 6,
    EHLO_SIZE = 1u << 7,
    EHLO_AUTH = 1u << 8,
    EHLO_BINARYMIME = 1u << 9,
    EHLO_REQUIRETLS = 1u << 10,
};

typedef struct ehlo_caps {
    unsigned flags;                /* enum ehlo_flag */
    uint64_t size_limit;           /* SIZE n; 0 = none given (or "SIZE 0",
                                      RFC 1870: no fixed limit) */
    /* Mechanisms from every AUTH line ("AUTH a b" and the old "AUTH=a b"),
     * upper-cased, single spaces, no duplicates, in the order first seen.
     * Names that are not RFC 4422 3.1 mechanism names (A-Z 0-9 - _, 1..20
     * characters, after upper-casing) are left out.  May be "" with
     * EHLO_AUTH set: the server said AUTH but named nothing usable. */
    char auth[EHLO_AUTH_MAX];
} ehlo_caps;

/* Fills caps from a 250 reply to EHLO (line 0 is the greeting name and is
 * skipped).  caps is overwritten whole, so parsing the EHLO reply after
 * STARTTLS forgets what was offered before.  Any other code, or r NULL,
 * gives empty caps.  Keywords are case-insensitive and must stand alone
 * ("STARTTLSX" is not STARTTLS); unknown ones are ignored.  Never fails: a
 * malformed parameter is ignored ("SIZE abc" sets EHLO_SIZE, size_limit 0). */
void ehlo_parse(ehlo_caps *caps, const reply *r);
/* The EHLO_* flags of the keywords in list (separated by commas, spaces or
 * tabs, any case); names hato does not use add nothing. */
unsigned ehlo_flags_named(const char *list);
/* True when the mechanism list holds exactly name, any case ("plain" yes,
 * "PLAINX" and "PLAI" no).  False for NULL or "". */
bool ehlo_has_auth(const ehlo_caps *caps, const char *name);

#endif
