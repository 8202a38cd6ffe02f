#include "util/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/secret.h"

void buf_init(buf *b, size_t limit)
{
    memset(b, 0, sizeof *b);
    b->limit = limit;
}

void buf_free(buf *b)
{
    free(b->data);
    buf_init(b, b->limit);
}

void buf_free_wipe(buf *b)
{
    secret_wipe(b->data, b->cap);
    buf_free(b);
}

void buf_clear(buf *b)
{
    b->start = b->len = 0;
}

void buf_consume(buf *b, size_t n)
{
    if (n >= buf_size(b)) {
        buf_clear(b);
        return;
    }
    b->start += n;
}

unsigned char *buf_reserve(buf *b, size_t n)
{
    size_t held = buf_size(b);
    if (b->limit && (n > b->limit || held > b->limit - n))
        return NULL;
    if (b->cap - b->len >= n)
        return b->data + b->len;
    /* Move what is held to the front before growing. */
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, held);
        b->start = 0;
        b->len = held;
        if (b->cap - b->len >= n)
            return b->data + b->len;
    }
    if (n > SIZE_MAX - held - 255)
        return NULL;
    /* Half again, or just what is asked when that is more: a buffer sized
     * for one TLS record or one body piece stays near that size (doubling
     * would leave up to half of it unused, in every session). */
    size_t need = held + n;
    size_t want = b->cap ? b->cap + b->cap / 2 : 256;
    if (want < need)
        want = need;
    want = (want + 255) & ~(size_t)255;
    if (b->limit && want > b->limit)
        want = b->limit;
    unsigned char *p = realloc(b->data, want);
    if (p == NULL)
        return NULL;
    b->data = p;
    b->cap = want;
    return b->data + b->len;
}

void buf_commit(buf *b, size_t n)
{
    b->len += n;
}

bool buf_append(buf *b, const void *p, size_t n)
{
    if (n == 0)
        return true;
    unsigned char *dst = buf_reserve(b, n);
    if (dst == NULL)
        return false;
    memcpy(dst, p, n);
    b->len += n;
    return true;
}

bool buf_append_str(buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

bool buf_appendf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    /* One more for vsnprintf's NUL, not kept. */
    unsigned char *dst = buf_reserve(b, (size_t)n + 1);
    if (dst == NULL)
        return false;
    va_start(ap, fmt);
    vsnprintf((char *)dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}
