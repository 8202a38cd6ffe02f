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
#include <unistd.h>

/* The error names each address; past this many the rest are counted. */
#define REPORTED_ADDRESSES 4

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

/* Connects one address; 0 or an errno value (ETIMEDOUT for the timeout). */
static int connect_one(int fd, const struct addrinfo *ai, unsigned timeout_ms)
{
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    int ready = transport_wait(fd, POLLOUT, (int)timeout_ms);
    if (ready == 0)
        return ETIMEDOUT;
    if (ready < 0)
        return errno;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        return errno;
    return soerr;
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

    char failures[ERROR_MESSAGE_MAX / 2] = "";
    size_t nfailed = 0;
    int fd = -1;
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        char host[INET6_ADDRSTRLEN + 2] = "?";
        getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0, NI_NUMERICHOST);
        fd = open_socket(ai);
        int why = fd < 0 ? errno : connect_one(fd, ai, t->connect_timeout_ms);
        if (why == 0) {
            int one = 1;
            /* Commands are written whole; Nagle would only delay them. */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            snprintf(peer, TRANSPORT_PEER_MAX, "%s[%s]:%u", t->host, host, t->port);
            snprintf(address, addresslen, "%s", host);
            log_line(log, HATO_LOG_DEBUG, "connected to %s", peer);
            freeaddrinfo(list);
            return fd;
        }
        if (fd >= 0)
            close(fd);
        fd = -1;
        const char *reason = why == ETIMEDOUT ? "timed out (smtp_connect_timeout)" : strerror(why);
        log_line(log, HATO_LOG_DEBUG, "connect to %s[%s]:%u: %s; trying the next address", t->host,
                 host, t->port, reason);
        if (nfailed < REPORTED_ADDRESSES) {
            size_t used = strlen(failures);
            snprintf(failures + used, sizeof failures - used, "%s%s%s%s: %s",
                     used ? "; " : "", ai->ai_family == AF_INET6 ? "[" : "", host,
                     ai->ai_family == AF_INET6 ? "]" : "", reason);
        }
        nfailed++;
    }
    freeaddrinfo(list);
    error_set(err, HATO_E_CONNECT, HATO_LAYER_TRANSPORT, true,
              "cannot connect to relay %s port %u: %s%s", t->host, t->port, failures,
              nfailed > REPORTED_ADDRESSES ? "; and more" : "");
    return -1;
}
