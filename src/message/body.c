#include "message/body.h"

void body_init(body_encoder *e)
{
    e->at_line_start = true;
    e->after_cr = false;
    e->bytes_in = 0;
}

size_t body_encode(body_encoder *e, const char *src, size_t n, char *dst)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\n') {
            if (!e->after_cr)
                dst[out++] = '\r';
            dst[out++] = '\n';
            e->at_line_start = true;
            e->after_cr = false;
            continue;
        }
        if (e->at_line_start && c == '.')
            dst[out++] = '.';
        dst[out++] = c;
        e->after_cr = c == '\r';
        e->at_line_start = false;
    }
    e->bytes_in += n;
    return out;
}

size_t body_finish(body_encoder *e, char *dst)
{
    size_t out = 0;
    if (!e->at_line_start) {
        /* The content ended mid-line (or on a lone CR): close the line. */
        if (!e->after_cr)
            dst[out++] = '\r';
        dst[out++] = '\n';
    }
    dst[out++] = '.';
    dst[out++] = '\r';
    dst[out++] = '\n';
    e->at_line_start = true;
    e->after_cr = false;
    return out;
}
