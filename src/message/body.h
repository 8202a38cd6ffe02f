/*
 * body.h - turns message content into what goes on the wire after DATA
 * (RFC 5321 4.5.2) or inside BDAT chunks (RFC 3030).
 *
 * Streaming and stateful across pieces.  In the text modes bare LF becomes
 * CRLF and body_finish() adds the CRLF a content without a final newline
 * lacks; a lone CR not followed by LF is passed through unchanged.  Only
 * BODY_DATA dot-stuffs and ends with ".CRLF"; BDAT carries its length
 * instead.  BODY_BINARY passes every byte as given (BODY=BINARYMIME).
 */
#ifndef HATO_MESSAGE_BODY_H
#define HATO_MESSAGE_BODY_H

#include <stdbool.h>
#include <stddef.h>

typedef enum body_mode {
    BODY_DATA,   /* after DATA: CRLF, dot-stuffing, CRLF.CRLF at the end */
    BODY_CHUNK,  /* inside BDAT: CRLF, ends with CRLF */
    BODY_BINARY, /* inside BDAT, BINARYMIME: unchanged */
} body_mode;

typedef struct body_encoder {
    body_mode mode;
    bool at_line_start; /* the next byte begins a line */
    bool after_cr;      /* the last byte was CR */
    bool eight_bit;     /* a byte above 127 went through */
    unsigned long long bytes_in;
} body_encoder;

void body_init(body_encoder *e, body_mode mode);
/* Encodes n bytes of src into dst, which must have room for
 * body_max_output(n) bytes; returns the bytes written. */
size_t body_encode(body_encoder *e, const char *src, size_t n, char *dst);
static inline size_t body_max_output(size_t n) { return 2 * n; }
/* Writes the end of the content into dst (at most BODY_FINISH_MAX bytes);
 * returns the count. */
#define BODY_FINISH_MAX 5
size_t body_finish(body_encoder *e, char *dst);
/* True when n bytes of src hold a byte above 127: content that needs
 * BODY=8BITMIME. */
bool body_has_8bit(const char *src, size_t n);

#endif
