/*
 * check.h - the unit tests' few macros.  A failed check prints where and
 * what, and the test goes on; main returns check_finish().
 */
#ifndef HATO_TEST_CHECK_H
#define HATO_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                           \
    do {                                                                      \
        check_count++;                                                        \
        if (!(cond)) {                                                        \
            check_failures++;                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                   \
        }                                                                     \
    } while (0)

#define CHECK_INT(got, want)                                                  \
    do {                                                                      \
        long long g_ = (long long)(got), w_ = (long long)(want);              \
        check_count++;                                                        \
        if (g_ != w_) {                                                       \
            check_failures++;                                                 \
            fprintf(stderr, "%s:%d: %s is %lld, expected %lld\n", __FILE__,   \
                    __LINE__, #got, g_, w_);                                  \
        }                                                                     \
    } while (0)

#define CHECK_STR(got, want)                                                  \
    do {                                                                      \
        const char *g_ = (got), *w_ = (want);                                 \
        check_count++;                                                        \
        if (g_ == NULL || strcmp(g_, w_) != 0) {                              \
            check_failures++;                                                 \
            fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n",         \
                    __FILE__, __LINE__, #got, g_ ? g_ : "(null)", w_);        \
        }                                                                     \
    } while (0)

/* Substring check, for messages. */
#define CHECK_HAS(haystack, needle)                                           \
    do {                                                                      \
        const char *h_ = (haystack), *n_ = (needle);                          \
        check_count++;                                                        \
        if (h_ == NULL || strstr(h_, n_) == NULL) {                           \
            check_failures++;                                                 \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n",        \
                    __FILE__, __LINE__, h_ ? h_ : "(null)", n_);              \
        }                                                                     \
    } while (0)

static inline int check_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
