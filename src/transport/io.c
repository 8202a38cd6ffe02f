#include "transport/transport.h"

#include <errno.h>
#include <poll.h>

int transport_wait(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n >= 0)
            return n > 0 ? 1 : 0;
        if (errno != EINTR)
            return -1;
        /* A signal cut the wait short; waiting the full time again errs on
         * the patient side, which RFC 5321's timeouts are about. */
    }
}
