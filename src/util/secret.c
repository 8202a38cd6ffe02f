#include "util/secret.h"

#include <stdlib.h>
#include <string.h>

void secret_wipe(void *p, size_t n)
{
    /* A volatile function pointer keeps the compiler from proving the
     * stores dead and removing them (explicit_bzero is not POSIX). */
    static void *(*const volatile wipe)(void *, int, size_t) = memset;
    if (p != NULL && n > 0)
        wipe(p, 0, n);
}

void secret_free(char *s)
{
    if (s == NULL)
        return;
    secret_wipe(s, strlen(s));
    free(s);
}

char *secret_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}
