/*
 * Allocation failures: a complete session (AUTH, pipelined envelope, body)
 * is run again and again with the Nth allocation failing, for every N until
 * a run needs no more.  Each run must end cleanly -- sent, or failed with an
 * error -- never crash, hang or leak (the sanitizer build checks leaks).
 * malloc, calloc and realloc of the library's own objects are wrapped
 * (-Wl,--wrap); allocations inside libc, mbedTLS and libgsasl are not.
 */
#include <stdlib.h>

#include "check.h"
#include "hato.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);

static long countdown = -1; /* fail when it reaches 0; -1: never */
static long calls;

static bool fail_now(void)
{
    calls++;
    return countdown >= 0 && countdown-- == 0;
}

void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t k, size_t n) { return fail_now() ? NULL : __real_calloc(k, n); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }

static const char *const server[] = {
    "220 relay ESMTP\r\n",
    "250-relay\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n",
    "235 2.7.0 ok\r\n",
    "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
    "250 2.0.0 queued\r\n221 bye\r\n",
};

/* One session; true when it ran to the end (sent or failed cleanly). */
static bool run_once(bool *sent)
{
    hato_options *o = hato_options_new();
    hato_message *m = hato_message_new();
    if (o == NULL || m == NULL) {
        hato_options_free(o);
        hato_message_free(m);
        return true;
    }
    hato_options_set_relay(o, "relay.example", 25);
    hato_options_set_tls_level(o, HATO_TLS_NONE);
    hato_options_set_helo_name(o, "client.example");
    hato_options_set_credentials(o, "alice", "secret");
    hato_options_set_sasl_security(o, 0, 0);
    hato_message_set_sender(m, "me@example.test");
    hato_message_add_recipient(m, "a@example.test");
    hato_message_add_recipient(m, "b@example.test");
    static const char text[] = "Subject: x\n\nbody\n.line\n";
    hato_message_set_content(m, text, sizeof text - 1);

    hato_session *s = hato_session_new(o, m, NULL);
    bool done = true;
    if (s != NULL) {
        size_t step = 0;
        for (int guard = 0; guard < 1000; guard++) {
            unsigned want = hato_session_want(s);
            if (want & HATO_WANT_DONE)
                break;
            if (want & HATO_WANT_WRITE) {
                size_t len;
                hato_session_output(s, &len);
                hato_session_output_done(s, len);
                if (len > 0)
                    continue;
            }
            if (step == sizeof server / sizeof server[0]) {
                hato_session_input_eof(s);
                continue;
            }
            hato_session_input(s, (const uint8_t *)server[step], strlen(server[step]));
            step++;
        }
        done = (hato_session_want(s) & HATO_WANT_DONE) != 0;
        const hato_error *e = hato_session_error(s);
        *sent = e == NULL && hato_message_sent(m);
        if (e != NULL)
            CHECK(hato_error_message(e)[0] != '\0');
    }
    hato_session_free(s);
    hato_message_free(m);
    hato_options_free(o);
    return done;
}

int main(void)
{
    bool sent = false;
    countdown = -1;
    calls = 0;
    CHECK(run_once(&sent));
    CHECK(sent);
    long needed = calls;
    CHECK(needed > 5);
    long failures_seen = 0;
    for (long n = 0; n < needed; n++) {
        countdown = n;
        calls = 0;
        sent = false;
        CHECK(run_once(&sent));
        failures_seen += !sent;
    }
    countdown = -1;
    /* Every injected failure that hit the library must have been noticed. */
    CHECK(failures_seen > 0);
    printf("alloc: %ld allocations per session, each failed once\n", needed);
    return check_finish("alloc");
}
