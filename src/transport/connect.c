/*
 * connect.c - resolve a host and race its addresses (Happy Eyeballs,
 * RFC 8305): a relay whose IPv6 address is black-holed, or whose first
 * address is a dead machine, costs a quarter of a second instead of a
 * whole smtp_connect_timeout.
 */
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The error names each address; past this many the rest are counted. */
#define REPORTED_ADDRESSES 4

/* One address's attempt.  The states only move forward. */
typedef enum attempt_state {
    ATTEMPT_PENDING = 0,   /* not started yet */
    ATTEMPT_CONNECTING,    /* SYN sent, waiting for POLLOUT */
    ATTEMPT_FAILED,        /* why holds the errno (ETIMEDOUT: our timeout) */
    ATTEMPT_WON,
    ATTEMPT_ABANDONED,     /* another address won, or the race ran out */
} attempt_state;

typedef struct attempt {
    const struct addrinfo *ai;
    attempt_state state;
    int fd;                /* owned while CONNECTING or WON, else -1 */
    int why;
    long started_ms;
    char host[INET6_ADDRSTRLEN + 2]; /* the numeric address */
} attempt;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_socket(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

size_t transport_order(const struct addrinfo *list, const struct addrinfo **out, size_t max)
{
    /* Two cursors walk the list, one per family; anything that is neither
     * (it cannot come from a TCP lookup) goes last. */
    const struct addrinfo *v6 = list, *v4 = list;
    size_t total = 0;
    bool six = true;
    for (;;) {
        while (v6 != NULL && v6->ai_family != AF_INET6)
            v6 = v6->ai_next;
        while (v4 != NULL && v4->ai_family == AF_INET6)
            v4 = v4->ai_next;
        if (v6 == NULL && v4 == NULL)
            break;
        const struct addrinfo **pick = (six && v6 != NULL) || v4 == NULL ? &v6 : &v4;
        if (total < max)
            out[total] = *pick;
        total++;
        *pick = (*pick)->ai_next;
        six = !six;
    }
    return total;
}

unsigned transport_race_deadline(unsigned connect_timeout_ms, size_t n)
{
    unsigned long long all = connect_timeout_ms +
                             (unsigned long long)TRANSPORT_STAGGER_MS * (n > 0 ? n - 1 : 0);
    unsigned long long cap = 2ull * connect_timeout_ms;
    return (unsigned)(all < cap ? all : cap);
}

static const char *reason_text(int why)
{
    return why == ETIMEDOUT ? "timed out (smtp_connect_timeout)" : strerror(why);
}

/* Starts attempt a: the socket and a non-blocking connect. */
static void start(const transport_target *t, attempt *a, const logger *log, size_t k, size_t n)
{
    a->started_ms = now_ms();
    log_line(log, HATO_LOG_DEBUG, "connecting to %s[%s]:%u (address %zu of %zu)", t->host,
             a->host, t->port, k + 1, n);
    a->fd = open_socket(a->ai);
    // NOLINTNEXTLINE(bugprone-branch-clone): the first and last branches fail alike, in order
    if (a->fd < 0) {
        a->why = errno;
        a->state = ATTEMPT_FAILED;
    } else if (connect(a->fd, a->ai->ai_addr, a->ai->ai_addrlen) == 0) {
        a->state = ATTEMPT_WON; /* loopback may connect at once */
    } else if (errno == EINPROGRESS || errno == EINTR) {
        a->state = ATTEMPT_CONNECTING; /* EINTR: it goes on in the background */
    } else {
        a->why = errno;
        a->state = ATTEMPT_FAILED;
    }
}

static void fail(const transport_target *t, attempt *a, int why, const logger *log)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    a->why = why;
    a->state = ATTEMPT_FAILED;
    log_line(log, HATO_LOG_DEBUG, "connect to %s[%s]:%u: %s; trying the next address", t->host,
             a->host, t->port, reason_text(why));
}

/* The outcome of a CONNECTING attempt whose socket polled ready. */
static void settle(const transport_target *t, attempt *a, const logger *log)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = errno;
    if (soerr == 0)
        a->state = ATTEMPT_WON;
    else
        fail(t, a, soerr, log);
}

/* The error: every address with why it failed, in the order tried. */
static void report(const transport_target *t, const attempt *at, size_t n, size_t more,
                   unsigned deadline_ms, hato_error *err)
{
    char failures[ERROR_MESSAGE_MAX / 2] = "";
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (shown == REPORTED_ADDRESSES) {
            more += n - i;
            break;
        }
        const attempt *a = &at[i];
        char why[96];
        if (a->state == ATTEMPT_FAILED)
            snprintf(why, sizeof why, "%s", reason_text(a->why));
        else if (a->state == ATTEMPT_ABANDONED)
            snprintf(why, sizeof why, "no answer before the overall deadline (%u ms)", deadline_ms);
        else
            snprintf(why, sizeof why, "not tried: the overall deadline (%u ms) had passed",
                     deadline_ms);
        size_t used = strlen(failures);
        bool six = a->ai->ai_family == AF_INET6;
        snprintf(failures + used, sizeof failures - used, "%s%s%s%s: %s", used ? "; " : "",
                 six ? "[" : "", a->host, six ? "]" : "", why);
        shown++;
    }
    char tail[48] = "";
    if (more > 0)
        snprintf(tail, sizeof tail, "; and %zu more", more);
    error_set(err, HATO_E_CONNECT, HATO_LAYER_TRANSPORT, true,
              "cannot connect to relay %s port %u: %s%s", t->host, t->port, failures, tail);
}

int transport_race(const transport_target *t, const struct addrinfo *const *addrs, size_t n,
                   size_t more, const logger *log, char peer[TRANSPORT_PEER_MAX],
                   char *address, size_t addresslen, hato_error *err)
{
    attempt at[TRANSPORT_MAX_ADDRESSES];
    if (n > TRANSPORT_MAX_ADDRESSES) {
        more += n - TRANSPORT_MAX_ADDRESSES;
        n = TRANSPORT_MAX_ADDRESSES;
    }
    for (size_t i = 0; i < n; i++) {
        at[i] = (attempt){.ai = addrs[i], .fd = -1};
        snprintf(at[i].host, sizeof at[i].host, "?");
        getnameinfo(addrs[i]->ai_addr, addrs[i]->ai_addrlen, at[i].host, sizeof at[i].host, NULL,
                    0, NI_NUMERICHOST);
    }
    unsigned deadline_ms = transport_race_deadline(t->connect_timeout_ms, n);
    long begin = now_ms(), end = begin + (long)deadline_ms;
    long next_start = begin; /* when the next pending address may start */
    size_t next = 0;          /* the next pending address */
    attempt *winner = NULL;

    while (winner == NULL) {
        long now = now_ms();
        size_t connecting = 0;
        for (size_t i = 0; i < next; i++)
            connecting += at[i].state == ATTEMPT_CONNECTING;
        /* RFC 8305 section 5: start the next one after the delay, or at
         * once when nothing is in flight any more. */
        if (next < n && now < end && (now >= next_start || connecting == 0)) {
            attempt *a = &at[next];
            start(t, a, log, next, n);
            next++;
            if (a->state == ATTEMPT_WON) {
                winner = a;
                break;
            }
            if (a->state == ATTEMPT_FAILED) {
                fail(t, a, a->why, log);
                next_start = now;
            } else {
                next_start = now + TRANSPORT_STAGGER_MS;
            }
            continue;
        }
        if (connecting == 0)
            break; /* every address failed, or the deadline passed */
        if (now >= end) {
            for (size_t i = 0; i < next; i++) {
                if (at[i].state == ATTEMPT_CONNECTING) {
                    close(at[i].fd);
                    at[i].fd = -1;
                    at[i].state = ATTEMPT_ABANDONED;
                    log_line(log, HATO_LOG_DEBUG, "connect to %s[%s]:%u: no answer before the "
                             "overall deadline (%u ms)", t->host, at[i].host, t->port, deadline_ms);
                }
            }
            break;
        }

        /* Wait for the first of: a socket settling, an attempt's own
         * timeout, the next start, the overall deadline. */
        struct pollfd pfd[TRANSPORT_MAX_ADDRESSES];
        size_t who[TRANSPORT_MAX_ADDRESSES], np = 0;
        long wake = end;
        if (next < n && next_start < wake)
            wake = next_start;
        for (size_t i = 0; i < next; i++) {
            if (at[i].state != ATTEMPT_CONNECTING)
                continue;
            long own = at[i].started_ms + (long)t->connect_timeout_ms;
            if (own < wake)
                wake = own;
            pfd[np] = (struct pollfd){.fd = at[i].fd, .events = POLLOUT};
            who[np++] = i;
        }
        int timeout = wake > now ? (int)(wake - now) : 0;
        int ready = poll(pfd, (nfds_t)np, timeout);
        if (ready < 0 && errno != EINTR) {
            int why = errno;
            for (size_t k = 0; k < np; k++)
                fail(t, &at[who[k]], why, log);
            continue;
        }
        now = now_ms();
        for (size_t k = 0; k < np && ready > 0; k++) {
            attempt *a = &at[who[k]];
            if (pfd[k].revents != 0) {
                settle(t, a, log);
                if (a->state == ATTEMPT_WON) {
                    winner = a;
                    break;
                }
                next_start = now; /* a failure frees the next start */
            }
        }
        if (winner != NULL)
            break;
        for (size_t k = 0; k < np; k++) {
            attempt *a = &at[who[k]];
            if (a->state == ATTEMPT_CONNECTING &&
                now - a->started_ms >= (long)t->connect_timeout_ms) {
                fail(t, a, ETIMEDOUT, log);
                next_start = now;
            }
        }
    }

    /* The losers are closed: a late SYN-ACK then meets a RST. */
    for (size_t i = 0; i < next; i++) {
        if (&at[i] != winner && at[i].state == ATTEMPT_CONNECTING) {
            close(at[i].fd);
            at[i].fd = -1;
            at[i].state = ATTEMPT_ABANDONED;
            log_line(log, HATO_LOG_DEBUG, "abandoning the attempt to %s[%s]:%u: %s answered first",
                     t->host, at[i].host, t->port, winner ? winner->host : "another address");
        }
    }
    if (winner == NULL) {
        report(t, at, n, more, deadline_ms, err);
        return -1;
    }
    int one = 1;
    /* Commands are written whole; Nagle would only delay them. */
    setsockopt(winner->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    snprintf(peer, TRANSPORT_PEER_MAX, "%s[%s]:%u", t->host, winner->host, t->port);
    snprintf(address, addresslen, "%s", winner->host);
    log_line(log, HATO_LOG_DEBUG, "connected to %s after %ld ms", peer, now_ms() - begin);
    return winner->fd;
}

int transport_connect(const transport_target *t, const logger *log, char peer[TRANSPORT_PEER_MAX],
                      char *address, size_t addresslen, hato_error *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    hints.ai_family = t->family == HATO_FAMILY_IPV4 ? AF_INET
                      : t->family == HATO_FAMILY_IPV6 ? AF_INET6 : AF_UNSPEC;
    char port[8];
    snprintf(port, sizeof port, "%u", t->port);
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(t->host, port, &hints, &list);
    if (rc != 0) {
        const char *family = t->family == HATO_FAMILY_IPV4 ? " (IPv4 only: inet_protocols = ipv4)"
                             : t->family == HATO_FAMILY_IPV6 ? " (IPv6 only: inet_protocols = ipv6)"
                             : "";
        /* Postfix defers on lookup failures: a name service may recover. */
        error_set(err, HATO_E_RESOLVE, HATO_LAYER_TRANSPORT, true,
                  "cannot resolve relay host %s%s: %s; check relayhost", t->host, family,
                  rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    const struct addrinfo *order[TRANSPORT_MAX_ADDRESSES];
    size_t total = transport_order(list, order, TRANSPORT_MAX_ADDRESSES);
    size_t n = total < TRANSPORT_MAX_ADDRESSES ? total : TRANSPORT_MAX_ADDRESSES;
    int fd = transport_race(t, order, n, total - n, log, peer, address, addresslen, err);
    freeaddrinfo(list);
    return fd;
}
