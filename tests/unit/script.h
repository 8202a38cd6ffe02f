/*
 * script.h - the session tests' harness: a server script of (bytes the
 * server sends, bytes the client must write next) steps, run several times
 * with the server's bytes cut into random pieces, and a log collector.
 * Header-only: each test includes it once.
 */
#ifndef HATO_TEST_SCRIPT_H
#define HATO_TEST_SCRIPT_H

#include <stdlib.h>

#include "check.h"
#include "hato.h"

/* In an expected client output: any one CRLF-terminated line (for
 * mechanisms with a random nonce). */
#define ANY_LINE "<line>"

typedef struct step {
    const char *server; /* bytes the server sends (NULL: end of connection) */
    const char *client; /* everything the client must write next */
} step;

typedef struct logbook {
    char text[32768];
    size_t len;
} logbook;

static void collect_log(void *user, hato_log_level level, const char *line)
{
    (void)level;
    logbook *lb = user;
    size_t n = strlen(line);
    if (lb->len + n + 2 < sizeof lb->text) {
        memcpy(lb->text + lb->len, line, n);
        lb->len += n;
        lb->text[lb->len++] = '\n';
        lb->text[lb->len] = '\0';
    }
}

/* Everything the session wants to write, as a string (caller frees);
 * *total (when not NULL) gets its length. */
static char *drain_n(hato_session *s, size_t *total)
{
    size_t cap = 1 << 16, used = 0;
    char *all = malloc(cap);
    while (all != NULL && (hato_session_want(s) & HATO_WANT_WRITE)) {
        size_t len;
        const uint8_t *out = hato_session_output(s, &len);
        if (len == 0)
            break;
        if (used + len + 1 > cap) {
            char *grown = realloc(all, 2 * (used + len + 1));
            if (grown == NULL)
                break;
            all = grown;
            cap = 2 * (used + len + 1);
        }
        memcpy(all + used, out, len);
        used += len;
        hato_session_output_done(s, len);
    }
    if (all != NULL)
        all[used] = '\0';
    if (total != NULL)
        *total = used;
    return all;
}

static char *drain(hato_session *s)
{
    return drain_n(s, NULL);
}

static void feed(hato_session *s, const char *data, unsigned *seed, size_t maxpiece)
{
    size_t n = strlen(data);
    for (size_t i = 0; i < n;) {
        size_t k = 1 + (size_t)rand_r(seed) % maxpiece;
        if (k > n - i)
            k = n - i;
        hato_session_input(s, (const uint8_t *)data + i, k);
        i += k;
    }
}

static bool matches(const char *got, const char *want)
{
    if (strcmp(want, ANY_LINE) == 0) {
        size_t n = strlen(got);
        return n > 2 && strcmp(got + n - 2, "\r\n") == 0 &&
               strcspn(got, "\r\n") == n - 2;
    }
    return strcmp(got, want) == 0;
}

/* Runs the script with several cuttings of the server's bytes; returns the
 * session of the last run (caller frees). */
static hato_session *run(const hato_options *o, hato_message *m, const step *script)
{
    hato_session *s = NULL;
    for (unsigned round = 0; round < 8; round++) {
        unsigned seed = round * 7919u + 1;
        hato_session_free(s);
        s = hato_session_new(o, m, "192.0.2.1");
        size_t maxpiece = round == 0 ? 1 : round == 1 ? 1000 : round * 3;
        for (const step *st = script; st->client != NULL || st->server != NULL; st++) {
            if (st->server == NULL)
                hato_session_input_eof(s);
            else
                feed(s, st->server, &seed, maxpiece);
            char *got = drain(s);
            const char *want = st->client ? st->client : "";
            if (got == NULL || !matches(got, want)) {
                check_count++;
                check_failures++;
                fprintf(stderr, "%s:%d: round %u: client wrote \"%s\", expected \"%s\"\n",
                        __FILE__, __LINE__, round, got ? got : "(null)", want);
            }
            free(got);
        }
    }
    return s;
}

static void check_error(const hato_session *s, hato_code code, bool temporary, int reply_code,
                        const char *says)
{
    const hato_error *e = hato_session_error(s);
    CHECK(e != NULL);
    if (e == NULL)
        return;
    CHECK_STR(hato_code_name(hato_error_code(e)), hato_code_name(code));
    CHECK_INT(hato_error_temporary(e), temporary);
    if (reply_code != 0)
        CHECK_INT(hato_error_reply_code(e), reply_code);
    CHECK_HAS(hato_error_message(e), says);
}

#endif
