/*
 * buf.h - a growable byte buffer with a hard ceiling.
 *
 * Every buffer that holds bytes from the network has a limit, so a hostile
 * server costs at most that much memory.  A buf owns its storage; buf_free()
 * releases it.  Data lives in [data + start, data + len): consuming from the
 * front moves start, and the storage is compacted when it is reused.
 */
#ifndef HATO_UTIL_BUF_H
#define HATO_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct buf {
    unsigned char *data; /* owned */
    size_t start;        /* first unconsumed byte */
    size_t len;          /* end of the bytes held */
    size_t cap;
    size_t limit;        /* most bytes it may hold; 0 = no limit */
} buf;

void buf_init(buf *b, size_t limit);
void buf_free(buf *b);
/* Wipes the bytes held (they may be secret) and frees. */
void buf_free_wipe(buf *b);
/* Bytes held and their start. */
static inline size_t buf_size(const buf *b) { return b->len - b->start; }
static inline const unsigned char *buf_head(const buf *b) { return b->data + b->start; }
/* Append; false when out of memory or past the limit (nothing appended). */
bool buf_append(buf *b, const void *p, size_t n);
bool buf_append_str(buf *b, const char *s);
/* printf-style append; false on overflow or out of memory. */
bool buf_appendf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Room for n more bytes at the end: a pointer to write into, then
 * buf_commit(b, written).  NULL when out of memory or past the limit. */
unsigned char *buf_reserve(buf *b, size_t n);
void buf_commit(buf *b, size_t n);
/* Drop n bytes from the front. */
void buf_consume(buf *b, size_t n);
void buf_clear(buf *b);

#endif
