/*
 * secret.h - memory that held a password, a token or a key.
 */
#ifndef HATO_UTIL_SECRET_H
#define HATO_UTIL_SECRET_H

#include <stddef.h>

/* Overwrites n bytes in a way the compiler may not drop. */
void secret_wipe(void *p, size_t n);
/* Wipes a NUL-terminated string and frees it; NULL is fine. */
void secret_free(char *s);
/* strdup for a secret (the copy must be released with secret_free). */
char *secret_dup(const char *s);

#endif
