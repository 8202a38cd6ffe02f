/*
 * smtp.h - the SMTP client state machine, on plaintext bytes.
 *
 * It reads replies with the reply parser, writes commands into its output
 * buffer and streams the body; it knows nothing of sockets or of TLS beyond
 * asking for it (SMTP_WANT_TLS) and being told it is up (smtp_tls_started).
 * session.c puts TLS between it and the wire.
 */
#ifndef HATO_SESSION_SMTP_H
#define HATO_SESSION_SMTP_H

#include <stddef.h>

#include "api/error.h"
#include "api/options.h"
#include "message/message.h"
#include "util/buf.h"

typedef struct smtp smtp;

enum {
    SMTP_WANT_READ = 1u << 0,  /* a reply is awaited */
    SMTP_WANT_WRITE = 1u << 1, /* output is pending or the body goes on */
    SMTP_WANT_TLS = 1u << 2,   /* the server said go ahead: start the handshake */
    SMTP_WANT_DONE = 1u << 3,
};

/* opt, m and log are borrowed and must outlive the state machine. */
smtp *smtp_new(const hato_options *opt, hato_message *m);
void smtp_free(smtp *s);

/* Feeds plaintext from the server; returns the bytes consumed, which is
 * all of them unless the machine finished or failed. */
size_t smtp_input(smtp *s, const char *data, size_t len);
/* Fills the output with more body when it runs low; then the output. */
buf *smtp_output(smtp *s);
unsigned smtp_want(const smtp *s);
/* The handshake after STARTTLS is done: capabilities are forgotten, EHLO
 * goes again. */
void smtp_tls_started(smtp *s);
/* Implicit TLS (RFC 8314): the link is encrypted before the greeting. */
void smtp_tls_wrapped(smtp *s);
/* Keep-alive: true when a message is done and the connection waits for
 * the next; smtp_next starts it (false when not idle); smtp_quit ends an
 * idle connection.  While idle the machine does not touch the old message. */
bool smtp_idle(const smtp *s);
bool smtp_next(smtp *s, hato_message *m);
void smtp_quit(smtp *s);
/* The connection is over from below: EOF, a timeout, an I/O or TLS error. */
void smtp_eof(smtp *s);
void smtp_timed_out(smtp *s, unsigned ms);
void smtp_fail(smtp *s, hato_code code, hato_layer layer, bool temporary, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The step's timeout that applies to the current wait. */
hato_timeout smtp_timeout_kind(const smtp *s);
/* Postfix's name for that timeout's setting, e.g. "smtp_helo_timeout". */
const char *smtp_timeout_key(hato_timeout kind);
/* The failure, or NULL. */
const hato_error *smtp_error(const smtp *s);
/* Probe mode: report lines go to fn; the session stops before MAIL. */
void smtp_set_probe(smtp *s, hato_probe_fn fn, void *user);
/* True in probe mode. */
bool smtp_probing(const smtp *s);
/* One report line, in probe mode only. */
void smtp_report(const smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For log lines: the state's name. */
const char *smtp_state_name(const smtp *s);

/* Channel binding (RFC 5929, RFC 9266) for SCRAM-*-PLUS: session.c sets each
 * type the TLS link offers ("tls-exporter", "tls-unique") right after the
 * handshake; a later call for the same type replaces it.  At most
 * SMTP_CB_MAX bytes are kept per type, wiped when the machine is freed. */
#define SMTP_CB_MAX 64
void smtp_set_channel_binding(smtp *s, const char *type, const unsigned char *data, size_t len);

#endif
