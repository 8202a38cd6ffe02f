/*
 * test_connect.c - Happy Eyeballs (RFC 8305) in src/transport/connect.c,
 * on loopback only.
 *
 * A stalled address: a listening socket with backlog 0 whose accept queue
 * already holds one connection.  Linux then drops further SYNs, so a
 * connect to it neither succeeds nor fails until it times out -- what a
 * black-holed IPv6 route or a dead relay looks like.  127.0.0.2 and
 * 127.0.0.1 are both loopback, so one port can serve a stalled and a good
 * address side by side.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "transport/transport.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char logged[8192];

static void on_log(void *user, hato_log_level level, const char *line)
{
    (void)user;
    (void)level;
    size_t used = strlen(logged);
    snprintf(logged + used, sizeof logged - used, "%s\n", line);
}

/* A listening socket on addr:port (port 0: any); returns it and sets *port. */
static int listener(const char *addr, unsigned short *port, int backlog)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(*port)};
    inet_pton(AF_INET, addr, &sin.sin_addr);
    if (bind(s, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(s, backlog) != 0) {
        perror("bind/listen");
        exit(1);
    }
    socklen_t len = sizeof sin;
    getsockname(s, (struct sockaddr *)&sin, &len);
    *port = ntohs(sin.sin_port);
    return s;
}

/* Fills the accept queue of a backlog-0 listener: one finished connection. */
static int fill_queue(const char *addr, unsigned short port)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, addr, &sin.sin_addr);
    if (connect(c, (struct sockaddr *)&sin, sizeof sin) != 0) {
        perror("filling the accept queue");
        exit(1);
    }
    return c;
}

static struct addrinfo *numeric(const char *addr, unsigned short port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    char p[8];
    snprintf(p, sizeof p, "%u", port);
    struct addrinfo *ai = NULL;
    if (getaddrinfo(addr, p, &hints, &ai) != 0) {
        fprintf(stderr, "getaddrinfo %s failed\n", addr);
        exit(1);
    }
    return ai;
}

/* The trick must hold, or the race test below proves nothing: a plain
 * connect to the stalled address is still pending after 500 ms. */
static void test_stall_is_real(unsigned short port)
{
    struct addrinfo *ai = numeric("127.0.0.2", port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
    CHECK(r != 0 && errno == EINPROGRESS);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    CHECK_INT(poll(&p, 1, 500), 0);
    close(fd);
    freeaddrinfo(ai);
}

static void test_order(void)
{
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    /* Resolver order: 4a 4b 6a 4c 6b -> 6a 4a 6b 4b 4c. */
    struct addrinfo n[5];
    const int fam[5] = {AF_INET, AF_INET, AF_INET6, AF_INET, AF_INET6};
    for (int i = 0; i < 5; i++) {
        n[i] = (struct addrinfo){.ai_family = fam[i], .ai_next = i < 4 ? &n[i + 1] : NULL};
        n[i].ai_addr = fam[i] == AF_INET ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6;
    }
    const struct addrinfo *out[5];
    CHECK_INT(transport_order(n, out, 5), 5);
    CHECK(out[0] == &n[2] && out[1] == &n[0] && out[2] == &n[4] && out[3] == &n[1] &&
          out[4] == &n[3]);
    /* Cut at 3: the count still says 5. */
    const struct addrinfo *few[3];
    CHECK_INT(transport_order(n, few, 3), 5);
    CHECK(few[2] == &n[4]);
    /* One family only: the resolver's order. */
    CHECK_INT(transport_order(&n[3], out, 5), 2);
    CHECK(out[0] == &n[4] && out[1] == &n[3]);
}

static void test_deadline(void)
{
    CHECK_INT(transport_race_deadline(30000, 1), 30000);
    CHECK_INT(transport_race_deadline(30000, 3), 30500);
    CHECK_INT(transport_race_deadline(1000, 16), 2000); /* capped at twice */
}

/* The first address stalls, the second answers: connected well before the
 * per-attempt timeout (5 s), about one stagger (250 ms) after the start. */
static void test_stalled_first(unsigned short port)
{
    logged[0] = '\0';
    logger log = {on_log, NULL, HATO_LOG_DEBUG};
    struct addrinfo *stalled = numeric("127.0.0.2", port), *good = numeric("127.0.0.1", port);
    const struct addrinfo *addrs[] = {stalled, good};
    transport_target t = {.host = "relay.test", .port = port, .connect_timeout_ms = 5000};
    char peer[TRANSPORT_PEER_MAX], address[64];
    hato_error e;
    error_clear(&e);
    long t0 = now_ms();
    int fd = transport_race(&t, addrs, 2, 0, &log, peer, address, sizeof address, &e);
    long took = now_ms() - t0;
    CHECK(fd >= 0);
    CHECK_STR(address, "127.0.0.1");
    char want[64];
    snprintf(want, sizeof want, "relay.test[127.0.0.1]:%u", port);
    CHECK_STR(peer, want);
    CHECK(took >= TRANSPORT_STAGGER_MS - 20);
    CHECK(took < 1500);
    CHECK_HAS(logged, "connecting to relay.test[127.0.0.2]");
    CHECK_HAS(logged, "connecting to relay.test[127.0.0.1]");
    CHECK_HAS(logged, "abandoning the attempt to relay.test[127.0.0.2]");
    if (fd >= 0)
        close(fd);
    freeaddrinfo(stalled);
    freeaddrinfo(good);
}

/* A refused first address frees the next start at once: no stagger. */
static void test_refused_first(unsigned short good_port)
{
    unsigned short closed = 0;
    int tmp = listener("127.0.0.1", &closed, 1);
    close(tmp); /* nothing listens there now: connection refused */
    (void)good_port;
    int g = listener("127.0.0.3", &closed, 4);
    struct addrinfo *refused = numeric("127.0.0.1", closed), *good = numeric("127.0.0.3", closed);
    const struct addrinfo *addrs[] = {refused, good};
    transport_target t = {.host = "relay.test", .port = closed, .connect_timeout_ms = 5000};
    char peer[TRANSPORT_PEER_MAX], address[64];
    hato_error e;
    logger quiet = {0};
    long t0 = now_ms();
    int fd = transport_race(&t, addrs, 2, 0, &quiet, peer, address, sizeof address, &e);
    long took = now_ms() - t0;
    CHECK(fd >= 0);
    CHECK_STR(address, "127.0.0.3");
    CHECK(took < TRANSPORT_STAGGER_MS / 2);
    if (fd >= 0)
        close(fd);
    close(g);
    freeaddrinfo(refused);
    freeaddrinfo(good);
}

/* Every address fails: the error names each, with its own reason. */
static void test_all_fail(unsigned short stalled_port)
{
    /* 127.0.0.1 on the stalled listener's port: nothing listens there. */
    struct addrinfo *stalled = numeric("127.0.0.2", stalled_port);
    struct addrinfo *refused = numeric("127.0.0.1", stalled_port);
    const struct addrinfo *addrs[] = {stalled, refused};
    transport_target t = {.host = "relay.test", .port = stalled_port, .connect_timeout_ms = 400};
    char peer[TRANSPORT_PEER_MAX], address[64];
    hato_error e;
    error_clear(&e);
    logger quiet = {0};
    long t0 = now_ms();
    int fd = transport_race(&t, addrs, 2, 3, &quiet, peer, address, sizeof address, &e);
    long took = now_ms() - t0;
    CHECK_INT(fd, -1);
    CHECK_INT(e.code, HATO_E_CONNECT);
    CHECK(e.temporary);
    CHECK_HAS(e.message, "cannot connect to relay relay.test port");
    CHECK_HAS(e.message, "127.0.0.2: timed out (smtp_connect_timeout)");
    CHECK_HAS(e.message, "127.0.0.1: Connection refused");
    CHECK_HAS(e.message, "and 3 more");
    /* The stalled one has its full 400 ms, not a moment more than the
     * overall deadline (400 + 250). */
    CHECK(took >= 380 && took < 900);
    freeaddrinfo(stalled);
    freeaddrinfo(refused);
}

/* Three stalled addresses and a short timeout: the overall deadline
 * (twice the per-attempt timeout) ends the race, and the error says which
 * addresses ran out of time. */
static void test_overall_deadline(unsigned short stalled_port)
{
    struct addrinfo *s = numeric("127.0.0.2", stalled_port);
    const struct addrinfo *addrs[] = {s, s, s, s, s, s};
    transport_target t = {.host = "relay.test", .port = stalled_port, .connect_timeout_ms = 300};
    char peer[TRANSPORT_PEER_MAX], address[64];
    hato_error e;
    error_clear(&e);
    logger quiet = {0};
    long t0 = now_ms();
    int fd = transport_race(&t, addrs, 6, 0, &quiet, peer, address, sizeof address, &e);
    long took = now_ms() - t0;
    CHECK_INT(fd, -1);
    CHECK_INT(transport_race_deadline(300, 6), 600);
    CHECK(took >= 580 && took < 1000);
    CHECK_HAS(e.message, "timed out (smtp_connect_timeout)");
    CHECK_HAS(e.message, "before the overall deadline (600 ms)");
    freeaddrinfo(s);
}

int main(void)
{
    test_order();
    test_deadline();
    unsigned short port = 0;
    int good = listener("127.0.0.1", &port, 8);
    int stalled = listener("127.0.0.2", &port, 0);
    int filler = fill_queue("127.0.0.2", port);
    test_stall_is_real(port);
    test_stalled_first(port);
    test_refused_first(port);
    close(good);
    test_all_fail(port);
    test_overall_deadline(port);
    close(filler);
    close(stalled);
    return check_finish("test_connect");
}
