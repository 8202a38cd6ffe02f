/*
 * fuzz_session - the whole client session through the I/O-free core
 * (hato_session_*), TLS level none, the fuzzer playing the server.
 *
 * Input:
 *   byte 0  the client's set-up: bits 0-2 the SASL mechanism (none,
 *           PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256, XOAUTH2,
 *           DIGEST-MD5), bit 3 keep-alive with a second message, bit 4 a
 *           140 KB message (several BDAT chunks, body pieces), bit 5 the
 *           content through a reader, bit 6 DSN, SMTPUTF8 and an 8-bit
 *           body, bit 7 three recipients instead of one
 *   byte 1  the largest piece the server's bytes are cut into (1..256),
 *           and in bits 6-7 how the run ends (EOF, timeout, I/O error)
 *   the rest: the server's bytes, taken a line at a time (up to and
 *           including each LF); after each line the client's output is
 *           drained, as a socket loop would.
 *
 * A line "334 @TEXT" is sent as "334 " + base64(TEXT) with every "%N" in
 * TEXT replaced by the client's SCRAM nonce (from its client-first
 * message): a fuzzer cannot guess a random nonce or write base64 around
 * it, and without this the SCRAM paths beyond the first challenge would
 * never run.  Every other line goes as it is.
 */
#include <stdio.h>

#include "fuzz.h"
#include "hato.h"

static const char *const mechanisms[8] = {
    NULL, "plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256", "xoauth2", "digest-md5",
};

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static size_t b64_decode(const char *in, size_t n, char *out, size_t cap)
{
    unsigned v = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        const char *at = memchr(b64, in[i], 64);
        if (in[i] == '\0' || at == NULL)
            break;
        v = (v << 6) | (unsigned)(at - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((v >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return o;
}

/* The run's state: what the client wrote last matters for the nonce. */
struct run {
    hato_session *s;
    char nonce[256];      /* the client's SCRAM nonce, once seen */
    bool after_scram;     /* the last AUTH line was SCRAM without a response */
    size_t written;
};

/* Looks for the SCRAM client-first message in one line of client output:
 * "AUTH SCRAM-SHA-1 <b64>" or, without an initial response, the next line. */
static void look_for_nonce(struct run *r, const char *line, size_t n)
{
    const char *b = NULL;
    size_t bn = 0;
    if (n > 16 && memcmp(line, "AUTH SCRAM-SHA-", 15) == 0) {
        const char *sp = memchr(line + 5, ' ', n - 5);
        if (sp == NULL) {
            r->after_scram = true;
            return;
        }
        b = sp + 1;
        bn = (size_t)(line + n - b);
    } else if (r->after_scram) {
        b = line;
        bn = n;
    }
    r->after_scram = false;
    if (b == NULL)
        return;
    char msg[1024];
    b64_decode(b, bn, msg, sizeof msg);
    const char *rn = strstr(msg, ",r=");
    if (rn == NULL)
        return;
    rn += 3;
    size_t k = strcspn(rn, ",");
    if (k >= sizeof r->nonce)
        k = sizeof r->nonce - 1;
    memcpy(r->nonce, rn, k);
    r->nonce[k] = '\0';
}

/* Takes everything the session wants written, line by line for the nonce. */
static void drain(struct run *r)
{
    for (int guard = 0; guard < 100000 && (hato_session_want(r->s) & HATO_WANT_WRITE); guard++) {
        size_t len = 0;
        const uint8_t *out = hato_session_output(r->s, &len);
        if (len == 0)
            break;
        const char *p = (const char *)out;
        size_t left = len;
        while (left > 0) {
            const char *nl = memchr(p, '\n', left);
            size_t ln = nl ? (size_t)(nl - p) : left;
            size_t lc = ln > 0 && p[ln - 1] == '\r' ? ln - 1 : ln;
            if (lc < 2048)
                look_for_nonce(r, p, lc);
            ln += nl ? 1 : 0;
            p += ln;
            left -= ln;
        }
        r->written += len;
        /* Sometimes a partial write, as a full socket buffer gives. */
        hato_session_output_done(r->s, len > 1 && (len & 1) ? len - 1 : len);
    }
}

static void feed(struct run *r, const char *p, size_t n, size_t piece)
{
    while (n > 0) {
        size_t k = n < piece ? n : piece;
        hato_session_input(r->s, (const uint8_t *)p, k);
        drain(r);
        p += k;
        n -= k;
    }
}

/* "334 @TEXT\n": the challenge built from TEXT (see the file's comment). */
static void feed_challenge(struct run *r, const char *text, size_t n, size_t piece)
{
    char plain[2048];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < sizeof plain; i++) {
        if (text[i] == '%' && i + 1 < n && text[i + 1] == 'N') {
            size_t k = strlen(r->nonce);
            if (k > sizeof plain - 1 - o)
                k = sizeof plain - 1 - o;
            memcpy(plain + o, r->nonce, k);
            o += k;
            i++;
        } else {
            plain[o++] = text[i];
        }
    }
    char line[4096] = "334 ";
    size_t len = 4 + b64_encode((const unsigned char *)plain, o, line + 4, sizeof line - 6);
    line[len++] = '\r';
    line[len++] = '\n';
    feed(r, line, len, piece);
}

static void on_log(void *user, hato_log_level level, const char *line)
{
    (void)user;
    (void)level;
    if (strlen(line) > 1u << 20)
        abort();
}

/* A reader handing out the content in odd-sized pieces. */
struct reader {
    const char *text;
    size_t len, at;
};

static ptrdiff_t read_content(void *user, char *buf, size_t cap)
{
    struct reader *rd = user;
    size_t n = rd->len - rd->at;
    if (n > cap)
        n = cap;
    if (n > 7777)
        n = 7777;
    memcpy(buf, rd->text + rd->at, n);
    rd->at += n;
    return (ptrdiff_t)n;
}

static char big[140 * 1024];

static hato_message *make_message(uint8_t setup, struct reader *rd)
{
    static const char small[] = "Subject: fuzz\r\n\r\n.dot\r\nbody\r\n";
    static const char utf8[] = "Subject: \xc3\xa9t\xc3\xa9\r\n\r\ncaf\xc3\xa9\r\n.\r\n";
    const char *content = setup & 0x10 ? big : setup & 0x40 ? utf8 : small;
    size_t len = setup & 0x10 ? sizeof big : strlen(content);
    hato_message *m = hato_message_new();
    if (m == NULL)
        abort();
    hato_message_set_sender(m, setup & 0x40 ? "s\xc3\xa9nder@example.test" : "me@example.test");
    hato_message_add_recipient(m, "a@example.test");
    if (setup & 0x80) {
        hato_message_add_recipient(m, "b@example.test");
        hato_message_add_recipient(m, "\"quoted local\"@example.test");
    }
    if (setup & 0x40) {
        hato_message_set_smtputf8(m, true);
        hato_message_set_dsn(m, HATO_DSN_SUCCESS | HATO_DSN_FAILURE, HATO_DSN_RET_HDRS, "envid+2B1");
    }
    if (setup & 0x20) {
        rd->text = content;
        rd->len = len;
        rd->at = 0;
        hato_message_set_reader(m, read_content, rd);
    } else {
        hato_message_set_content(m, content, len);
    }
    return m;
}

static void touch_results(struct run *r, hato_message *m)
{
    const hato_error *e = hato_session_error(r->s);
    if (e != NULL) {
        hato_code_name(hato_error_code(e));
        hato_error_layer(e);
        hato_error_temporary(e);
        hato_error_reply_code(e);
        if (strlen(hato_error_message(e)) == 0)
            abort(); /* every failure has one line for a person */
        const char *t = hato_error_server_text(e);
        const char *enh = hato_error_enhanced_code(e);
        if (t != NULL)
            (void)strlen(t);
        if (enh != NULL)
            (void)strlen(enh);
    }
    if (m == NULL)
        return;
    for (size_t i = 0; i < hato_message_recipient_count(m); i++) {
        const char *enh = NULL, *text = NULL;
        hato_message_recipient_reply(m, i, &enh, &text);
        (void)strlen(hato_message_recipient(m, i));
    }
    const char *enh = NULL, *text = NULL;
    hato_message_data_reply(m, &enh, &text);
    hato_message_sent(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t setup = data[0], how = data[1];
    size_t piece = 1 + (how & 0x3f) * 4;
    const char *in = (const char *)data + 2;
    size_t left = size - 2;

    if (big[0] == '\0') {
        /* Lines of 78 characters, with a dot line now and then. */
        for (size_t i = 0; i < sizeof big; i++)
            big[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : i % 800 == 0 ? '.' : 'x';
    }

    hato_options *o = hato_options_new();
    if (o == NULL)
        abort();
    hato_options_set_relay(o, "relay.example", 25);
    hato_options_set_tls_level(o, HATO_TLS_NONE);
    hato_options_set_helo_name(o, "client.example");
    hato_options_set_log(o, on_log, NULL, HATO_LOG_TRACE);
    const char *mech = mechanisms[setup & 7];
    if (mech != NULL) {
        hato_options_set_credentials(o, "alice", "secret");
        hato_options_set_sasl_mechanisms(o, mech);
        hato_options_set_sasl_security(o, 0, 0); /* plain text allowed: no TLS here */
    }
    if (setup & 0x08)
        hato_options_set_keep_alive(o, 10000);

    struct reader rd1, rd2;
    hato_message *m1 = make_message(setup, &rd1), *m2 = NULL;
    struct run r = {.s = hato_session_new(o, m1, "192.0.2.1")};
    if (r.s == NULL)
        abort();
    drain(&r);
    hato_message *current = m1;
    while (left > 0 && !(hato_session_want(r.s) & HATO_WANT_DONE && !hato_session_idle(r.s))) {
        const char *nl = memchr(in, '\n', left);
        size_t n = nl ? (size_t)(nl - in) + 1 : left;
        if (n > 5 && memcmp(in, "334 @", 5) == 0) {
            size_t tn = n - 5;
            while (tn > 0 && (in[5 + tn - 1] == '\n' || in[5 + tn - 1] == '\r'))
                tn--;
            feed_challenge(&r, in + 5, tn, piece);
        } else {
            feed(&r, in, n, piece);
        }
        in += n;
        left -= n;
        if (hato_session_idle(r.s) && m2 == NULL) {
            touch_results(&r, m1);
            /* The first message is done: the next goes on this connection. */
            m2 = make_message((uint8_t)(setup ^ 0x80), &rd2);
            if (hato_session_next(r.s, m2) != HATO_OK)
                abort();
            current = m2;
            drain(&r);
        }
    }
    if (hato_session_idle(r.s)) {
        hato_session_quit(r.s);
        drain(&r);
    }
    if (!(hato_session_want(r.s) & HATO_WANT_DONE)) {
        hato_session_timeout(r.s);
        switch (how >> 6) {
        case 1: hato_session_timed_out(r.s); break;
        case 2: hato_session_io_failed(r.s, "Connection reset by peer"); break;
        default: hato_session_input_eof(r.s); break;
        }
        drain(&r);
    }
    touch_results(&r, current);
    hato_session_free(r.s);
    hato_message_free(m1);
    hato_message_free(m2);
    hato_options_free(o);
    return 0;
}
