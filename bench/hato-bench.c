/* hato-bench: the library's figures for bench/run.sh.
 *
 * usage: hato-bench HOST PORT MODE CAFILE USER PASSWORD COUNT SIZE
 *   MODE      plain (no TLS), starttls, or tls (implicit, RFC 8314)
 *   USER      "-" for no authentication
 *   COUNT     messages sent over one connection (keep-alive when > 1)
 *   SIZE      bytes of each message (headers included), made on the fly
 *             by a reader callback, so the program holds none of it
 *
 * Prints one line of JSON: messages, seconds, messages per second, MB/s
 * of message content, the heap the library holds for a live session
 * (mallinfo2 when the first body and when the last body start to be
 * pulled, less the figure before the client existed), and the process's
 * peak RSS.
 */
#define _GNU_SOURCE
#include <hato.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static size_t heap_now(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd; /* in use, arenas plus mmapped blocks */
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct body {
    unsigned long long size, done;
    unsigned index;
    size_t heap_seen; /* heap in use at the first read of this message */
    char header[256];
    size_t header_len;
};

/* 71-byte lines of text: the shape of a log report, LF line ends. */
static const char line[] =
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 01234\n";

static ptrdiff_t read_body(void *user, char *buf, size_t cap)
{
    struct body *b = user;
    if (b->heap_seen == 0)
        b->heap_seen = heap_now();
    size_t n = 0;
    while (n < cap && b->done < b->size) {
        const char *src;
        size_t avail, off;
        if (b->done < b->header_len) {
            src = b->header;
            off = (size_t)b->done;
            avail = b->header_len - off;
        } else {
            src = line;
            off = (size_t)((b->done - b->header_len) % (sizeof line - 1));
            avail = sizeof line - 1 - off;
        }
        if (avail > cap - n)
            avail = cap - n;
        if (avail > b->size - b->done)
            avail = (size_t)(b->size - b->done);
        memcpy(buf + n, src + off, avail);
        n += avail;
        b->done += avail;
    }
    return (ptrdiff_t)n;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: hato-bench host port plain|starttls|tls cafile user|- password count size\n");
        return 64;
    }
    const char *mode = argv[3];
    long count = atol(argv[7]);
    unsigned long long size = strtoull(argv[8], NULL, 10);
    size_t heap_before = heap_now();

    hato_options *o = hato_options_new();
    hato_options_set_relay(o, argv[1], (uint16_t)atoi(argv[2]));
    if (strcmp(mode, "plain") == 0) {
        hato_options_set_tls_level(o, HATO_TLS_NONE);
    } else {
        hato_options_set_ca_file(o, argv[4]);
        hato_options_set_tls_wrapper(o, strcmp(mode, "tls") == 0);
    }
    if (strcmp(argv[5], "-") != 0) {
        hato_options_set_credentials(o, argv[5], argv[6]);
        hato_options_set_sasl_mechanisms(o, "plain");
        if (strcmp(mode, "plain") == 0)
            hato_options_set_sasl_security(o, HATO_SASL_NOANONYMOUS, HATO_SASL_NOANONYMOUS);
    }
    /* One message: the library's one-shot path (QUIT with the end of data
     * where the server pipelines); more: one kept connection. */
    if (count > 1)
        hato_options_set_keep_alive(o, 60 * 1000);
    hato_options_set_helo_name(o, "bench.example.test");
    hato_client *c = hato_client_new(o);

    struct body b = {0};
    size_t heap_session = 0, heap_last = 0;
    double t0 = now();
    long sent = 0;
    unsigned long long bytes = 0;
    for (long i = 0; i < count; i++) {
        hato_message *m = hato_message_new();
        hato_message_set_sender(m, "alice@example.test");
        hato_message_add_recipient(m, "bob@example.test");
        b.size = size;
        b.done = 0;
        b.index = (unsigned)i;
        b.heap_seen = 0;
        b.header_len = (size_t)snprintf(b.header, sizeof b.header,
            "From: alice@example.test\nTo: bob@example.test\nSubject: bench %ld\n"
            "Message-ID: <bench.%ld.%ld@example.test>\n\n", i, (long)t0, i);
        if (b.header_len > size)
            b.header_len = (size_t)size;
        hato_message_set_reader(m, read_body, &b);
        hato_message_set_size(m, size);
        if (hato_client_send(c, m) != HATO_OK) {
            fprintf(stderr, "hato-bench: message %ld: %s\n", i + 1,
                    hato_error_message(hato_client_error(c)));
            hato_message_free(m);
            break;
        }
        if (i == 0)
            heap_session = b.heap_seen - heap_before;
        heap_last = b.heap_seen - heap_before;
        hato_message_free(m);
        sent++;
        bytes += size;
    }
    hato_client_free(c);
    double t = now() - t0;
    hato_options_free(o);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"messages\": %ld, \"seconds\": %.4f, \"msgs_per_s\": %.1f, \"mb_per_s\": %.1f, "
           "\"heap_session\": %zu, \"heap_session_last\": %zu, \"peak_rss_kb\": %ld}\n",
           sent, t, sent / t, (double)bytes / 1e6 / t, heap_session, heap_last, ru.ru_maxrss);
    return sent == count ? 0 : 1;
}
