/*
 * fuzz.h - what the libFuzzer targets share: cutting one input into parts,
 * and a NUL-terminated copy of a part (the program's parsers take C
 * strings, and libFuzzer's buffer is not terminated).  Header-only: each
 * target includes it once.
 */
#ifndef HATO_FUZZ_H
#define HATO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fuzz_file_path;

static void fuzz_file_cleanup(void)
{
    if (fuzz_file_path != NULL)
        unlink(fuzz_file_path);
}

/* The separator between the parts of one input: a byte sequence that real
 * seeds never hold, so a seed stays readable in an editor.  A target with
 * several inputs (a table and the keys looked up in it) takes them in order. */
#define FUZZ_SEP "\n%%%%\n"
#define FUZZ_SEP_LEN 6

/* The next part of *data: up to the next FUZZ_SEP or the end.  Moves *data
 * and *size past it (and past the separator). */
static inline void fuzz_part(const uint8_t **data, size_t *size, const char **part, size_t *len)
{
    const uint8_t *p = *data;
    size_t n = *size;
    *part = (const char *)p;
    for (size_t i = 0; i + FUZZ_SEP_LEN <= n; i++) {
        if (memcmp(p + i, FUZZ_SEP, FUZZ_SEP_LEN) == 0) {
            *len = i;
            *data = p + i + FUZZ_SEP_LEN;
            *size = n - i - FUZZ_SEP_LEN;
            return;
        }
    }
    *len = n;
    *data = p + n;
    *size = 0;
}

/* A malloc'd NUL-terminated copy of s[0..n), owned by the caller; aborts
 * when out of memory, which is the harness's fault, not the target's. */
static inline char *fuzz_strndup(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c == NULL)
        abort();
    if (n > 0)
        memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

/* A file holding data[0..n), mode 0600, for the parsers that take a path
 * (the password map's mode check, systemd credentials).  One file per
 * process under $TMPDIR (or /tmp), created on first use and rewritten in
 * place; the fuzzer runs one input at a time per process.  Returns its
 * path (static storage). */
static inline const char *fuzz_file(const char *tag, const void *data, size_t n)
{
    static char path[512];
    static int fd = -1;
    if (fd < 0) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/hato-fuzz-%s-XXXXXX", dir ? dir : "/tmp", tag);
        fd = mkstemp(path);
        if (fd < 0)
            abort();
        /* Removed when the process exits normally; libFuzzer exits through
         * exit() at the end of a run. */
        atexit(fuzz_file_cleanup);
        fuzz_file_path = path;
    }
    if (ftruncate(fd, 0) != 0 || (n > 0 && pwrite(fd, data, n, 0) != (ssize_t)n))
        abort();
    return path;
}

#endif
