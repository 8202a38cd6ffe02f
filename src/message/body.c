#include "message/body.h"

#include <string.h>

void body_init(body_encoder *e, body_mode mode)
{
    memset(e, 0, sizeof *e);
    e->mode = mode;
    e->at_line_start = true;
}

bool body_has_8bit(const char *src, size_t n)
{
    /* OR-ing eight bytes at a time keeps the scan of a large in-memory
     * message cheap. */
    unsigned long long acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        unsigned long long w;
        memcpy(&w, src + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= (unsigned char)src[i];
    return (acc & 0x8080808080808080ull) != 0;
}

size_t body_encode(body_encoder *e, const char *src, size_t n, char *dst)
{
    e->bytes_in += n;
    if (!e->eight_bit)
        e->eight_bit = body_has_8bit(src, n);
    if (e->mode == BODY_BINARY) {
        memcpy(dst, src, n);
        return n;
    }
    bool stuff = e->mode == BODY_DATA;
    size_t out = 0, i = 0;
    /* Line by line: memchr finds the LF and memcpy moves the rest, so the
     * cost per byte stays near a copy's. */
    while (i < n) {
        if (stuff && e->at_line_start && src[i] == '.')
            dst[out++] = '.';
        const char *lf = memchr(src + i, '\n', n - i);
        size_t end = lf != NULL ? (size_t)(lf - src) : n;
        if (end > i) {
            memcpy(dst + out, src + i, end - i);
            out += end - i;
            e->after_cr = src[end - 1] == '\r';
            e->at_line_start = false;
        }
        if (lf == NULL)
            break;
        if (!e->after_cr)
            dst[out++] = '\r';
        dst[out++] = '\n';
        e->at_line_start = true;
        e->after_cr = false;
        i = end + 1;
    }
    return out;
}

size_t body_finish(body_encoder *e, char *dst)
{
    size_t out = 0;
    if (e->mode == BODY_BINARY)
        return 0;
    if (!e->at_line_start) {
        /* The content ended mid-line (or on a lone CR): close the line. */
        if (!e->after_cr)
            dst[out++] = '\r';
        dst[out++] = '\n';
    }
    if (e->mode == BODY_DATA) {
        dst[out++] = '.';
        dst[out++] = '\r';
        dst[out++] = '\n';
    }
    e->at_line_start = true;
    e->after_cr = false;
    return out;
}
