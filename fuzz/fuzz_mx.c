/*
 * fuzz_mx - MX answers from the resolver (src/transport/mx.c,
 * transport_mx_parse): a DNS message from the network, parsed with
 * libresolv's ns_* and hato's insertion by preference.
 *
 * Input: byte 0 chooses how many hosts are kept (1..TRANSPORT_MX_MAX),
 * the rest is the DNS answer.  The hosts found must be at most that many,
 * sorted by preference, terminated within their buffers and without a
 * trailing dot; a failure must carry a message.
 */
#include "api/error.h"
#include "fuzz.h"
#include "transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max = 1 + data[0] % TRANSPORT_MX_MAX;
    /* The answer alone, in a buffer of exactly its size. */
    unsigned char *answer = malloc(size - 1 ? size - 1 : 1);
    if (answer == NULL)
        abort();
    memcpy(answer, data + 1, size - 1);
    transport_mx out[TRANSPORT_MX_MAX];
    memset(out, 0xa5, sizeof out); /* stale bytes: nothing may rely on zeros */
    size_t n = 99;
    hato_error e;
    error_clear(&e);
    transport_mx_status st = transport_mx_parse(answer, size - 1, "example.test", "relayhost",
                                                out, max, &n, &e);
    if (st == TRANSPORT_MX_FOUND) {
        if (n == 0 || n > max)
            abort();
        for (size_t i = 0; i < n; i++) {
            size_t len = strnlen(out[i].host, sizeof out[i].host);
            if (len == sizeof out[i].host || (len > 0 && out[i].host[len - 1] == '.'))
                abort();
            if (i > 0 && out[i - 1].preference > out[i].preference)
                abort();
        }
    } else if (st == TRANSPORT_MX_NONE) {
        if (n != 0)
            abort();
    } else if (hato_error_message(&e) == NULL || hato_error_message(&e)[0] == '\0') {
        abort();
    }
    free(answer);
    return 0;
}
