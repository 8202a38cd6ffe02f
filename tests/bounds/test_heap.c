/*
 * The heap of one session (issue 6, resource bounds): a whole SMTP
 * exchange through the I/O-free core, with the server's replies scripted,
 * for a 1 KB and a 100 MB message (streamed by a reader, never held) and
 * for 1 and HATO_MAX_RECIPIENTS recipients of the longest length RFC 5321
 * allows.  The peak of glibc's in-use heap (mallinfo2: arena bytes in use
 * plus mmapped blocks, which covers mbedTLS and libgsasl too) is sampled
 * at every step and at every allocation of the library itself (wrapped
 * with -Wl,--wrap); the bounds below are asserted and printed.  Under a
 * sanitizer mallinfo2 reports nothing and the test is skipped (77).
 */
#define _GNU_SOURCE /* mallinfo2 */
#include <malloc.h>
#include <stdlib.h>

#include "check.h"
#include "hato.h"

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

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);

static long peak, base;

static long in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
}

static void sample(void)
{
    long now = in_use();
    if (now > peak)
        peak = now;
}

void *__wrap_malloc(size_t n)
{
    sample();
    void *p = __real_malloc(n);
    sample();
    return p;
}
void *__wrap_calloc(size_t k, size_t n)
{
    sample();
    void *p = __real_calloc(k, n);
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

static ptrdiff_t gen_read(void *user, char *buf, size_t cap)
{
    struct gen *g = user;
    static const char header[] = "From: a@example.test\nSubject: heap\n\n";
    if (!g->header_done) {
        g->header_done = true;
        memcpy(buf, header, sizeof header - 1 < cap ? sizeof header - 1 : cap);
        return (ptrdiff_t)(sizeof header - 1 < cap ? sizeof header - 1 : cap);
    }
    size_t n = 0;
    while (n + 78 <= cap && g->left > 0) {
        memset(buf + n, 'x', 77);
        buf[n + 77] = '\n';
        n += 78;
        g->left -= 78;
    }
    return (ptrdiff_t)n;
}

/* One session; returns the peak heap above the level before it began. */
static long session_peak(long long size, size_t nrcpts, bool *sent)
{
    base = in_use();
    peak = base;
    hato_options *o = hato_options_new();
    hato_message *m = hato_message_new();
    CHECK(o != NULL && m != NULL);
    hato_options_set_relay(o, "relay.example", 25);
    hato_options_set_tls_level(o, HATO_TLS_NONE);
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

    hato_session *s = hato_session_new(o, m, NULL);
    CHECK(s != NULL);
    /* Replies in the order the pipelined commands go out. */
    size_t envelope_len = (1 + nrcpts) * 8 + 8;
    char *envelope = malloc(envelope_len + 1);
    CHECK(envelope != NULL);
    char *p = envelope;
    for (size_t i = 0; i < 1 + nrcpts; i++, p += 8)
        memcpy(p, "250 ok\r\n", 8);
    memcpy(p, "354 go\r\n", 8);
    const char *script[] = {"220 relay ESMTP\r\n", "250-relay\r\n250-8BITMIME\r\n250 PIPELINING\r\n",
                            envelope, "250 2.0.0 queued\r\n221 bye\r\n"};
    size_t lens[] = {strlen(script[0]), strlen(script[1]), envelope_len, strlen(script[3])};
    size_t step = 0;
    long long steps = 0;
    while (s != NULL && !(hato_session_want(s) & HATO_WANT_DONE) && steps++ < 100000000) {
        sample();
        unsigned want = hato_session_want(s);
        if (want & HATO_WANT_WRITE) {
            size_t len;
            hato_session_output(s, &len);
            hato_session_output_done(s, len);
            if (len > 0)
                continue;
        }
        if (step < sizeof lens / sizeof lens[0]) {
            hato_session_input(s, (const uint8_t *)script[step], lens[step]);
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
    return peak - base;
}

int main(void)
{
    void *volatile probe = malloc(64); /* volatile: kept, not elided */
    long probed = in_use();
    free(probe);
    if (probed == 0) {
        printf("heap: mallinfo2 reports nothing (a sanitizer's allocator?): skipped\n");
        return 77;
    }
    bool sent = false;
    long small = session_peak(1000, 1, &sent);
    CHECK(sent);
    long mid = session_peak(10LL * 1000 * 1000, 1, &sent);
    CHECK(sent);
    long big = session_peak(100LL * 1000 * 1000, 1, &sent);
    CHECK(sent);
    long one = session_peak(10000, 1, &sent);
    CHECK(sent);
    long many = session_peak(10000, HATO_MAX_RECIPIENTS, &sent);
    CHECK(sent);
    printf("heap: 1 KB message %ld KiB, 10 MB %ld KiB, 100 MB %ld KiB (growth 10 -> 100 MB "
           "%ld KiB, bound %ld; ceiling %ld KiB)\n", small / KIB, mid / KIB, big / KIB,
           (big - mid) / KIB, SIZE_GROWTH_MAX / KIB, SESSION_HEAP_MAX / KIB);
    printf("heap: 1 recipient %ld KiB, %d recipients of 254 bytes %ld KiB (%ld bytes each, "
           "bound %ld)\n", one / KIB, HATO_MAX_RECIPIENTS, many / KIB,
           (many - one) / (HATO_MAX_RECIPIENTS - 1), PER_RCPT_MAX);
    CHECK(small <= SESSION_HEAP_MAX);
    CHECK(mid <= SESSION_HEAP_MAX);
    CHECK(big <= SESSION_HEAP_MAX);
    CHECK(big - mid <= SIZE_GROWTH_MAX);
    CHECK((many - one) / (HATO_MAX_RECIPIENTS - 1) <= PER_RCPT_MAX);

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
