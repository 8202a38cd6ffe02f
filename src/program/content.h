/*
 * content.h - what a message holds, measured once as it is spooled, so
 * that the program tells the library (and the relay) instead of letting
 * either guess: its size on the wire (RFC 1870 SIZE=), whether the body
 * holds 8-bit bytes (RFC 6152 BODY=8BITMIME) and whether the header
 * section does (RFC 6532 UTF-8 headers, which need SMTPUTF8).
 *
 * A pure scanner over the bytes in the order they are stored, cut at any
 * point: the header section ends at its first empty line, as in
 * headers_find_end() and the bounce report's copy of it.
 */
#ifndef HATO_PROGRAM_CONTENT_H
#define HATO_PROGRAM_CONTENT_H

#include <stdbool.h>
#include <stddef.h>

#include "hato.h"

struct content_scan {
    unsigned long long wire_size; /* bytes as sent: every line ending in CRLF */
    bool header_8bit;             /* a byte above 127 before the empty line */
    bool body_8bit;               /* ... after it */
    /* The scanner's place in the stream. */
    bool in_body;
    bool at_line_start;
    bool after_cr;
    bool empty_cr;                /* a line so far holding only CR */
};

void content_scan_init(struct content_scan *s);
void content_scan_feed(struct content_scan *s, const char *p, size_t n);
/* The end of the content: a last line without its line end gets one on
 * the wire (the library closes it), so it counts here. */
void content_scan_finish(struct content_scan *s);

/* What the library is told about a queued message at each attempt. */
struct content_decision {
    hato_body body;             /* -B when given, else what the scan found */
    bool size_known;            /* false for a file that was never measured */
    unsigned long long size;
    bool smtputf8;              /* 8-bit headers, and smtputf8_enable = yes */
    bool dsn;                   /* the sender asked for something: -N, -R or -V */
};

/* Decides from e's envelope; smtputf8_enable is the configuration's key
 * of that name (with "no", UTF-8 headers go out as before, undeclared). */
struct queue_entry;
void content_decide(const struct queue_entry *e, bool smtputf8_enable,
                    struct content_decision *out);

/* For a message the relay cannot take as it is (HATO_E_TOO_BIG,
 * HATO_E_EXTENSION): what the spool knows of it and what would change the
 * outcome, as "; ..." to append to the library's message; "" for other
 * codes, or when the spool knows nothing the library's message lacks. */
void content_explain(const struct queue_entry *e, hato_code rc, char *out, size_t size);

#endif
