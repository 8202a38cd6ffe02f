/*
 * The heap of one session (issue 6, resource bounds): a whole SMTP
 * exchange through the I/O-free core, with the server's replies scripted,
 * for a 1 KB and a 100 MB message (streamed by a reader, never held) and
 * for 1 and HATO_MAX_RECIPIENTS recipients of the longest length RFC 5321
 * allows; in plain text, then over STARTTLS and implicit TLS.  The peak of
 * glibc's in-use heap (mallinfo2: arena bytes in use plus mmapped blocks,
 * which covers mbedTLS and libgsasl too) is sampled at every step and at
 * every allocation: the library's malloc and realloc are wrapped with
 * -Wl,--wrap, and calloc, which is all mbedTLS allocates with, is defined
 * here so that the shared mbedTLS's calls land here too.  The bounds below
 * are asserted and printed.  Under a sanitizer mallinfo2 reports nothing
 * and the test is skipped (77).
 *
 * TLS: a real handshake with the test's own mbedTLS server (tls_peer.h,
 * the same mbedTLS the library links) on memory buffers; its plaintext
 * replies are the scripted ones.  The client verifies (HATO_TLS_VERIFY,
 * the default level) against the CA of tests/setup/make-ca.sh, one
 * certificate; once more, for a figure, against the system CA bundle with
 * that CA appended, which is what the default store costs.
 *
 * The server shares the process heap, so every call into it (and the
 * buffers of the wire between the two) runs between server_begin() and
 * server_end(): what the heap grew by there is the server's, subtracted
 * from every sample, and nothing is sampled inside.  The test is one
 * thread, so the partition is exact as long as no freed block moves from
 * one side to the other unseen: glibc's tcache keeps freed blocks counted
 * as in use and hands them to the next caller of the size, so the test
 * runs with it off (GLIBC_TUNABLES, re-executing itself when needed), and
 * checks that the server's ledger comes back to 0 after each session.
 * Not in the figures: PSA's process-wide state under mbedTLS 3
 * (psa_crypto_init, once per process, before the first session).
 */
#define _GNU_SOURCE /* mallinfo2 */
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "hato.h"
#include "tls/tls.h" /* TLS_SYSTEM_CA_FILE */
#include "tls_peer.h"

#define KIB 1024L
#define MIB (1024L * 1024)
/* The ceiling of one session's heap, whatever the message size: the 1 MiB
 * output buffer (docs/architecture.md, "Limits") plus a 64 KiB body piece
 * and the reply parser, with room for allocator slack. */
#define SESSION_HEAP_MAX (1536 * KIB)
/* Growth from a 10 MB to a 100 MB message: none is expected (the output
 * buffer reaches its working size, a few body pieces, on any message of a
 * few hundred KB). */
#define SIZE_GROWTH_MAX (64 * KIB)
/* Per recipient: its copy, its reply (text kept for the result) and its
 * RCPT command in the output buffer; 1000 of the longest fit in OUT_LIMIT. */
#define PER_RCPT_MAX (2 * KIB)
/* What TLS adds to a session: mbedTLS's context with its two record
 * buffers (16 KiB of content each, plus headers and the cipher's room),
 * the configuration with the parsed trust anchor, the DRBG, the server's
 * certificate chain kept for the checks, and the handshake's state while
 * it runs.  About 100 KiB measured; a constant, whatever the message. */
#define TLS_EXTRA_MAX (256 * KIB)

void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_realloc(void *p, size_t n);
/* glibc's own allocator, which a program's calloc may call (glibc exports
 * it for allocators that interpose). */
void *__libc_calloc(size_t k, size_t n);

static long peak, base;
/* The client's trust anchors, a file in dir: the test CA alone, or
 * Debian's whole store with it. */
static const char *trust = "ca.crt";
/* The protocol the last TLS session spoke, for the report. */
static char tls_version[32];
/* The test's TLS server is running: its allocations are not sampled. */
static bool in_server;
/* In-use bytes the server holds now (its contexts and its wire), and the
 * level when the current server call began. */
static long server_held, server_from;

static long in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
}

/* The heap less the server's part: the library's, with the test's own few
 * blocks (options, message, script), which are the same in every case. */
static long client_in_use(void)
{
    return in_use() - server_held;
}

static void sample(void)
{
    if (in_server)
        return;
    long now = client_in_use();
    if (now > peak)
        peak = now;
}

/* Around every call that runs the server or moves bytes on its wire. */
static void server_begin(void)
{
    in_server = true;
    server_from = in_use();
}

static void server_end(void)
{
    server_held += in_use() - server_from;
    in_server = false;
}

void *__wrap_malloc(size_t n)
{
    sample();
    void *p = __real_malloc(n);
    sample();
    return p;
}
/* Every calloc of the process: the library's, and mbedTLS's, whose shared
 * library --wrap cannot reach (neither build has MBEDTLS_PLATFORM_MEMORY,
 * so mbedtls_platform_set_calloc_free is not there).  The program's
 * definition comes before libc's for every shared object. */
void *calloc(size_t k, size_t n)
{
    sample();
    void *p = __libc_calloc(k, n);
    sample();
    return p;
}
void *__wrap_realloc(void *p, size_t n)
{
    sample();
    void *q = __real_realloc(p, n);
    sample();
    return q;
}

struct gen {
    long long left;
    bool header_done;
};

static ptrdiff_t gen_read(void *user, char *dst, size_t cap)
{
    struct gen *g = user;
    static const char header[] = "From: a@example.test\nSubject: heap\n\n";
    if (!g->header_done) {
        g->header_done = true;
        memcpy(dst, header, sizeof header - 1 < cap ? sizeof header - 1 : cap);
        return (ptrdiff_t)(sizeof header - 1 < cap ? sizeof header - 1 : cap);
    }
    size_t n = 0;
    while (n + 78 <= cap && g->left > 0) {
        memset(dst + n, 'x', 77);
        dst[n + 77] = '\n';
        n += 78;
        g->left -= 78;
    }
    return (ptrdiff_t)n;
}

/* How the session reaches its relay. */
typedef enum wire {
    WIRE_PLAIN,    /* plain text throughout */
    WIRE_STARTTLS, /* plain text, then TLS from the 220 to STARTTLS on */
    WIRE_IMPLICIT, /* TLS from the first byte (RFC 8314) */
} wire;

/* Decrypts and drops what the client sent (the server's replies are
 * scripted, not answers); false on a TLS failure, noted in peer->failed. */
static bool server_drain(tls_peer *peer, long long *got)
{
    static unsigned char sink[16384];
    for (;;) {
        int rc = mbedtls_ssl_read(&peer->ssl, sink, sizeof sink);
        if (rc > 0) {
            *got += rc;
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE ||
            rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == 0)
            return true;
        peer->failed = rc;
        return false;
    }
}

/* One session; returns the peak heap above the level before it began, the
 * server's part excluded. */
static long session_peak(long long size, size_t nrcpts, wire how, bool *sent)
{
    *sent = false;
    /* The server first, so that its setup is on its side of the ledger. */
    tls_peer peer;
    bool have_peer = how != WIRE_PLAIN;
    if (have_peer) {
        server_begin();
        bool ok = tls_peer_init(&peer, (tls_peer_opts){0});
        server_end();
        CHECK(ok);
        if (!ok) {
            server_begin();
            tls_peer_free(&peer);
            server_end();
            return 0;
        }
    }
    base = client_in_use();
    peak = base;
    hato_options *o = hato_options_new();
    hato_message *m = hato_message_new();
    CHECK(o != NULL && m != NULL);
    if (how == WIRE_PLAIN) {
        hato_options_set_relay(o, "relay.example", 25);
        hato_options_set_tls_level(o, HATO_TLS_NONE);
    } else {
        /* server.crt is for localhost. */
        hato_options_set_relay(o, "localhost", how == WIRE_IMPLICIT ? 465 : 587);
        hato_options_set_tls_wrapper(o, how == WIRE_IMPLICIT);
        hato_options_set_tls_level(o, HATO_TLS_VERIFY);
        hato_options_set_ca_file(o, in_dir(trust));
    }
    hato_options_set_helo_name(o, "client.example");
    hato_message_set_sender(m, "me@example.test");
    char addr[256];
    for (size_t i = 0; i < nrcpts; i++) {
        /* 254 characters: the longest path RFC 5321 4.5.3.1.3 allows, less <>. */
        int k = snprintf(addr, sizeof addr, "r%zu", i);
        memset(addr + k, 'a', 64 - (size_t)k);
        snprintf(addr + 64, sizeof addr - 64, "@%.*s.test", 184,
                 "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
                 "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
                 "dddddddddddddddddddddddddddddddddddddddd");
        CHECK_INT(hato_message_add_recipient(m, addr), HATO_OK);
    }
    struct gen g = {size, false};
    hato_message_set_reader(m, gen_read, &g);

    hato_session *s = hato_session_new(o, m, how == WIRE_PLAIN ? NULL : "127.0.0.1");
    CHECK(s != NULL);
    /* Replies in the order the pipelined commands go out. */
    size_t envelope_len = (1 + nrcpts) * 8 + 8;
    char *envelope = malloc(envelope_len + 1);
    CHECK(envelope != NULL);
    char *p = envelope;
    for (size_t i = 0; i < 1 + nrcpts; i++, p += 8)
        memcpy(p, "250 ok\r\n", 8);
    memcpy(p, "354 go\r\n", 8);
    static const char ehlo[] = "250-relay\r\n250-8BITMIME\r\n250 PIPELINING\r\n";
    const char *script[8];
    size_t nscript = 0, tls_from = 0;
    script[nscript++] = "220 relay ESMTP\r\n";
    if (how == WIRE_STARTTLS) {
        script[nscript++] = "250-relay\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
        script[nscript++] = "220 2.0.0 ready for TLS\r\n";
        tls_from = nscript; /* the handshake follows the 220 */
    }
    script[nscript++] = ehlo;
    script[nscript++] = envelope;
    script[nscript++] = "250 2.0.0 queued\r\n221 bye\r\n";
    size_t lens[8];
    for (size_t i = 0; i < nscript; i++)
        lens[i] = script[i] == envelope ? envelope_len : strlen(script[i]);
    if (how == WIRE_PLAIN)
        tls_from = nscript;
    size_t step = 0;
    long long steps = 0, got = 0; /* got: plaintext the server decrypted */
    while (s != NULL && !(hato_session_want(s) & HATO_WANT_DONE) && steps++ < 100000000) {
        sample();
        bool tls = have_peer && step >= tls_from;
        unsigned want = hato_session_want(s);
        if (want & HATO_WANT_WRITE) {
            size_t len;
            const uint8_t *out = hato_session_output(s, &len);
            if (len > 0 && tls) {
                /* The server's wire is the server's. */
                server_begin();
                tls_peer_put(&peer, out, len);
                server_end();
            }
            hato_session_output_done(s, len); /* in plain text: dropped */
            if (len > 0)
                continue;
        }
        if (tls) {
            server_begin();
            tls_peer_step(&peer);
            if (peer.done)
                server_drain(&peer, &got);
            const unsigned char *in;
            size_t n = tls_peer_pending(&peer, SIZE_MAX, &in);
            server_end();
            if (n > 0) {
                hato_session_input(s, in, n);
                server_begin();
                tls_peer_taken(&peer, n);
                server_end();
                continue;
            }
            if (peer.failed != 0) {
                fprintf(stderr, "test server: TLS failed: -0x%04x\n", (unsigned)-peer.failed);
                break;
            }
            if (!peer.done) {
                fprintf(stderr, "test: handshake stuck\n");
                break;
            }
        }
        if (step < nscript) {
            if (tls) {
                server_begin();
                bool ok = tls_peer_write_all(&peer, (const unsigned char *)script[step],
                                             lens[step], &peer.failed);
                server_end();
                CHECK(ok);
            } else {
                hato_session_input(s, (const uint8_t *)script[step], lens[step]);
            }
            step++;
        } else {
            hato_session_input_eof(s);
        }
    }
    sample();
    const hato_error *e = s ? hato_session_error(s) : NULL;
    if (e != NULL)
        fprintf(stderr, "session failed: %s\n", hato_error_message(e));
    *sent = e == NULL && hato_message_sent(m);
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
    free(envelope);
    if (have_peer) {
        /* The whole message crossed the TLS link. */
        CHECK(got > size);
        snprintf(tls_version, sizeof tls_version, "%s", mbedtls_ssl_get_version(&peer.ssl));
        server_begin();
        tls_peer_free(&peer);
        server_end();
        /* The server's ledger balances: all it took, it gave back, so no
         * block changed sides unseen (a client's block freed during a
         * server call would leave it below 0). */
        CHECK_INT(server_held, 0);
    }
    return peak - base;
}

/* The figures of one kind of wire. */
typedef struct figures {
    long small, mid, big, one, many;
} figures;

static figures measure(wire how, bool all)
{
    figures f = {0};
    bool sent = false;
    f.small = session_peak(1000, 1, how, &sent);
    CHECK(sent);
    if (!all)
        return f;
    f.mid = session_peak(10LL * 1000 * 1000, 1, how, &sent);
    CHECK(sent);
    f.big = session_peak(100LL * 1000 * 1000, 1, how, &sent);
    CHECK(sent);
    f.one = session_peak(10000, 1, how, &sent);
    CHECK(sent);
    f.many = session_peak(10000, HATO_MAX_RECIPIENTS, how, &sent);
    CHECK(sent);
    return f;
}

static void report(const char *what, figures f, long ceiling)
{
    printf("heap, %s: 1 KB message %ld KiB, 10 MB %ld KiB, 100 MB %ld KiB (growth 10 -> 100 MB "
           "%ld KiB, bound %ld; ceiling %ld KiB)\n", what, f.small / KIB, f.mid / KIB,
           f.big / KIB, (f.big - f.mid) / KIB, SIZE_GROWTH_MAX / KIB, ceiling / KIB);
    printf("heap, %s: 1 recipient %ld KiB, %d recipients of 254 bytes %ld KiB (%ld bytes each, "
           "bound %ld)\n", what, f.one / KIB, HATO_MAX_RECIPIENTS, f.many / KIB,
           (f.many - f.one) / (HATO_MAX_RECIPIENTS - 1), PER_RCPT_MAX);
}

static void check_bounds(figures f, long ceiling)
{
    CHECK(f.small <= ceiling);
    CHECK(f.mid <= ceiling);
    CHECK(f.big <= ceiling);
    CHECK(f.big - f.mid <= SIZE_GROWTH_MAX);
    CHECK((f.many - f.one) / (HATO_MAX_RECIPIENTS - 1) <= PER_RCPT_MAX);
}

/* glibc's tcache off (see the top), for this process and what it runs. */
static bool tcache_off(void)
{
    static const char off[] = "glibc.malloc.tcache_count=0";
    const char *t = getenv("GLIBC_TUNABLES");
    for (const char *at = t; at != NULL && (at = strstr(at, off)) != NULL; at++)
        if ((at == t || at[-1] == ':') && (at[sizeof off - 1] == '\0' || at[sizeof off - 1] == ':'))
            return true;
    return false;
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!tcache_off()) {
        const char *t = getenv("GLIBC_TUNABLES");
        char v[1024];
        snprintf(v, sizeof v, "%s%sglibc.malloc.tcache_count=0", t ? t : "", t ? ":" : "");
        if (setenv("GLIBC_TUNABLES", v, 1) == 0)
            execv("/proc/self/exe", argv);
        perror("heap: cannot run again with tcache off");
        return 1;
    }
    void *volatile probe = malloc(64); /* volatile: kept, not elided */
    long probed = in_use();
    free(probe);
    if (probed == 0) {
        printf("heap: mallinfo2 reports nothing (a sanitizer's allocator?): skipped\n");
        return 77;
    }
    figures plain = measure(WIRE_PLAIN, true);
    report("plain text", plain, SESSION_HEAP_MAX);
    check_bounds(plain, SESSION_HEAP_MAX);

    /* The certificates and PSA before any measured session. */
    if (!tls_peer_setup("heap"))
        return 1;
    if (tls_peer_make_certs()) {
        figures starttls = measure(WIRE_STARTTLS, true);
        figures implicit = measure(WIRE_IMPLICIT, false);
        report("STARTTLS", starttls, SESSION_HEAP_MAX + TLS_EXTRA_MAX);
        printf("heap, implicit TLS: 1 KB message %ld KiB (%s, %s)\n", implicit.small / KIB,
               tls_version, hato_tls_backend_version());
        printf("heap: TLS adds %ld KiB to a 1 KB message (STARTTLS), %ld KiB (implicit TLS), "
               "%ld KiB to a 100 MB one (bound %ld)\n", (starttls.small - plain.small) / KIB,
               (implicit.small - plain.small) / KIB, (starttls.big - plain.big) / KIB,
               TLS_EXTRA_MAX / KIB);
        check_bounds(starttls, SESSION_HEAP_MAX + TLS_EXTRA_MAX);
        /* What the default trust store costs instead of one anchor: the
         * system bundle the library reads when no CA is set (Debian's
         * ca-certificates), with the test CA appended.  Printed, not
         * asserted: its size is the machine's. */
        char cmd[512];
        snprintf(cmd, sizeof cmd, "cat '%s' '%s' > '%s'", TLS_SYSTEM_CA_FILE, in_dir("ca.crt"),
                 in_dir("bundle.crt"));
        if (access(TLS_SYSTEM_CA_FILE, R_OK) == 0 && system(cmd) == 0) {
            trust = "bundle.crt";
            figures store = measure(WIRE_STARTTLS, false);
            trust = "ca.crt";
            printf("heap, STARTTLS with the system CA bundle: 1 KB message %ld KiB\n",
                   store.small / KIB);
        } else {
            printf("heap: no %s, the bundle case skipped\n", TLS_SYSTEM_CA_FILE);
        }
        CHECK(implicit.small <= SESSION_HEAP_MAX + TLS_EXTRA_MAX);
        CHECK(starttls.small - plain.small <= TLS_EXTRA_MAX);
        CHECK(implicit.small - plain.small <= TLS_EXTRA_MAX);
        CHECK(starttls.big - plain.big <= TLS_EXTRA_MAX);
    } else {
        CHECK(!"certificates");
    }
    tls_peer_cleanup();

    /* One more recipient than the limit is refused, with the message intact. */
    hato_message *m = hato_message_new();
    for (int i = 0; i < HATO_MAX_RECIPIENTS; i++) {
        char a[32];
        snprintf(a, sizeof a, "r%d@example.test", i);
        CHECK_INT(hato_message_add_recipient(m, a), HATO_OK);
    }
    CHECK_INT(hato_message_add_recipient(m, "one.more@example.test"), HATO_E_ARGUMENT);
    CHECK_INT(hato_message_recipient_count(m), HATO_MAX_RECIPIENTS);
    hato_message_free(m);
    return check_finish("heap");
}
