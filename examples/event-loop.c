/* event-loop: many SMTP sessions at once from one thread, through the
 * I/O-free core (hato_session_*) and one epoll loop.  Each session has its
 * own socket and sends COUNT messages over its connection (keep-alive),
 * then QUIT.  No C peer (msmtp, libcurl's easy API, libESMTP) can run SMTP
 * sessions from an application's own event loop.
 *
 * usage: event-loop HOST PORT CAFILE USER PASSWORD FROM TO SESSIONS COUNT
 *   CAFILE "-" for no TLS at all; USER "-" for no authentication.
 * Prints the messages sent, the time, messages per second and the heap
 * held per session at the peak (glibc's mallinfo2).
 *
 * The password comes from the command line only because this is an
 * example; a real program reads it from a file or a credential store. */
#define _GNU_SOURCE
#include <hato.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif

struct conn {
    int fd;
    hato_session *s;
    hato_message *m;
    int left;          /* messages still to send after the current one */
    unsigned events;   /* what epoll waits for on fd now */
    long long deadline; /* ms on the monotonic clock; 0: none */
    int done;
};

static const char *from, *to;
static char text[10240];
static size_t text_len;
static long sent, failed;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t heap_in_use(void)
{
#ifdef HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

static hato_message *new_message(void)
{
    hato_message *m = hato_message_new();
    if (m == NULL)
        return NULL;
    hato_message_set_sender(m, from);
    hato_message_add_recipient(m, to);
    hato_message_set_content(m, text, text_len); /* borrowed: shared by all */
    return m;
}

static void watch(int ep, struct conn *c, unsigned events)
{
    if (events == c->events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
    c->events = events;
}

static void finish(int ep, struct conn *c)
{
    const hato_error *e = hato_session_error(c->s);
    if (e != NULL) {
        fprintf(stderr, "event-loop: session on fd %d: %s\n", c->fd, hato_error_message(e));
        failed++;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    hato_session_free(c->s);
    hato_message_free(c->m);
    c->s = NULL;
    c->m = NULL;
    c->done = 1;
}

/* Runs one session as far as it goes without blocking. */
static void drive(int ep, struct conn *c)
{
    for (;;) {
        unsigned want = hato_session_want(c->s);
        if (want & HATO_WANT_DONE) {
            if (!hato_session_idle(c->s)) {
                if (c->m != NULL && hato_message_sent(c->m))
                    sent++;
                finish(ep, c);
                return;
            }
            /* The message is through and the connection open: next one. */
            sent++;
            hato_message_free(c->m);
            c->m = NULL;
            if (c->left > 0 && (c->m = new_message()) != NULL) {
                c->left--;
                hato_session_next(c->s, c->m);
            } else {
                hato_session_quit(c->s);
            }
            continue;
        }
        if (want & HATO_WANT_WRITE) {
            size_t len;
            const uint8_t *p = hato_session_output(c->s, &len);
            ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n > 0) {
                hato_session_output_done(c->s, (size_t)n);
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                watch(ep, c, EPOLLOUT);
                return;
            }
            hato_session_io_failed(c->s, n < 0 ? strerror(errno) : "short write");
            continue;
        }
        uint8_t buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
#ifdef TCP_QUICKACK
            /* Acknowledge at once: a server's second write of replies
             * would otherwise wait for a delayed ACK (docs/api.md). */
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#endif
            hato_session_input(c->s, buf, (size_t)n);
            continue;
        }
        if (n == 0) {
            hato_session_input_eof(c->s);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int t = hato_session_timeout(c->s);
            c->deadline = t < 0 ? 0 : now_ms() + t;
            watch(ep, c, EPOLLIN);
            return;
        }
        hato_session_io_failed(c->s, strerror(errno));
    }
}

/* A whole decimal number in [min, max], or -1. */
static long number(const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    return v;
}

/* Everything the sessions still hold, on the way out. */
static void release(struct conn *conns, int n)
{
    for (int i = 0; conns != NULL && i < n; i++) {
        if (conns[i].done)
            continue;
        if (conns[i].fd >= 0)
            close(conns[i].fd);
        hato_session_free(conns[i].s);
        hato_message_free(conns[i].m);
    }
    free(conns);
}

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: event-loop host port cafile|- user|- password from to sessions count\n");
        return 64;
    }
    from = argv[6];
    to = argv[7];
    int nconn = (int)number(argv[8], 1, 100000), count = (int)number(argv[9], 1, 1000000);
    long port = number(argv[2], 1, 65535);
    if (nconn < 1 || count < 1 || port < 1) {
        fprintf(stderr, "event-loop: port 1-65535, sessions 1-100000 and count 1-1000000\n");
        return 64;
    }
    /* A 10 KB message, the size of a cron report. */
    text_len = (size_t)snprintf(text, sizeof text, "From: %s\nTo: %s\nSubject: event-loop\n\n", from, to);
    while (text_len + 72 < sizeof text) {
        memcpy(text + text_len, "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklm.\n", 72);
        text_len += 72;
    }
    /* One file descriptor per session, plus a few. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)nconn + 64 ? rl.rlim_max : (rlim_t)nconn + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int gai = getaddrinfo(argv[1], argv[2], &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "event-loop: %s: %s\n", argv[1], gai_strerror(gai));
        return 69;
    }
    char peer[NI_MAXHOST] = "";
    getnameinfo(ai->ai_addr, ai->ai_addrlen, peer, sizeof peer, NULL, 0, NI_NUMERICHOST);

    hato_options *o = hato_options_new();
    hato_options_set_relay(o, argv[1], (uint16_t)port);
    if (strcmp(argv[3], "-") == 0)
        hato_options_set_tls_level(o, HATO_TLS_NONE);
    else
        hato_options_set_ca_file(o, argv[3]);
    if (strcmp(argv[4], "-") != 0)
        hato_options_set_credentials(o, argv[4], argv[5]);
    hato_options_set_keep_alive(o, 60 * 1000);

    size_t heap_base = heap_in_use(), heap_peak = heap_base;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (ep < 0 || conns == NULL) {
        perror("event-loop");
        free(conns);
        freeaddrinfo(ai);
        hato_options_free(o);
        return 71;
    }
    for (int i = 0; i < nconn; i++)
        conns[i].fd = -1;
    long long t0 = now_ms();
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (c->fd < 0 || (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)) {
            fprintf(stderr, "event-loop: connect %s: %s\n", peer, strerror(errno));
            release(conns, nconn);
            freeaddrinfo(ai);
            hato_options_free(o);
            close(ep);
            return 69;
        }
        c->m = new_message();
        c->s = hato_session_new(o, c->m, peer);
        if (c->m == NULL || c->s == NULL) {
            fprintf(stderr, "event-loop: out of memory at session %d\n", i + 1);
            release(conns, nconn);
            freeaddrinfo(ai);
            hato_options_free(o);
            close(ep);
            return 71;
        }
        c->left = count - 1;
        /* The connect completes when the socket turns writable; until then
         * the session waits for the greeting, so EPOLLOUT|EPOLLIN is fine. */
        watch(ep, c, EPOLLIN | EPOLLOUT);
    }
    freeaddrinfo(ai);

    int running = nconn;
    struct epoll_event evs[256];
    long long last_scan = now_ms();
    while (running > 0) {
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->done)
                continue;
            drive(ep, c);
            if (c->done)
                running--;
        }
        size_t h = heap_in_use();
        /* cppcheck-suppress unsignedLessThanZero ; without mallinfo2 it sees h as 0 */
        if (h > heap_peak)
            heap_peak = h;
        /* Deadlines: one pass a second is plenty for timeouts of seconds. */
        long long t = now_ms();
        if (t - last_scan >= 1000) {
            last_scan = t;
            for (int i = 0; i < nconn; i++) {
                struct conn *c = &conns[i];
                if (!c->done && c->deadline && t >= c->deadline) {
                    hato_session_timed_out(c->s);
                    drive(ep, c);
                    if (c->done)
                        running--;
                }
            }
        }
    }
    double secs = (double)(now_ms() - t0) / 1000.0;
    printf("{\"sessions\": %d, \"messages\": %ld, \"failed_sessions\": %ld, \"seconds\": %.3f, "
           "\"msgs_per_s\": %.1f, \"heap_per_session\": %zu}\n",
           nconn, sent, failed, secs, secs > 0 ? (double)sent / secs : 0.0,
           (heap_peak - heap_base) / (size_t)nconn);
    release(conns, nconn);
    close(ep);
    hato_options_free(o);
    return failed ? 75 : 0;
}
