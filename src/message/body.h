/*
 * body.h - turns message content into the DATA stream (RFC 5321 4.5.2).
 *
 * Streaming and stateful across pieces: bare LF becomes CRLF, a line that
 * starts with "." gets another, and body_finish() ends the data with
 * CRLF.CRLF (adding the CRLF a content without a final newline lacks).
 * A lone CR not followed by LF is passed through unchanged.
 */
#ifndef HATO_MESSAGE_BODY_H
#define HATO_MESSAGE_BODY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct body_encoder {
    bool at_line_start; /* the next byte begins a line */
    bool after_cr;      /* the last byte was CR */
    unsigned long long bytes_in;
} body_encoder;

void body_init(body_encoder *e);
/* Encodes n bytes of src into dst, which must have room for
 * body_max_output(n) bytes; returns the bytes written. */
size_t body_encode(body_encoder *e, const char *src, size_t n, char *dst);
static inline size_t body_max_output(size_t n) { return 2 * n; }
/* Writes the end of data into dst (at most 5 bytes); returns the count. */
size_t body_finish(body_encoder *e, char *dst);

#endif
