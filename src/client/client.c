/*
 * client.c - the blocking client: a socket loop around hato_session.
 *
 * It uses only the public session API, as an event-loop program would, plus
 * the transport layer to connect.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/error.h"
#include "api/options.h"
#include "message/message.h"
#include "client/client.h"
#include "transport/transport.h"

/* Bytes read per call: a TLS record and then some. */
#define READ_PIECE (32 * 1024)
/* Saying goodbye on an idle connection waits this long for the 221. */
#define QUIT_WAIT_MS 1000


hato_client *hato_client_new(const hato_options *o)
{
    if (o == NULL)
        return NULL;
    hato_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if ((c->opt = options_copy(o)) == NULL) {
        free(c);
        return NULL;
    }
    c->idle_fd = -1;
    return c;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Ends the idle connection: QUIT when it still looks alive, waiting a
 * moment for the 221, then close. */
static void close_idle(hato_client *c, bool quit)
{
    if (c->idle == NULL)
        return;
    if (quit && hato_session_quit(c->idle) == HATO_OK) {
        unsigned char in[512];
        size_t len;
        const uint8_t *out = hato_session_output(c->idle, &len);
        if (len > 0 && send(c->idle_fd, out, len, MSG_NOSIGNAL) == (ssize_t)len &&
            transport_wait(c->idle_fd, POLLIN, QUIT_WAIT_MS) == 1) {
            ssize_t n = recv(c->idle_fd, in, sizeof in, 0);
            if (n > 0)
                hato_session_input(c->idle, in, (size_t)n);
        }
    }
    hato_session_free(c->idle);
    close(c->idle_fd);
    c->idle = NULL;
    c->idle_fd = -1;
}

/* The idle connection can carry another message: within the keep-alive
 * time, and the server has said nothing (a 421 or EOF would be readable). */
static bool idle_usable(hato_client *c)
{
    if (c->idle == NULL)
        return false;
    if (elapsed_ms(&c->idle_since) >= (long)c->opt->keep_alive_ms)
        return false;
    return transport_wait(c->idle_fd, POLLIN, 0) == 0;
}

void hato_client_free(hato_client *c)
{
    if (c == NULL)
        return;
    close_idle(c, true);
    hato_options_free(c->opt);
    session_cache_clear(&c->tls_cache);
    free(c);
}

const hato_error *hato_client_error(const hato_client *c)
{
    return c->failed ? &c->err : NULL;
}

const char *hato_client_peer(const hato_client *c)
{
    return c->peer;
}

hato_code client_fail(hato_client *c, const hato_error *e)
{
    c->err = *e;
    c->failed = true;
    return e->code;
}

static hato_code check_message(hato_client *c, const hato_message *m)
{
    hato_error e;
    const char *missing = m->sender == NULL ? "a sender (hato_message_set_sender)"
                          : m->nrcpts == 0 ? "a recipient (hato_message_add_recipient)"
                          : m->reader == NULL && m->content == NULL
                              ? "content (hato_message_set_reader or _set_content)"
                              : NULL;
    if (c->opt->host == NULL)
        missing = "a relay (hato_options_set_relay)";
    if (missing == NULL)
        return HATO_OK;
    error_set(&e, HATO_E_ARGUMENT, HATO_LAYER_API, false, "cannot send: no %s", missing);
    return client_fail(c, &e);
}

/* Waits for the socket: POLLIN and/or POLLOUT as asked; the events that
 * are ready, 0 on timeout, -1 on error (errno set). */
static int wait_events(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;
    do
        n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n;
    /* An error or hang-up shows as readable: recv() reports it. */
    return (p.revents & (POLLERR | POLLHUP)) ? ((events & POLLIN) ? POLLIN : POLLOUT)
                                             : p.revents & events;
}

/* Acknowledge what arrived at once.  A server that writes a pipelined
 * group's replies in two pieces (Postfix: MAIL and RCPT, then BDAT LAST's
 * after the queue file is safe) holds the second back under Nagle until
 * the first is acknowledged, and Linux delays that ACK by up to 40 ms
 * when the client has nothing to send: one such stall per message. */
static void ack_now(int fd)
{
#ifdef TCP_QUICKACK
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
    (void)fd;
#endif
}

static void drive_read(hato_session *s, int fd, unsigned char *in, size_t cap)
{
    ssize_t n = recv(fd, in, cap, 0);
    if (n > 0)
        ack_now(fd);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            hato_session_io_failed(s, strerror(errno));
    } else if (n == 0) {
        hato_session_input_eof(s);
    } else {
        hato_session_input(s, in, (size_t)n);
    }
}

static void drive_write(hato_session *s, int fd, const uint8_t *out, size_t len)
{
    /* MSG_NOSIGNAL: a closed peer is an error to report, not a SIGPIPE
     * that kills the application. */
    ssize_t n = send(fd, out, len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            hato_session_io_failed(s, strerror(errno));
        return;
    }
    hato_session_output_done(s, (size_t)n);
}

void client_drive(hato_session *s, int fd)
{
    unsigned char in[READ_PIECE];
    for (;;) {
        unsigned want = hato_session_want(s);
        if (want & HATO_WANT_DONE)
            return;
        size_t len = 0;
        const uint8_t *out = NULL;
        if (want & HATO_WANT_WRITE)
            out = hato_session_output(s, &len);
        if (want & HATO_WANT_WRITE && len == 0)
            continue; /* the session decided there was nothing after all */
        /* Pipelined replies may arrive while a large write goes on: wait
         * for both, and read first, so neither side stalls on a full
         * buffer. */
        short events = (short)((len > 0 ? POLLOUT : 0) | (want & HATO_WANT_READ ? POLLIN : 0));
        if (events == 0)
            events = POLLIN; /* nothing asked: an EOF or error still ends it */
        int ready = wait_events(fd, events, hato_session_timeout(s));
        if (ready == 0) {
            hato_session_timed_out(s);
        } else if (ready < 0) {
            hato_session_io_failed(s, strerror(errno));
        } else if (ready & POLLIN) {
            drive_read(s, fd, in, sizeof in);
        } else {
            drive_write(s, fd, out, len);
        }
    }
}

hato_code client_finish(hato_client *c, hato_session *s, int fd)
{
    const hato_error *se = hato_session_error(s);
    hato_code code = HATO_OK;
    if (se != NULL)
        code = client_fail(c, se);
    if (hato_session_idle(s)) {
        c->idle = s;
        c->idle_fd = fd;
        clock_gettime(CLOCK_MONOTONIC, &c->idle_since);
        snprintf(c->idle_peer, sizeof c->idle_peer, "%s", c->peer);
        return code;
    }
    hato_session_free(s);
    close(fd);
    return code;
}

hato_code hato_client_send(hato_client *c, hato_message *m)
{
    c->failed = false;
    c->peer[0] = '\0';
    if (m == NULL)
        return HATO_E_ARGUMENT;
    if (check_message(c, m) != HATO_OK)
        return c->err.code;

    const hato_options *o = c->opt;
    if (c->idle != NULL) {
        if (idle_usable(c)) {
            hato_session *s = c->idle;
            int fd = c->idle_fd;
            c->idle = NULL;
            c->idle_fd = -1;
            snprintf(c->peer, sizeof c->peer, "%s", c->idle_peer);
            log_line(&o->log, HATO_LOG_DEBUG, "reusing the connection to %s", c->peer);
            hato_session_next(s, m);
            bool pulled = client_drive_watched(s, fd, m);
            const hato_error *se = hato_session_error(s);
            /* A server that dropped the connection before answering MAIL
             * (its idle timeout racing ours) is retried on a new one: no
             * recipient was tried and no content went out (a BDAT chunk
             * rides with MAIL), so nothing can be sent twice. */
            bool dropped = se != NULL && (se->code == HATO_E_NETWORK || se->code == HATO_E_TLS) &&
                           hato_message_recipient_reply(m, 0, NULL, NULL) == 0 && !pulled;
            if (!dropped)
                return client_finish(c, s, fd);
            log_line(&o->log, HATO_LOG_DEBUG, "%s dropped the idle connection; reconnecting",
                     c->peer);
            hato_session_free(s);
            close(fd);
        } else {
            close_idle(c, true);
        }
    }
    /* A new connection: the relay, its MX hosts, the fallbacks
     * (route.c). */
    return client_send_routed(c, m);
}
