/*
 * fuzz_session - the whole client session through the I/O-free core
 * (hato_session_*), the fuzzer playing the server.  Built twice:
 * fuzz_session at TLS level none, and fuzz_session_tls (FUZZ_SESSION_TLS)
 * where every run uses TLS against an mbedTLS server inside the harness
 * (tls_peer.c), so that the fuzzer's lines reach hato through a real
 * handshake and real records.
 *
 * Input:
 *   byte 0  the client's set-up: bits 0-2 the SASL mechanism (with byte
 *           2's bit 0, an index into mechanisms[] below), bit 3 keep-alive
 *           with a second message, bit 4 a 140 KB message (several BDAT
 *           chunks, body pieces), bit 5 the content through a reader, bit 6
 *           DSN, SMTPUTF8 and an 8-bit body, bit 7 three recipients
 *   byte 1  the largest piece the server's bytes are cut into (1..256),
 *           and in bits 6-7 how the run ends (EOF, timeout, I/O error)
 *   byte 2  bit 0: the mechanism's high bit.  In fuzz_session, the
 *           message's variants: bit 1 a recipient in an IDN domain, bits
 *           2-3 the body type (auto, 7BIT, 8BITMIME, BINARYMIME), bit 4 a
 *           declared size over the seeds' SIZE, bit 5 REQUIRETLS, bit 6
 *           PIPELINING, CHUNKING and DSN discarded from EHLO, bit 7 DSN
 *           without SMTPUTF8 (xtext ORCPT and ENVID).  In fuzz_session_tls:
 *           bits 1-3 the TLS mode (set_tls_mode below), bit 4 a server that
 *           stops at TLS 1.2, bit 5 a client certificate the server asks
 *           for (EXTERNAL), bit 6 noplaintext over TLS, bit 7 a state
 *           directory and a second connection (resumption; TOFU at mode 4)
 *           on the lines the first one left
 *   the rest: the server's bytes, taken a line at a time (up to and
 *           including each LF); after each line the client's output is
 *           drained, as a socket loop would.
 *
 * A line "334 @TEXT" is sent as "334 " + base64(TEXT) with every "%N" in
 * TEXT replaced by the client's SCRAM nonce (from its client-first
 * message) and every "%V" by the SCRAM server signature the harness
 * computes (struct scram_watch): a fuzzer cannot guess a random nonce,
 * compute a signature or write base64 around them, and without this the
 * SCRAM paths beyond the first challenge would never run.  In fuzz_session_tls, once the handshake is done, each line
 * goes through the server's TLS; three directives reach what a line
 * cannot:
 *   "!raw TEXT"   TEXT with each '|' made CRLF (the line's own end is
 *                 dropped), given to the client as it is, in one piece
 *                 when the piece size allows: plain text inside TLS, or,
 *                 before the handshake, a reply injected behind "220 ready"
 *                 to STARTTLS
 *   "!flip TEXT"  TEXT + CRLF in a record whose last byte is flipped
 *   "!close"      the server's close_notify
 * Every other line goes as it is.
 */
#include <stdio.h>

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/version.h>

#include "fuzz.h"
#include "hato.h"
#ifdef FUZZ_SESSION_TLS
#include <dirent.h>

#include "tls_peer.h"
#endif

static const char *const mechanisms[16] = {
    NULL, "plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256", "xoauth2", "digest-md5",
    "oauthbearer", "external", "scram-sha-256-plus", "scram-sha-1-plus",
    "plain login", "scram-sha-256 cram-md5 plain", "anonymous", "gssapi",
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

/* What the wire carries at this point of the run. */
enum wire {
    WIRE_PLAIN,     /* SMTP in the clear */
    WIRE_HANDSHAKE, /* the client has started TLS; the peer answers */
    WIRE_TLS,       /* records both ways */
    WIRE_BROKEN,    /* the peer's handshake failed: lines go raw */
};

/* What the harness follows of a SCRAM exchange (RFC 5802 section 3), so
 * that it can play the server's part: the nonce for "%N", and for "%V"
 * the server signature over the three messages, computed from the
 * password the harness gave hato.  Without the signature every SCRAM run
 * would end at hato's (correct) refusal of a server that cannot prove it
 * knows the password. */
struct scram_watch {
    mbedtls_md_type_t md;         /* from the AUTH line; NONE: no SCRAM yet */
    bool want_first;              /* AUTH without an initial response */
    bool want_final;              /* server-first sent: the next line is client-final */
    char nonce[256];              /* the client's nonce */
    char client_first_bare[1024]; /* client-first without its GS2 header */
    char server_first[2048];      /* as the harness sent it */
    char client_final_bare[1024]; /* client-final without ",p=proof" */
};

/* The run's state: what the client wrote last matters for SCRAM. */
struct run {
    hato_session *s;
    struct scram_watch scram;
    size_t written;
    size_t piece;         /* the largest piece given to the client at once */
    enum wire wire;
#ifdef FUZZ_SESSION_TLS
    tls_peer *peer;
#endif
};

static void copy_text(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Follows one line of client output for SCRAM: "AUTH SCRAM-SHA-1[-PLUS]
 * <b64>" or, without an initial response, the next line (client-first);
 * the line after the server-first challenge (client-final). */
static void watch_scram(struct run *r, const char *line, size_t n)
{
    struct scram_watch *w = &r->scram;
    char msg[1024];
    if (n > 16 && memcmp(line, "AUTH SCRAM-SHA-", 15) == 0) {
        w->md = memcmp(line + 15, "256", 3) == 0 ? MBEDTLS_MD_SHA256 : MBEDTLS_MD_SHA1;
        w->want_final = false;
        const char *sp = memchr(line + 5, ' ', n - 5);
        w->want_first = sp == NULL;
        if (sp == NULL)
            return;
        b64_decode(sp + 1, (size_t)(line + n - sp - 1), msg, sizeof msg);
    } else if (w->want_first) {
        w->want_first = false;
        b64_decode(line, n, msg, sizeof msg);
    } else if (w->want_final) {
        w->want_final = false;
        b64_decode(line, n, msg, sizeof msg);
        const char *proof = strstr(msg, ",p=");
        copy_text(w->client_final_bare, sizeof w->client_final_bare, msg,
                  proof ? (size_t)(proof - msg) : strlen(msg));
        return;
    } else {
        return;
    }
    /* gs2-header "n,," / "y,," / "p=tls-exporter,,": the bare message
     * follows its second comma. */
    const char *c1 = strchr(msg, ',');
    const char *bare = c1 ? strchr(c1 + 1, ',') : NULL;
    copy_text(w->client_first_bare, sizeof w->client_first_bare, bare ? bare + 1 : "",
              bare ? strlen(bare + 1) : 0);
    const char *rn = strstr(msg, ",r=");
    if (rn == NULL)
        return;
    rn += 3;
    copy_text(w->nonce, sizeof w->nonce, rn, strcspn(rn, ","));
}

/* The server signature, base64, into out; "" when the exchange so far does
 * not allow one (no salt, absurd iteration count). */
static void scram_server_signature(const struct scram_watch *w, char *out, size_t cap)
{
    out[0] = '\0';
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(w->md);
    const char *s = strstr(w->server_first, ",s=");
    const char *i = strstr(w->server_first, ",i=");
    if (md == NULL || s == NULL || i == NULL)
        return;
    long iterations = strtol(i + 3, NULL, 10);
    if (iterations < 1 || iterations > 100000)
        return;
    char salt[256];
    size_t salt_len = b64_decode(s + 3, strcspn(s + 3, ","), salt, sizeof salt);
    static const char password[] = "secret"; /* as given to hato below */
    unsigned char salted[MBEDTLS_MD_MAX_SIZE], server_key[MBEDTLS_MD_MAX_SIZE],
        signature[MBEDTLS_MD_MAX_SIZE];
    unsigned len = mbedtls_md_get_size(md);
#if MBEDTLS_VERSION_MAJOR >= 3
    if (mbedtls_pkcs5_pbkdf2_hmac_ext(w->md, (const unsigned char *)password, sizeof password - 1,
                                      (const unsigned char *)salt, salt_len,
                                      (unsigned)iterations, len, salted) != 0)
        return;
#else
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    int rc = mbedtls_md_setup(&ctx, md, 1);
    if (rc == 0)
        rc = mbedtls_pkcs5_pbkdf2_hmac(&ctx, (const unsigned char *)password, sizeof password - 1,
                                       (const unsigned char *)salt, salt_len,
                                       (unsigned)iterations, len, salted);
    mbedtls_md_free(&ctx);
    if (rc != 0)
        return;
#endif
    char auth[4200];
    int an = snprintf(auth, sizeof auth, "%s,%s,%s", w->client_first_bare, w->server_first,
                      w->client_final_bare);
    if (an < 0 || (size_t)an >= sizeof auth)
        return;
    if (mbedtls_md_hmac(md, salted, len, (const unsigned char *)"Server Key", 10, server_key) != 0 ||
        mbedtls_md_hmac(md, server_key, len, (const unsigned char *)auth, (size_t)an, signature) != 0)
        return;
    b64_encode(signature, len, out, cap);
}

/* The client's plaintext, line by line, for SCRAM. */
static void scan_client_text(struct run *r, const char *p, size_t left)
{
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        size_t ln = nl ? (size_t)(nl - p) : left;
        size_t lc = ln > 0 && p[ln - 1] == '\r' ? ln - 1 : ln;
        if (lc < 2048)
            watch_scram(r, p, lc);
        ln += nl ? 1 : 0;
        p += ln;
        left -= ln;
    }
}

/* Takes everything the session wants written: plaintext is watched for
 * SCRAM, ciphertext goes to the TLS peer. */
static void take_output(struct run *r)
{
    for (int guard = 0; guard < 100000 && (hato_session_want(r->s) & HATO_WANT_WRITE); guard++) {
        size_t len = 0;
        const uint8_t *out = hato_session_output(r->s, &len);
        if (len == 0)
            break;
        /* Sometimes a partial write, as a full socket buffer gives. */
        size_t took = len > 1 && (len & 1) ? len - 1 : len;
#ifdef FUZZ_SESSION_TLS
        /* A handshake record where SMTP was: the client has started TLS
         * (after 220 to STARTTLS, or at once with implicit TLS). */
        if (r->wire == WIRE_PLAIN && out[0] == 0x16)
            r->wire = WIRE_HANDSHAKE;
        if (r->wire == WIRE_HANDSHAKE || r->wire == WIRE_TLS)
            tls_peer_feed(r->peer, out, took);
        else
#endif
            scan_client_text(r, (const char *)out, took);
        r->written += took;
        hato_session_output_done(r->s, took);
    }
}

/* Bytes from the server, in pieces of at most r->piece. */
static void give(struct run *r, const char *p, size_t n)
{
    while (n > 0) {
        size_t k = n < r->piece ? n : r->piece;
        hato_session_input(r->s, (const uint8_t *)p, k);
        take_output(r);
        p += k;
        n -= k;
    }
}

#ifdef FUZZ_SESSION_TLS
/* Lets the peer answer what the client sent (handshake, records) until
 * neither side has anything more to say. */
static void pump(struct run *r)
{
    for (int guard = 0; guard < 1000; guard++) {
        if (r->wire == WIRE_HANDSHAKE) {
            int h = tls_peer_handshake(r->peer);
            if (h > 0)
                r->wire = WIRE_TLS;
            else if (h < 0)
                r->wire = WIRE_BROKEN;
        }
        if (r->wire == WIRE_TLS) {
            char text[4096];
            size_t got;
            while ((got = tls_peer_read(r->peer, text, sizeof text)) > 0)
                scan_client_text(r, text, got);
        }
        size_t n = 0;
        const uint8_t *c = tls_peer_output(r->peer, &n);
        if (n == 0)
            return;
        /* Copied: giving it to the client makes the peer write again. */
        char *copy = fuzz_strndup((const char *)c, n);
        tls_peer_output_done(r->peer);
        give(r, copy, n);
        free(copy);
    }
}
#else
static void pump(struct run *r)
{
    (void)r;
}
#endif

/* One line of the script, as the server sends it. */
static void send_line(struct run *r, const char *p, size_t n)
{
#ifdef FUZZ_SESSION_TLS
    if (n >= 4 && memcmp(p, "!raw", 4) == 0) {
        char *t = malloc(2 * n);
        if (t == NULL)
            abort();
        size_t k = 0, end = n;
        while (end > 4 && (p[end - 1] == '\n' || p[end - 1] == '\r'))
            end--; /* the script's own line end: '|' says where lines end */
        for (size_t i = end > 4 && p[4] == ' ' ? 5 : 4; i < end; i++) {
            if (p[i] == '|') {
                t[k++] = '\r';
                t[k++] = '\n';
            } else {
                t[k++] = p[i];
            }
        }
        give(r, t, k);
        free(t);
        pump(r);
        return;
    }
    if (r->wire == WIRE_TLS) {
        if (n >= 6 && memcmp(p, "!close", 6) == 0)
            tls_peer_close(r->peer);
        else if (n >= 6 && memcmp(p, "!flip ", 6) == 0)
            tls_peer_write(r->peer, p + 6, n - 6, true);
        else
            tls_peer_write(r->peer, p, n, false);
        pump(r);
        return;
    }
#endif
    give(r, p, n);
    pump(r);
}

/* "334 @TEXT\n": the challenge built from TEXT (see the file's comment). */
static void send_challenge(struct run *r, const char *text, size_t n)
{
    struct scram_watch *w = &r->scram;
    char plain[2048], signature[128];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < sizeof plain; i++) {
        const char *put = NULL;
        if (text[i] == '%' && i + 1 < n && text[i + 1] == 'N') {
            put = w->nonce;
        } else if (text[i] == '%' && i + 1 < n && text[i + 1] == 'V') {
            scram_server_signature(w, signature, sizeof signature);
            put = signature;
        } else {
            plain[o++] = text[i];
            continue;
        }
        size_t k = strlen(put);
        if (k > sizeof plain - 1 - o)
            k = sizeof plain - 1 - o;
        memcpy(plain + o, put, k);
        o += k;
        i++;
    }
    /* A server-first message: kept for the signature, and the client's
     * next line is its client-final. */
    if (o > 2 && memcmp(plain, "r=", 2) == 0) {
        copy_text(w->server_first, sizeof w->server_first, plain, o);
        w->want_final = true;
    }
    char line[4096] = "334 ";
    size_t len = 4 + b64_encode((const unsigned char *)plain, o, line + 4, sizeof line - 6);
    line[len++] = '\r';
    line[len++] = '\n';
    send_line(r, line, len);
}

/* FUZZ_SESSION_LOG=1 in the environment prints the session's log, for
 * whoever writes a seed and wants to see how far it gets. */
static void on_log(void *user, hato_log_level level, const char *line)
{
    (void)level;
    if (strlen(line) > 1u << 20)
        abort();
    if (*(const bool *)user)
        fprintf(stderr, "log: %s\n", line);
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

/* The message of a run: setup is byte 0, variant is byte 2 in
 * fuzz_session (bits 1-5 and 7; the file's comment), and in
 * fuzz_session_tls only its REQUIRETLS bit. */
static hato_message *make_message(uint8_t setup, uint8_t variant, struct reader *rd)
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
    if (variant & 0x02) /* an IDN: its A-label without SMTPUTF8 */
        hato_message_add_recipient(m, "c@b\xc3\xbc" "cher.example");
    if (setup & 0x40) {
        hato_message_set_smtputf8(m, true);
        hato_message_set_dsn(m, HATO_DSN_SUCCESS | HATO_DSN_FAILURE, HATO_DSN_RET_HDRS, "envid+2B1");
    } else if (variant & 0x80) { /* DSN alone: ORCPT and ENVID as xtext */
        hato_message_set_dsn(m, HATO_DSN_DELAY | HATO_DSN_FAILURE, HATO_DSN_RET_FULL, "id=1+x");
    }
    static const hato_body bodies[4] = {HATO_BODY_AUTO, HATO_BODY_7BIT, HATO_BODY_8BITMIME,
                                        HATO_BODY_BINARYMIME};
    if (variant & 0x0c)
        hato_message_set_body(m, bodies[(variant >> 2) & 3]);
    if (variant & 0x10) /* over the seeds' SIZE 100000000 */
        hato_message_set_size(m, 200000000);
    if (variant & 0x20)
        hato_message_set_requiretls(m, true);
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
        if (getenv("FUZZ_SESSION_LOG") != NULL)
            fprintf(stderr, "error: %s\n", hato_error_message(e));
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

#ifdef FUZZ_SESSION_TLS
/* The fixture's certificate and key as files, for the client's trust
 * anchor and its own certificate: written once per process. */
static const char *fixture_path(const char *tag, const char *pem)
{
    const char *dir = getenv("TMPDIR");
    char *path = malloc(512);
    if (path == NULL)
        abort();
    snprintf(path, 512, "%s/hato-fuzz-%s-XXXXXX", dir ? dir : "/tmp", tag);
    int fd = mkstemp(path);
    size_t n = strlen(pem);
    if (fd < 0 || write(fd, pem, n) != (ssize_t)n || close(fd) != 0)
        abort();
    return path; /* lives as long as the process; fuzz_cleanup removes it */
}

static const char *cert_file, *key_file;

static void fuzz_cleanup(void)
{
    unlink(cert_file);
    unlink(key_file);
}

/* Byte 2's bits 1-3. */
static void set_tls_mode(hato_options *o, unsigned mode)
{
    static const hato_tls_level levels[8] = {
        HATO_TLS_MAY,     /* STARTTLS when offered: plain text otherwise */
        HATO_TLS_ENCRYPT, /* STARTTLS, any certificate */
        HATO_TLS_VERIFY,  /* STARTTLS, the fixture as trust anchor */
        HATO_TLS_VERIFY,  /* ... expecting another name: fails verification */
        HATO_TLS_FINGERPRINT, /* STARTTLS, the fixture's digest pinned */
        HATO_TLS_ENCRYPT, /* implicit TLS */
        HATO_TLS_VERIFY,  /* implicit TLS, verified */
        HATO_TLS_ENCRYPT, /* implicit TLS 1.3 only: fails on a 1.2 server */
    };
    hato_options_set_tls_level(o, levels[mode]);
    hato_options_set_tls_wrapper(o, mode >= 5);
    hato_options_set_ca_file(o, cert_file);
    if (mode == 3)
        hato_options_set_tls_server_name(o, "other.example");
    if (mode == 4)
        hato_options_add_tls_fingerprint(o, false, tls_peer_cert_sha256);
    if (mode == 7)
        hato_options_set_tls_min_version(o, HATO_TLS_V1_3);
}
#endif

/* The input's first three bytes (the file's comment). */
struct setup {
    uint8_t client, how, more;
};

/* One connection: a session for a first message (and with keep-alive a
 * second on it), fed the script's lines until it is done.  The lines it
 * did not take stay in *in, for a connection after it. */
static void connection(const hato_options *o, struct setup su, const char **in, size_t *left)
{
    struct reader rd1, rd2;
#ifdef FUZZ_SESSION_TLS
    /* Byte 2 is the TLS set-up here; noplaintext also asks for REQUIRETLS. */
    uint8_t variant = su.more & 0x40 ? 0x20 : 0;
#else
    uint8_t variant = su.more;
#endif
    hato_message *m1 = make_message(su.client, variant, &rd1), *m2 = NULL;
    struct run r = {.s = hato_session_new(o, m1, "192.0.2.1"), .piece = 1 + (su.how & 0x3f) * 4};
    if (r.s == NULL)
        abort();
#ifdef FUZZ_SESSION_TLS
    tls_peer_options peer_opt = {.tls12_only = su.more & 0x10, .ask_client_cert = su.more & 0x20};
    if ((r.peer = tls_peer_new(&peer_opt)) == NULL)
        abort();
#endif
    take_output(&r);
    pump(&r);
    hato_message *current = m1;
    while (*left > 0 && !(hato_session_want(r.s) & HATO_WANT_DONE && !hato_session_idle(r.s))) {
        const char *p = *in;
        const char *nl = memchr(p, '\n', *left);
        size_t n = nl ? (size_t)(nl - p) + 1 : *left;
        *in += n;
        *left -= n;
        if (n > 5 && memcmp(p, "334 @", 5) == 0) {
            size_t tn = n - 5;
            while (tn > 0 && (p[5 + tn - 1] == '\n' || p[5 + tn - 1] == '\r'))
                tn--;
            send_challenge(&r, p + 5, tn);
        } else {
            send_line(&r, p, n);
        }
        if (hato_session_idle(r.s) && m2 == NULL) {
            touch_results(&r, m1);
            /* The first message is done: the next goes on this connection. */
            m2 = make_message((uint8_t)(su.client ^ 0x80), variant, &rd2);
            if (hato_session_next(r.s, m2) != HATO_OK)
                abort();
            current = m2;
            take_output(&r);
            pump(&r);
        }
    }
    if (hato_session_idle(r.s)) {
        hato_session_quit(r.s);
        take_output(&r);
        pump(&r);
    }
    if (!(hato_session_want(r.s) & HATO_WANT_DONE)) {
        hato_session_timeout(r.s);
        switch (su.how >> 6) {
        case 1: hato_session_timed_out(r.s); break;
        case 2: hato_session_io_failed(r.s, "Connection reset by peer"); break;
        default: hato_session_input_eof(r.s); break;
        }
        take_output(&r);
    }
    touch_results(&r, current);
    hato_session_free(r.s);
#ifdef FUZZ_SESSION_TLS
    tls_peer_free(r.peer);
#endif
    hato_message_free(m1);
    hato_message_free(m2);
}

#ifdef FUZZ_SESSION_TLS
/* Removes the input's state directory: its files, one level of
 * subdirectories (sessions/, tofu/) and their files. */
static void remove_tree(const char *path, int depth)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            if (unlink(sub) != 0 && depth > 0)
                remove_tree(sub, depth - 1);
        }
        closedir(d);
    }
    rmdir(path);
}

#endif
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    struct setup su = {data[0], data[1], data[2]};
    const char *in = (const char *)data + 3;
    size_t left = size - 3;

    if (big[0] == '\0') {
        /* Lines of 78 characters, with a dot line now and then. */
        for (size_t i = 0; i < sizeof big; i++)
            big[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : i % 800 == 0 ? '.' : 'x';
    }

    hato_options *o = hato_options_new();
    if (o == NULL)
        abort();
    hato_options_set_relay(o, "relay.example", 25);
    hato_options_set_helo_name(o, "client.example");
    static bool print_log;
    print_log = getenv("FUZZ_SESSION_LOG") != NULL;
    hato_options_set_log(o, on_log, &print_log, HATO_LOG_TRACE);
    const char *mech = mechanisms[(su.client & 7) | (su.more & 1) << 3];
    if (mech != NULL) {
        hato_options_set_credentials(o, "alice", "secret");
        hato_options_set_sasl_mechanisms(o, mech);
    }
    if (su.client & 0x08)
        hato_options_set_keep_alive(o, 10000);
#ifdef FUZZ_SESSION_TLS
    if (cert_file == NULL) {
        cert_file = fixture_path("cert", tls_peer_cert_pem);
        key_file = fixture_path("key", tls_peer_key_pem);
        atexit(fuzz_cleanup);
    }
    unsigned mode = (su.more >> 1) & 7;
    set_tls_mode(o, mode);
    if (su.more & 0x20)
        hato_options_set_client_cert(o, cert_file, key_file);
    hato_options_set_sasl_security(o, 0, su.more & 0x40 ? HATO_SASL_NOPLAINTEXT : 0);
    /* Bit 7: a state directory of this input's own, and a second
     * connection after the first, so that the session saved by the first
     * is offered (resumption against the same peer's ticket key) and, at
     * mode 4, the server's key recorded on first use is checked. */
    char state[512] = "";
    if (su.more & 0x80) {
        const char *tmp = getenv("TMPDIR");
        snprintf(state, sizeof state, "%s/hato-fuzz-state-XXXXXX", tmp ? tmp : "/tmp");
        if (mkdtemp(state) == NULL)
            abort();
        hato_options_set_state_dir(o, state);
        if (mode == 4)
            hato_options_set_tls_level(o, HATO_TLS_TOFU);
    }
#else
    hato_options_set_tls_level(o, HATO_TLS_NONE);
    hato_options_set_sasl_security(o, 0, 0); /* plain text allowed: no TLS here */
    if (su.more & 0x40) /* the fallbacks, whatever the server offers */
        hato_options_set_discard_ehlo_keywords(o, "pipelining, chunking, dsn");
#endif

    connection(o, su, &in, &left);
#ifdef FUZZ_SESSION_TLS
    if (state[0] != '\0') {
        if (left > 0)
            connection(o, su, &in, &left);
        remove_tree(state, 1);
    }
#endif
    hato_options_free(o);
    return 0;
}
