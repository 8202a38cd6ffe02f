/*
 * fuzz_headers - the message header scanner and address parsing of the
 * hato program (src/program/headers.c), on a message as a local user
 * pipes it in.
 *
 * Input: a message (header section, maybe a body).  Every function that
 * reads the header section runs on it: where it ends (with and without
 * end of input), which fields hato must add, Bcc removal, the -t
 * recipients, address rewriting of the sender fields, the one-dot filter;
 * and each address found goes through the alias name and '@' finders.
 * Checked: lengths stay within the input, removal never grows it, a
 * rewrite that keeps every address gives back the same bytes, and the
 * dot filter's output is never longer than its input.
 */
#include "fuzz.h"
#include "aliases.h"
#include "headers.h"
#include "rewrite.h"

static int count_address(void *user, const char *address)
{
    size_t *n = user;
    (*n)++;
    /* The alias name and the domain of each address, as envelope.c asks. */
    const char *domain = NULL;
    char *name = aliases_local_name(address, &domain);
    if (name == NULL)
        abort();
    if (domain != NULL && (domain < address || domain > address + strlen(address)))
        abort();
    free(name);
    const char *at = rewrite_find_at(address);
    if (at != NULL && *at != '@')
        abort();
    return 0;
}

static int keep_address(void *user, const char *address, char **replacement)
{
    (void)user;
    (void)address;
    *replacement = NULL;
    return 0;
}

static int change_address(void *user, const char *address, char **replacement)
{
    (void)user;
    size_t n = strlen(address);
    *replacement = malloc(n + 12);
    if (*replacement == NULL)
        return -1;
    memcpy(*replacement, "new.", 4);
    memcpy(*replacement + 4, address, n + 1);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    size_t hlen = 0;
    bool sep = false;
    if (!headers_find_end(msg, size, true, &hlen, &sep))
        abort(); /* at end of input the end is always known */
    if (hlen > size)
        abort();
    size_t hlen2 = 0;
    bool sep2 = false;
    if (headers_find_end(msg, size, false, &hlen2, &sep2) && (hlen2 != hlen || sep2 != sep))
        abort(); /* known early must mean the same as known at the end */

    /* The header functions work on the section alone, in a copy of its own
     * size so that any over-read lands in ASan's redzone. */
    char *h = fuzz_strndup(msg, hlen);
    struct headers_info info;
    headers_scan(h, hlen, &info);

    size_t n = 0;
    headers_extract_recipients(h, hlen, count_address, &n);
    headers_parse_addresses(h, hlen, count_address, &n);

    static const char *const names[] = {"From", "Sender", "Reply-To", "Resent-From", "To"};
    char *out = NULL;
    size_t outlen = 0;
    if (headers_rewrite_addresses(h, hlen, names, 5, keep_address, NULL, &out, &outlen) == 0) {
        if (outlen != hlen || memcmp(out, h, hlen) != 0 || out[outlen] != '\0')
            abort();
    }
    free(out);
    out = NULL;
    if (headers_rewrite_addresses(h, hlen, names, 5, change_address, NULL, &out, &outlen) == 0) {
        if (out == NULL || strlen(out) > outlen)
            abort();
        size_t n2 = 0;
        headers_extract_recipients(out, outlen, count_address, &n2);
    }
    free(out);

    size_t left = headers_remove(h, hlen, "Bcc");
    if (left > hlen)
        abort();
    left = headers_remove(h, left, "resent-bcc");
    free(h);

    /* The one-dot filter over the whole input, in pieces of 5 bytes into an
     * output of 3: the smallest sizes reach the held-back dot's paths. */
    struct headers_dot d = {0};
    size_t at = 0, wrote = 0;
    char small[3];
    while (at < size && !d.ended) {
        size_t piece = size - at < 5 ? size - at : 5;
        size_t used = 0;
        size_t w = headers_dot_filter(&d, msg + at, piece, &used, small, sizeof small);
        if (w > sizeof small || used > piece || (used == 0 && w == 0))
            abort(); /* no progress would hang the program's input loop */
        wrote += w;
        at += used;
    }
    if (wrote > size)
        abort();
    return 0;
}
