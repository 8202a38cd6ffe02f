/*
 * session.h - the library's own access to a hato_session's insides.
 */
#ifndef HATO_SESSION_SESSION_H
#define HATO_SESSION_SESSION_H

#include "hato.h"
#include "session/smtp.h"

/* The SMTP state machine inside s (for probe mode). */
smtp *session_core(hato_session *s);

/* The TLS connection inside s once STARTTLS (or implicit TLS) began, else
 * NULL; for the probe's tls_conn_describe_chain/_version/_cipher. */
struct tls_conn;
struct tls_conn *session_tls(hato_session *s);

/* The TLS session of a client's last connection, offered on the next one
 * (in-process resumption).  Owned by the client; the bytes are key
 * material, released with session_cache_clear(), which wipes them. */
typedef struct session_cache {
    unsigned char *data;
    size_t len;
} session_cache;

void session_cache_clear(session_cache *c);
/* hato_session_new() with a cache (may be NULL), borrowed until the
 * session is freed: a saved session in it is offered, a new one replaces it. */
hato_session *session_new_cached(const hato_options *o, hato_message *m,
                                 const char *peer_address, session_cache *cache);

#endif
