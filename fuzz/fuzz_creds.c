/*
 * fuzz_creds - a systemd credential file read for the password
 * (src/program/creds.c, creds_read_credential): the first line, bounded
 * by CREDS_MAX_LINE, without its line end.
 *
 * Input: the file's bytes.  A secret read must be non-empty, hold no line
 * end and be a prefix of the file.
 */
#include "creds.h"
#include "fuzz.h"
#include "wipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("creds", data, size);
    const char *slash = strrchr(path, '/');
    char dir[512];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    char *secret = NULL, err[1024] = "";
    enum creds_status st = creds_read_credential(dir, slash + 1, &secret, err, sizeof err);
    if (st == CREDS_OK) {
        size_t n = strlen(secret);
        if (secret == NULL || n == 0 || n > CREDS_MAX_LINE || strpbrk(secret, "\n") != NULL ||
            memcmp(secret, data, n) != 0)
            abort();
        wipe_free_str(secret);
    } else if (secret != NULL || err[0] == '\0') {
        abort();
    }
    return 0;
}
