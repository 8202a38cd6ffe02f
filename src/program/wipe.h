/*
 * wipe.h - clearing secrets in the program.  Header-only so every program
 * module (and its unit test) can use it without linking another file.
 */
#ifndef HATO_PROGRAM_WIPE_H
#define HATO_PROGRAM_WIPE_H

#include <stdlib.h>
#include <string.h>

/* Called through a volatile pointer so the compiler cannot prove the store
 * dead and drop it, as it may with a plain memset before free(). */
static void *(*const volatile wipe_memset_)(void *, int, size_t) = memset;

static inline void wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        wipe_memset_(p, 0, n);
}

/* Wipes a NUL-terminated string and frees it. */
static inline void wipe_free_str(char *s)
{
    if (s != NULL) {
        wipe(s, strlen(s));
        free(s);
    }
}

#endif
