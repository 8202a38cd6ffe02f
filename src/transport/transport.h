/*
 * transport.h - resolve, connect with fallback across addresses, and
 * socket I/O with deadlines.  Used by the blocking client only; the
 * session never touches a socket.
 */
#ifndef HATO_TRANSPORT_TRANSPORT_H
#define HATO_TRANSPORT_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

#include "api/error.h"
#include "api/log.h"

/* Room for "host[address]:port". */
#define TRANSPORT_PEER_MAX 320

typedef struct transport_target {
    const char *host;
    unsigned short port;
    hato_family family;
    unsigned connect_timeout_ms; /* per address */
} transport_target;

/* Tries each address of the host in turn; an address that fails is logged
 * at DEBUG and the next one is tried.  Returns a connected non-blocking
 * socket with TCP_NODELAY, and writes "host[address]:port" to peer and the
 * bare address to address; or -1 with err naming every address and why it
 * failed. */
int transport_connect(const transport_target *t, const logger *log, char peer[TRANSPORT_PEER_MAX],
                      char *address, size_t addresslen, hato_error *err);

/* Waits until fd is ready for events (POLLIN/POLLOUT) or timeout_ms
 * passes: 1 ready, 0 timed out, -1 error (errno set). */
int transport_wait(int fd, short events, int timeout_ms);

#endif
