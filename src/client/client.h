/*
 * client.h - what the blocking client's files share: the client object and
 * the socket loop that drives a session.
 */
#ifndef HATO_CLIENT_CLIENT_H
#define HATO_CLIENT_CLIENT_H

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
};

/* Runs the session over fd until it is done (poll, send, recv, with the
 * session's own timeouts). */
void client_drive(hato_session *s, int fd);
/* Records e as the client's failure; returns its code. */
hato_code client_fail(hato_client *c, const hato_error *e);

#endif
