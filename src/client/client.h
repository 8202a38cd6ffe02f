/*
 * client.h - what the blocking client's files share: the client object and
 * the socket loop that drives a session.
 */
#ifndef HATO_CLIENT_CLIENT_H
#define HATO_CLIENT_CLIENT_H

#include <time.h>

#include "api/error.h"
#include "api/options.h"
#include "transport/transport.h"
#include "session/session.h"

struct hato_client {
    hato_options *opt;   /* owned copy */
    hato_error err;
    bool failed;
    char peer[TRANSPORT_PEER_MAX];
    session_cache tls_cache; /* owned: the last TLS session, offered next time */
    /* Keep-alive: an idle session and its socket, kept for the next send. */
    hato_session *idle;      /* owned, NULL when none */
    int idle_fd;             /* owned, -1 when none */
    struct timespec idle_since;
    char idle_peer[TRANSPORT_PEER_MAX];
    /* "host:port" of the server tls_cache's session came from: it is
     * offered to that server only, never to another MX host or fallback. */
    char tls_cache_relay[TRANSPORT_PEER_MAX];
};

/* Runs the session over fd until it is done (poll, send, recv, with the
 * session's own timeouts). */
void client_drive(hato_session *s, int fd);
/* After a message: keeps the session when it is idle (keep-alive), else
 * closes it and fd; the message's outcome becomes the client's. */
hato_code client_finish(hato_client *c, hato_session *s, int fd);
/* client_drive for a session sending m; returns whether any of m's
 * content was taken from it (so may have reached the server: with
 * CHUNKING the first BDAT chunk goes out before any reply). */
bool client_drive_watched(hato_session *s, int fd, hato_message *m);
/* Sends m over a new connection: the relay (or its MX hosts), then the
 * fallback relays while nothing can have been delivered (route.c). */
hato_code client_send_routed(hato_client *c, hato_message *m);
/* Records e as the client's failure; returns its code. */
hato_code client_fail(hato_client *c, const hato_error *e);

#endif
