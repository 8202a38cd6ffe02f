/*
 * text.h - the line and list syntax that main.cf and Postfix lookup tables
 * share, for config.c and maps.c.
 *
 * Logical lines: blank lines and lines whose first non-blank character is
 * '#' are skipped (and do not end a logical line); a line starting with
 * white space continues the one before, joined by one space; a CR before
 * the LF is dropped.
 *
 * Lists: items separated by commas and/or white space, as Postfix writes
 * "noplaintext, noanonymous" or "hash:/a /b".
 */
#ifndef HATO_PROGRAM_TEXT_H
#define HATO_PROGRAM_TEXT_H

#include <stdbool.h>
#include <stddef.h>

enum text_status {
    TEXT_LINE = 0,    /* a logical line is in buf */
    TEXT_END = 1,     /* no more lines */
    TEXT_ORPHAN = -1, /* a continuation line with nothing before it (at lineno) */
    TEXT_NUL = -2,    /* a NUL byte in a line (at lineno), with reject_nul */
    TEXT_NOMEM = -3,
};

/* Reads logical lines from text, which must stay valid and unchanged.
 * Set text and len (and reject_nul) in a zeroed struct; call text_next()
 * until it returns something other than TEXT_LINE; then text_lines_free(),
 * which wipes buf: the lines may hold passwords. */
struct text_lines {
    const char *text;
    size_t len;
    bool reject_nul;   /* report NUL bytes instead of passing them on */

    size_t pos;        /* next unread byte */
    unsigned lineno;   /* number of the physical line read last */
    char *buf;         /* the logical line, NUL-terminated; owned, wiped */
    size_t buf_len, buf_cap;
    unsigned line;     /* number of the logical line's first physical line */
};

enum text_status text_next(struct text_lines *t);
void text_lines_free(struct text_lines *t);

/* Postfix's list separators. */
#define TEXT_LIST_SEPARATORS ", \t"

/* Iterates a list without changing it: from *cursor, skips the separator
 * characters seps and returns the next item as *item and *n (not
 * NUL-terminated), advancing *cursor past it.  False at the end. */
bool text_list_next(const char **cursor, const char *seps, const char **item, size_t *n);

/* A growing NUL-terminated string.  Start from {0}; s is malloc'd and the
 * user of the struct frees it.  A failed allocation sets failed, and later
 * additions are ignored, so a caller checks once at the end. */
struct text_buf {
    char *s;
    size_t len, cap;
    bool failed;
};

void text_buf_add(struct text_buf *b, const char *s, size_t n);

/* Reads the regular file at path whole into *text (malloc'd, NUL-terminated,
 * *len bytes; the caller frees it).  Returns 0, an errno value, or EFBIG
 * when it is larger than max bytes (also for a file that is not regular:
 * EINVAL).  Not for secrets: the buffer is not wiped. */
int text_read_file(const char *path, size_t max, char **text, size_t *len);

/* True when the n bytes at item equal word, ignoring case. */
bool text_item_is(const char *item, size_t n, const char *word);

/* A table line "key value...": *klen is the key's length at the start of
 * s, *val the value after the blanks that follow it, *vlen its length
 * without trailing blanks (0 when there is none).  Nothing is copied. */
void text_split_entry(char *s, size_t *klen, char **val, size_t *vlen);

#endif
