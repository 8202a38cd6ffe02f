/*
 * headers.h - the message's header section (RFC 5322 section 2.2, 3.6).
 *
 * Pure functions on caller buffers: finding where the header section ends,
 * reading To/Cc/Bcc for -t, removing Bcc, noting which of Date, Message-ID
 * and From are present, and writing the ones hato adds.  Also the filter
 * that ends the input at a line holding a single "." (sendmail without -i).
 */
#ifndef HATO_PROGRAM_HEADERS_H
#define HATO_PROGRAM_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* The header section read before sending is bounded: RFC 5322 sets no
 * limit, but a header section this large is not mail a person wrote, and
 * it is held in memory while the body streams. */
#define HEADERS_MAX_SECTION (1024u * 1024)

/* Where the header section ends in buf[0..len).  Returns true when known:
 * *header_len is the length of the header fields (the body, starting with
 * the empty separator line when there is one, follows); *need_separator is
 * true when the body starts with a line that is not a header field and no
 * empty line came first -- then one must be inserted.  Returns false when
 * more input is needed (only when !eof). */
bool headers_find_end(const char *buf, size_t len, bool eof, size_t *header_len,
                      bool *need_separator);
/* The same, going on where an earlier call on a prefix of buf stopped:
 * *from is 0 at first, and a call that returns false sets it to the start
 * of the line it could not decide yet.  A section read piece by piece is
 * then scanned once, not once per piece. */
bool headers_find_end_from(const char *buf, size_t len, bool eof, size_t *from,
                           size_t *header_len, bool *need_separator);

struct headers_info {
    bool has_date;
    bool has_message_id;
    bool has_from;
    bool crlf;        /* the first line ends in CRLF: added lines do too */
};
void headers_scan(const char *h, size_t len, struct headers_info *info);

/* Removes every field named name (case-insensitive), continuation lines
 * included, in place; returns the new length. */
size_t headers_remove(char *h, size_t len, const char *name);

/* Receives one address (NUL-terminated, valid during the call); returns 0
 * to go on, nonzero to stop (that value is returned). */
typedef int (*headers_addr_fn)(void *user, const char *address);

/* Calls fn for each address of an RFC 5322 address-list in s[0..len):
 * display names, comments, groups ("team: a@x, b@y;", "undisclosed-
 * recipients:;"), quoted local parts and folding are handled; "<addr>" and
 * bare addr-specs both give addr.  Returns 0, -1 out of memory, or fn's
 * nonzero value. */
int headers_parse_addresses(const char *s, size_t len, headers_addr_fn fn, void *user);

/* The recipients for -t: the same over every To, Cc and Bcc field of the
 * header section -- unless it holds Resent-To, Resent-Cc or Resent-Bcc
 * fields, as a resent message does: then only those of the most recent
 * Resent block (the first run of consecutive Resent-* fields holding one;
 * RFC 5322 section 3.6.6 prepends each block), as sendmail and Postfix
 * take the Resent recipients instead of the original ones. */
int headers_extract_recipients(const char *h, size_t len, headers_addr_fn fn, void *user);

/* Decides the replacement for one address: returns 1 with *replacement
 * malloc'd (the caller of headers_rewrite_addresses frees it), 0 to keep
 * the address, -1 to stop with an error. */
typedef int (*headers_rewrite_fn)(void *user, const char *address, char **replacement);

/* Copies the header section h[0..len) into *out (malloc'd, NUL-terminated,
 * *outlen bytes; the caller frees it), with each address of the fields
 * named in names (case-insensitive) passed through fn.  Only the address
 * changes: display names, comments, folding and every other byte stay as
 * they were ("Name <old>" becomes "Name <new>", "old (comment)" becomes
 * "new (comment)").  Returns 0, -1 out of memory or fn's error (then *out
 * is NULL). */
int headers_rewrite_addresses(const char *h, size_t len, const char *const *names, size_t nnames,
                              headers_rewrite_fn fn, void *user, char **out, size_t *outlen);

/* "Date: Tue, 04 Mar 2025 10:11:12 +0900" (local time, numeric zone) plus
 * eol.  Returns the length, or 0 when it did not fit. */
size_t headers_format_date(char *buf, size_t cap, time_t t, const char *eol);

/* "Message-ID: <time.pid.random@host>" plus eol. */
size_t headers_format_message_id(char *buf, size_t cap, time_t t, pid_t pid,
                                 unsigned long long random, const char *host, const char *eol);

/* "From: Display Name <address>" plus eol (just the address when display is
 * NULL or empty).  The display name is quoted when it holds specials and
 * RFC 2047-encoded when it holds non-ASCII bytes, one encoded word a line
 * (folded with eol).  0 when it does not fit, or when a line would be
 * longer than RFC 5322's 998 characters. */
size_t headers_format_from(char *buf, size_t cap, const char *display, const char *address,
                           const char *eol);

/* The filter for "a line with a single '.' ends the message".  Start with
 * a zeroed struct.  Copies from in to out (at most cap bytes), sets *used
 * to the input consumed, and returns the bytes written; once the line is
 * seen, ended is set and nothing more is copied.  A "." held back at the
 * end of in is decided by the next call; at end of input it is dropped.
 * Each call with inlen and cap above zero consumes or writes something,
 * so a reader's loop over it always moves on. */
struct headers_dot {
    int state;
    bool ended;
};
size_t headers_dot_filter(struct headers_dot *d, const char *in, size_t inlen, size_t *used,
                          char *out, size_t cap);

#endif
