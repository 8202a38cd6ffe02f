/*
 * test_plus.c - SCRAM-*-PLUS end to end through a real TLS link, in memory.
 *
 * No server in the test setup offers SCRAM-PLUS (Dovecot 2.3 cannot), so
 * the test plays one: plaintext SMTP until STARTTLS, then an mbedTLS server
 * on memory buffers, and a libgsasl server session for AUTH whose channel
 * binding is the server side's own RFC 9266 tls-exporter value.  The client
 * is the public hato_session API, verifying the certificate, with no
 * mechanism filter.  A login that completes proves that both ends computed
 * the same binding; a server whose binding differs by one bit must refuse.
 *
 * The server's bytes reach the client in random pieces.  Test code may
 * include mbedTLS and gsasl.h; the library keeps each to one file.  The
 * TLS side, and the certificates from tests/setup/make-ca.sh in a
 * temporary directory, are tls_peer.h's.
 *
 * mbedTLS 3.6 negotiates TLS 1.3, which has tls-exporter: the client must
 * choose a -PLUS variant.  Debian 12's 2.28 has TLS 1.2 only and hato gives
 * it no binding (docs/tls.md), so there the client must pass -PLUS over.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gsasl.h>

#include "check.h"
#include "hato.h"
#include "tls_peer.h"
#include "util/buf.h"

/* The library's condition for tls-exporter (src/tls/tls_mbedtls.c): TLS 1.3
 * with keying material export, so mbedTLS 3.x as Debian and .deps build it. */
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3) && \
    defined(MBEDTLS_SSL_KEYING_MATERIAL_EXPORT)
#define HAVE_EXPORTER 1
#else
#define HAVE_EXPORTER 0
#endif

#define USER "alice@example.test"
/* Distinctive, so a leak cannot hide inside an ordinary word. */
#define PASSWORD "Pl7s-bound-Qx4"
#define CONTENT "Subject: plus\n\nbound to the channel\n"

static Gsasl *gsasl_server_ctx;

/* With TEST_VERBOSE set, shows what a person would read. */
static void show(const char *what, const char *msg)
{
    if (getenv("TEST_VERBOSE") != NULL)
        fprintf(stderr, "[%s] %s\n", what, msg);
}

/* ---- the client's log ------------------------------------------------ */

typedef struct logbook {
    char text[1 << 16];
    size_t len;
    bool overflow;
} logbook;

static void collect_log(void *user, hato_log_level level, const char *line)
{
    (void)level;
    logbook *lb = user;
    size_t n = strlen(line);
    if (lb->len + n + 2 >= sizeof lb->text) {
        lb->overflow = true;
        return;
    }
    memcpy(lb->text + lb->len, line, n);
    lb->len += n;
    lb->text[lb->len++] = '\n';
    lb->text[lb->len] = '\0';
}

/* ---- the server -------------------------------------------------------- */

/* One state per thing the server waits for, in the order of a submission. */
typedef enum srv_state {
    SRV_GREETING,  /* nothing sent yet: the 220 greeting goes first */
    SRV_EHLO,      /* greeting sent; EHLO expected */
    SRV_STARTTLS,  /* plaintext capabilities (only STARTTLS) sent */
    SRV_HANDSHAKE, /* 220 to STARTTLS sent; every byte now belongs to TLS */
    SRV_EHLO_TLS,  /* handshake done; EHLO again (RFC 3207 section 4.2) */
    SRV_AUTH,      /* capabilities with AUTH sent; the AUTH command expected */
    SRV_AUTH_STEP, /* a 334 challenge sent; the client's response expected */
    SRV_AUTH_LAST, /* SCRAM's server-final in a 334 (RFC 4954 section 4 has
                      no data on 235); the client's empty line expected */
    SRV_MAIL,      /* authenticated; MAIL FROM expected */
    SRV_RCPT,      /* RCPT TO expected (one recipient) */
    SRV_DATA,      /* DATA expected */
    SRV_BODY,      /* 354 sent; message lines until the lone dot */
    SRV_QUIT,      /* message queued; QUIT expected */
    SRV_CLOSED,    /* 221 sent: the server hangs up */
} srv_state;

typedef struct server_opts {
    const char *auth;    /* mechanisms in the EHLO after TLS */
    bool wrong_exporter; /* one bit of the server's binding flipped */
    bool tls12_only;     /* cap the server at TLS 1.2 (mbedTLS 3 only) */
    bool tickets;        /* the server issues session tickets, and the client
                            keeps them in a state directory */
} server_opts;

typedef struct server {
    server_opts o;
    srv_state state;
    bool tls;        /* STARTTLS answered: the wire carries TLS records */
    /* TLS, and the wire (peer.in from the client, peer.out to it);
     * peer.failed is any mbedTLS error, 0 if none */
    tls_peer peer;
    char version[16];
    unsigned char cb[32]; /* the server's tls-exporter value */
    bool have_cb;
    buf plain;       /* decrypted client bytes not yet split into lines */
    /* SASL */
    Gsasl_session *sasl;
    char mech[64];   /* what the AUTH command named */
    int auth_commands;
    int sasl_rc;     /* libgsasl's verdict; -1 before one */
    char gs2[64];    /* GS2 header of the client-first message */
    char authid[128];
    buf sasl_wire;   /* every base64 SASL payload, both ways, one a line */
    /* the message */
    buf body;
    int unexpected;  /* lines the script did not expect */
    bool close_notify;
} server;

static bool server_init(server *sv, server_opts o)
{
    memset(sv, 0, sizeof *sv);
    sv->o = o;
    sv->sasl_rc = -1;
    buf_init(&sv->plain, 0);
    buf_init(&sv->sasl_wire, 0);
    buf_init(&sv->body, 0);
    return tls_peer_init(&sv->peer,
                         (tls_peer_opts){.tls12_only = o.tls12_only, .tickets = o.tickets});
}

static void server_free(server *sv)
{
    if (sv->sasl != NULL)
        gsasl_finish(sv->sasl);
    tls_peer_free(&sv->peer);
    buf_free(&sv->plain);
    buf_free(&sv->sasl_wire);
    buf_free(&sv->body);
}

/* A reply, in the clear or through TLS as the state of the link says. */
static void srv_reply(server *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void srv_reply(server *sv, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    CHECK(n > 0 && (size_t)n < sizeof text);
    if (!sv->tls) {
        CHECK(buf_append(&sv->peer.out, text, (size_t)n));
        return;
    }
    if (!tls_peer_write_all(&sv->peer, (const unsigned char *)text, (size_t)n, &sv->peer.failed))
        CHECK(!"server write");
}

static void srv_unexpected(server *sv, const char *line)
{
    sv->unexpected++;
    fprintf(stderr, "test server: unexpected line in state %d: \"%s\"\n", (int)sv->state, line);
    srv_reply(sv, "503 5.5.1 Error: unexpected command\r\n");
}

static bool is_command(const char *line, const char *verb)
{
    return strncasecmp(line, verb, strlen(verb)) == 0;
}

/* Keeps a SASL payload to look for in the client's log later. */
static void remember_payload(server *sv, const char *b64)
{
    if (strlen(b64) >= 8)
        CHECK(buf_append_str(&sv->sasl_wire, b64) && buf_append_str(&sv->sasl_wire, "\n"));
}

/* One client response (base64) into the libgsasl server, and its answer. */
static void srv_auth_step(server *sv, const char *b64)
{
    if (strcmp(b64, "*") == 0) {
        /* RFC 4954 section 4: the client cancelled. */
        srv_reply(sv, "501 5.7.0 Authentication aborted\r\n");
        sv->state = SRV_AUTH;
        return;
    }
    remember_payload(sv, b64);
    if (sv->gs2[0] == '\0') {
        /* The client-first message: its GS2 header says whether (and how)
         * the client binds the channel. */
        char *raw = NULL;
        size_t len = 0;
        if (gsasl_base64_from(b64, strlen(b64), &raw, &len) == GSASL_OK) {
            size_t keep = len < sizeof sv->gs2 - 1 ? len : sizeof sv->gs2 - 1;
            memcpy(sv->gs2, raw, keep);
            sv->gs2[keep] = '\0';
            /* "p=tls-exporter,," or "n,,": up to the second comma. */
            char *c = strchr(sv->gs2, ',');
            if (c != NULL && (c = strchr(c + 1, ',')) != NULL)
                c[1] = '\0';
        }
        gsasl_free(raw);
    }
    char *answer = NULL;
    int rc = gsasl_step64(sv->sasl, b64, &answer);
    const char *id = gsasl_property_fast(sv->sasl, GSASL_AUTHID);
    if (id != NULL)
        snprintf(sv->authid, sizeof sv->authid, "%s", id);
    if (rc == GSASL_NEEDS_MORE) {
        remember_payload(sv, answer);
        srv_reply(sv, "334 %s\r\n", answer);
        sv->state = SRV_AUTH_STEP;
    } else if (rc == GSASL_OK) {
        sv->sasl_rc = rc;
        if (answer != NULL && answer[0] != '\0') {
            /* SCRAM's server-final ("v=" signature): the client checks it. */
            remember_payload(sv, answer);
            srv_reply(sv, "334 %s\r\n", answer);
            sv->state = SRV_AUTH_LAST;
        } else {
            srv_reply(sv, "235 2.7.0 Authentication successful\r\n");
            sv->state = SRV_MAIL;
        }
    } else {
        /* What Postfix and Dovecot answer to a failed proof or binding. */
        sv->sasl_rc = rc;
        show("server sasl", gsasl_strerror(rc));
        srv_reply(sv, "535 5.7.8 Error: authentication failed\r\n");
        sv->state = SRV_AUTH;
    }
    gsasl_free(answer);
}

/* AUTH mech [initial-response]: a libgsasl server session for mech, with
 * the password it checks against and this link's binding. */
static void srv_auth_begin(server *sv, const char *line)
{
    const char *p = line + 4;
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, " ");
    snprintf(sv->mech, sizeof sv->mech, "%.*s", (int)n, p);
    const char *initial = p[n] == ' ' ? p + n + 1 : NULL;
    sv->auth_commands++;
    if (sv->sasl != NULL) {
        gsasl_finish(sv->sasl);
        sv->sasl = NULL;
    }
    if (gsasl_server_start(gsasl_server_ctx, sv->mech, &sv->sasl) != GSASL_OK) {
        sv->sasl = NULL;
        srv_reply(sv, "504 5.5.4 Unrecognized authentication type\r\n");
        return;
    }
    gsasl_property_set(sv->sasl, GSASL_PASSWORD, PASSWORD);
    gsasl_property_set(sv->sasl, GSASL_SERVICE, "smtp");
    gsasl_property_set(sv->sasl, GSASL_HOSTNAME, "localhost");
    if (sv->have_cb) {
        char *b64 = NULL;
        CHECK_INT(gsasl_base64_to((const char *)sv->cb, sizeof sv->cb, &b64, NULL), GSASL_OK);
        gsasl_property_set(sv->sasl, GSASL_CB_TLS_EXPORTER, b64);
        gsasl_free(b64);
    }
    if (initial == NULL) {
        srv_reply(sv, "334 \r\n");
        sv->state = SRV_AUTH_STEP;
        return;
    }
    /* RFC 4954 section 4: "=" is an empty initial response. */
    srv_auth_step(sv, strcmp(initial, "=") == 0 ? "" : initial);
}

/* One complete line from the client, without its CRLF. */
static void srv_line(server *sv, const char *line)
{
    if (sv->state != SRV_BODY && is_command(line, "QUIT")) {
        /* Any time outside the body: the client gives up or is done. */
        srv_reply(sv, "221 2.0.0 Bye\r\n");
        sv->state = SRV_CLOSED;
        return;
    }
    switch (sv->state) {
    case SRV_EHLO:
        /* Before TLS: STARTTLS only, as a server with smtpd_tls_auth_only. */
        if (!is_command(line, "EHLO "))
            break;
        srv_reply(sv, "250-localhost\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n");
        sv->state = SRV_STARTTLS;
        return;
    case SRV_STARTTLS:
        /* The 220 is the last plaintext byte; the handshake follows. */
        if (strcasecmp(line, "STARTTLS") != 0)
            break;
        srv_reply(sv, "220 2.0.0 Ready to start TLS\r\n");
        sv->tls = true;
        sv->state = SRV_HANDSHAKE;
        return;
    case SRV_EHLO_TLS:
        /* Inside TLS: the mechanisms this scenario offers. */
        if (!is_command(line, "EHLO "))
            break;
        srv_reply(sv, "250-localhost\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH %s\r\n", sv->o.auth);
        sv->state = SRV_AUTH;
        return;
    case SRV_AUTH:
        /* The mechanism the client chose, maybe with its first message. */
        if (!is_command(line, "AUTH "))
            break;
        srv_auth_begin(sv, line);
        return;
    case SRV_AUTH_STEP:
        /* Each client response of the exchange. */
        srv_auth_step(sv, line);
        return;
    case SRV_AUTH_LAST:
        /* After the server-final: an empty line, or "*" if the server's
         * signature did not verify. */
        if (line[0] != '\0') {
            srv_reply(sv, "501 5.7.0 Authentication aborted\r\n");
            sv->state = SRV_AUTH;
            return;
        }
        srv_reply(sv, "235 2.7.0 Authentication successful\r\n");
        sv->state = SRV_MAIL;
        return;
    case SRV_MAIL:
        /* The envelope, one command at a time (no PIPELINING offered). */
        if (!is_command(line, "MAIL FROM:"))
            break;
        srv_reply(sv, "250 2.1.0 Ok\r\n");
        sv->state = SRV_RCPT;
        return;
    case SRV_RCPT:
        if (!is_command(line, "RCPT TO:"))
            break;
        srv_reply(sv, "250 2.1.5 Ok\r\n");
        sv->state = SRV_DATA;
        return;
    case SRV_DATA:
        if (strcasecmp(line, "DATA") != 0)
            break;
        srv_reply(sv, "354 End data with <CR><LF>.<CR><LF>\r\n");
        sv->state = SRV_BODY;
        return;
    case SRV_BODY:
        /* Message lines, kept (LF ends) until the lone dot. */
        if (strcmp(line, ".") == 0) {
            srv_reply(sv, "250 2.0.0 Ok: queued as PLUS1\r\n");
            sv->state = SRV_QUIT;
        } else {
            CHECK(buf_append_str(&sv->body, line[0] == '.' ? line + 1 : line) &&
                  buf_append_str(&sv->body, "\n"));
        }
        return;
    case SRV_GREETING:
    case SRV_HANDSHAKE:
    case SRV_QUIT:
    case SRV_CLOSED:
        break;
    }
    srv_unexpected(sv, line);
}

/* The next line from the client into line (NUL-terminated, without CRLF):
 * before TLS straight off the wire, one line at a time so that the
 * handshake's bytes after STARTTLS stay on the wire; inside TLS from the
 * decrypted bytes. */
static bool srv_next_line(server *sv, char *line, size_t cap)
{
    buf *from = sv->tls ? &sv->plain : &sv->peer.in;
    const unsigned char *p = buf_head(from);
    size_t n = buf_size(from);
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n') {
            CHECK(i < cap);
            size_t keep = i < cap ? i : cap - 1;
            memcpy(line, p, keep);
            line[keep] = '\0';
            buf_consume(from, i + 2);
            return true;
        }
    }
    return false;
}

/* The handshake completed: note the version and, under TLS 1.3, the
 * binding the server will demand (RFC 9266 section 2: label, no context,
 * 32 bytes). */
static void srv_handshake_done(server *sv)
{
    snprintf(sv->version, sizeof sv->version, "%s", mbedtls_ssl_get_version(&sv->peer.ssl));
#if HAVE_EXPORTER
    if (mbedtls_ssl_get_version_number(&sv->peer.ssl) == MBEDTLS_SSL_VERSION_TLS1_3) {
        static const char label[] = "EXPORTER-Channel-Binding";
        CHECK_INT(mbedtls_ssl_export_keying_material(&sv->peer.ssl, sv->cb, sizeof sv->cb, label,
                                                     sizeof label - 1, NULL, 0, 0), 0);
        sv->have_cb = true;
        if (sv->o.wrong_exporter)
            sv->cb[17] ^= 0x04; /* what a TLS-terminating proxy amounts to */
    }
#endif
    sv->state = SRV_EHLO_TLS;
}

/* Decrypts what the client sent; false on a TLS failure. */
static bool srv_decrypt(server *sv)
{
    unsigned char tmp[4096];
    for (;;) {
        int rc = mbedtls_ssl_read(&sv->peer.ssl, tmp, sizeof tmp);
        if (rc > 0) {
            CHECK(buf_append(&sv->plain, tmp, (size_t)rc));
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            return true;
        if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == 0) {
            sv->close_notify = true;
            return true;
        }
        sv->peer.failed = rc;
        fprintf(stderr, "test server: TLS read failed: -0x%04x\n", (unsigned)-rc);
        return false;
    }
}

/* Runs the server on whatever the client has sent so far. */
static void server_run(server *sv)
{
    char line[4096];
    if (sv->state == SRV_GREETING) {
        /* The greeting, before the client says anything. */
        srv_reply(sv, "220 localhost ESMTP hato test server\r\n");
        sv->state = SRV_EHLO;
    }
    while (sv->peer.failed == 0) {
        if (sv->state == SRV_HANDSHAKE) {
            tls_peer_step(&sv->peer);
            if (sv->peer.failed != 0)
                fprintf(stderr, "test server: handshake failed: -0x%04x\n",
                        (unsigned)-sv->peer.failed);
            if (!sv->peer.done)
                return;
            srv_handshake_done(sv);
        }
        if (sv->tls && sv->state != SRV_CLOSED && !srv_decrypt(sv))
            return;
        if (sv->tls && sv->state == SRV_CLOSED)
            srv_decrypt(sv); /* only a close_notify may follow QUIT */
        if (sv->state == SRV_CLOSED || !srv_next_line(sv, line, sizeof line))
            return;
        srv_line(sv, line);
    }
}

/* ---- one submission ---------------------------------------------------- */

typedef struct outcome {
    server sv;
    logbook lb;
    hato_message *m;
    hato_session *s;
} outcome;

/* Everything hato_session wants to write, to the server's wire. */
static bool client_to_server(hato_session *s, server *sv)
{
    bool moved = false;
    for (;;) {
        size_t n = 0;
        const uint8_t *p = hato_session_output(s, &n);
        if (n == 0)
            return moved;
        tls_peer_put(&sv->peer, p, n);
        hato_session_output_done(s, n);
        moved = true;
    }
}

/* A piece of 1..max_piece bytes of the server's output to the client. */
static bool server_to_client(server *sv, hato_session *s, unsigned *seed, size_t max_piece)
{
    if (buf_size(&sv->peer.out) == 0)
        return false;
    const unsigned char *p;
    size_t k = tls_peer_pending(&sv->peer, 1 + (size_t)rand_r(seed) % max_piece, &p);
    hato_session_input(s, p, k);
    tls_peer_taken(&sv->peer, k);
    return true;
}

/* Sends one message through the test server; the caller inspects and
 * frees the outcome. */
static bool submit(outcome *r, server_opts so, unsigned seed, size_t max_piece)
{
    memset(r, 0, sizeof *r);
    if (!server_init(&r->sv, so)) {
        CHECK(!"server");
        return false;
    }
    hato_options *o = hato_options_new();
    CHECK_INT(hato_options_set_relay(o, "localhost", 587), HATO_OK);
    CHECK_INT(hato_options_set_tls_level(o, HATO_TLS_VERIFY), HATO_OK);
    CHECK_INT(hato_options_set_ca_file(o, in_dir("ca.crt")), HATO_OK);
    CHECK_INT(hato_options_set_helo_name(o, "client.example"), HATO_OK);
    CHECK_INT(hato_options_set_credentials(o, USER, PASSWORD), HATO_OK);
    CHECK_INT(hato_options_set_log(o, collect_log, &r->lb, HATO_LOG_TRACE), HATO_OK);
    if (so.tickets) {
        CHECK_INT(hato_options_set_state_dir(o, in_dir("state")), HATO_OK);
    }
    r->m = hato_message_new();
    hato_message_set_sender(r->m, "me@example.test");
    hato_message_add_recipient(r->m, "you@example.test");
    hato_message_set_content(r->m, CONTENT, strlen(CONTENT));
    r->s = hato_session_new(o, r->m, "127.0.0.1");
    hato_options_free(o); /* the session keeps a copy */
    if (r->s == NULL) {
        CHECK(!"session");
        return false;
    }
    server *sv = &r->sv;
    bool finished = false;
    for (long i = 0; i < 1000000 && !finished; i++) {
        if (hato_session_want(r->s) & HATO_WANT_DONE) {
            finished = true;
            break;
        }
        bool moved = client_to_server(r->s, sv);
        server_run(sv);
        if (server_to_client(sv, r->s, &seed, max_piece))
            continue;
        if (moved)
            continue;
        if (sv->state == SRV_CLOSED || sv->peer.failed != 0) {
            /* The server hung up. */
            hato_session_input_eof(r->s);
            continue;
        }
        fprintf(stderr, "test: stuck, server in state %d, client wants %u\n", (int)sv->state,
                hato_session_want(r->s));
        break;
    }
    CHECK(finished);
    /* A close_notify the client sent last. */
    client_to_server(r->s, sv);
    server_run(sv);
    CHECK(!r->lb.overflow);
    return true;
}

static void outcome_free(outcome *r)
{
    hato_session_free(r->s);
    hato_message_free(r->m);
    server_free(&r->sv);
}

/* No secret in the client's log or error: the password, and none of the
 * SASL payloads that crossed the wire (they let a reader test guesses). */
static void check_no_secrets(const outcome *r)
{
    const char *log = r->lb.text;
    CHECK(strstr(log, PASSWORD) == NULL);
    const hato_error *e = hato_session_error(r->s);
    if (e != NULL) {
        CHECK(strstr(hato_error_message(e), PASSWORD) == NULL);
        CHECK(strstr(hato_error_server_text(e), PASSWORD) == NULL);
    }
    const char *w = (const char *)buf_head(&r->sv.sasl_wire);
    size_t left = buf_size(&r->sv.sasl_wire);
    int payloads = 0;
    while (left > 0) {
        const char *nl = memchr(w, '\n', left);
        size_t n = nl ? (size_t)(nl - w) : left;
        char one[1024];
        snprintf(one, sizeof one, "%.*s", (int)n, w);
        if (strstr(log, one) != NULL) {
            check_failures++;
            fprintf(stderr, "%s:%d: SASL payload in the log: %s\n", __FILE__, __LINE__, one);
        }
        check_count++;
        payloads++;
        w += n + (nl != NULL);
        left -= n + (nl != NULL);
    }
    CHECK(payloads >= 2);
    CHECK_HAS(log, "> AUTH ");
    CHECK_HAS(log, " [redacted]");
}

/* The login with mech succeeded on both sides and the message went. */
static void check_sent(outcome *r, const char *mech, const char *gs2)
{
    server *sv = &r->sv;
    CHECK_STR(sv->mech, mech);
    CHECK_INT(sv->auth_commands, 1);
    CHECK_STR(sv->gs2, gs2);
    CHECK_INT(sv->sasl_rc, GSASL_OK);
    CHECK_STR(sv->authid, USER);
    CHECK_INT(sv->unexpected, 0);
    CHECK_INT(sv->peer.failed, 0);
    const hato_error *e = hato_session_error(r->s);
    CHECK(e == NULL);
    if (e != NULL)
        fprintf(stderr, "client error: %s: %s\n", hato_code_name(hato_error_code(e)),
                hato_error_message(e));
    CHECK(hato_message_sent(r->m));
    const char *enh = NULL, *text = NULL;
    CHECK_INT(hato_message_data_reply(r->m, &enh, &text), 250);
    CHECK_HAS(text, "queued as PLUS1");
    CHECK(buf_size(&sv->body) > 0);
    CHECK(buf_append(&sv->body, "", 1));
    CHECK_HAS((const char *)buf_head(&sv->body), "bound to the channel");
    CHECK(sv->state == SRV_CLOSED);
    char said[200];
    snprintf(said, sizeof said, "authenticated to localhost as " USER " with %s", mech);
    CHECK_HAS(r->lb.text, said);
    snprintf(said, sizeof said, "> AUTH %s [redacted]", mech);
    CHECK_HAS(r->lb.text, said);
    check_no_secrets(r);
}

/* The cuttings of the server's bytes every scenario runs with. */
static const size_t pieces[] = {7, 1 << 16};
#define NPIECES (sizeof pieces / sizeof pieces[0])

/* ---- the cases ---------------------------------------------------------- */

/* (1) The strongest offer: SCRAM-SHA-256-PLUS under TLS 1.3, the binding
 * equal on both ends; on 2.28 plain SCRAM-SHA-256. */
static void test_plus_sha256(void)
{
    for (size_t i = 0; i < NPIECES; i++) {
        outcome r;
        server_opts so = {.auth = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN"};
        if (!submit(&r, so, 101u + (unsigned)i, pieces[i]))
            continue;
#if HAVE_EXPORTER
        CHECK_STR(r.sv.version, "TLSv1.3");
        CHECK(r.sv.have_cb);
        CHECK_HAS(r.lb.text, "TLS with localhost: TLSv1.3");
        check_sent(&r, "SCRAM-SHA-256-PLUS", "p=tls-exporter,,");
#else
        CHECK_STR(r.sv.version, "TLSv1.2");
        check_sent(&r, "SCRAM-SHA-256", "n,,");
#endif
        if (i == 0)
            show("sha256 log", r.lb.text);
        outcome_free(&r);
    }
}

/* (2) The server's binding differs (a TLS-terminating proxy in between):
 * libgsasl's server refuses, 535, and the client's error says why a right
 * password may still fail.  Nothing is sent, and no second mechanism is
 * tried with the credentials (535 judged them). */
static void test_wrong_binding(void)
{
#if HAVE_EXPORTER
    for (size_t i = 0; i < NPIECES; i++) {
        outcome r;
        server_opts so = {.auth = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN",
                          .wrong_exporter = true};
        if (!submit(&r, so, 202u + (unsigned)i, pieces[i]))
            continue;
        CHECK_STR(r.sv.mech, "SCRAM-SHA-256-PLUS");
        CHECK_STR(r.sv.gs2, "p=tls-exporter,,");
        CHECK_INT(r.sv.auth_commands, 1);
        CHECK_INT(r.sv.sasl_rc, GSASL_AUTHENTICATION_ERROR);
        CHECK_INT(r.sv.unexpected, 0);
        CHECK(r.sv.state == SRV_CLOSED);
        CHECK(!hato_message_sent(r.m));
        CHECK_INT(buf_size(&r.sv.body), 0);
        const hato_error *e = hato_session_error(r.s);
        CHECK(e != NULL);
        if (e != NULL) {
            show("wrong binding", hato_error_message(e));
            CHECK_STR(hato_code_name(hato_error_code(e)), "HATO_E_AUTH");
            CHECK_INT(hato_error_layer(e), HATO_LAYER_SASL);
            CHECK_INT(hato_error_reply_code(e), 535);
            CHECK_STR(hato_error_enhanced_code(e), "5.7.8");
            CHECK(!hato_error_temporary(e));
            const char *msg = hato_error_message(e);
            CHECK_HAS(msg, "authentication as " USER " with SCRAM-SHA-256-PLUS failed at "
                           "localhost");
            CHECK_HAS(msg, "a TLS proxy in between may break channel binding");
            CHECK_HAS(msg, "smtp_sasl_mechanism_filter without -plus variants");
        }
        check_no_secrets(&r);
        outcome_free(&r);
    }
#else
    printf("plus: no tls-exporter with this mbedTLS; wrong-binding case skipped\n");
#endif
}

/* (3) SCRAM-SHA-1-PLUS, the only -PLUS offered, beats SCRAM-SHA-256: the
 * binding counts for more than the hash (docs/auth.md's order). */
static void test_plus_sha1(void)
{
    outcome r;
    server_opts so = {.auth = "PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS"};
    if (!submit(&r, so, 303u, 64))
        return;
#if HAVE_EXPORTER
    check_sent(&r, "SCRAM-SHA-1-PLUS", "p=tls-exporter,,");
#else
    check_sent(&r, "SCRAM-SHA-256", "n,,");
#endif
    outcome_free(&r);
}

/* (4) TLS 1.2 has no tls-exporter hato will use (docs/tls.md), so -PLUS is
 * passed over and SCRAM-SHA-256 runs unbound: a 3.x server capped at 1.2,
 * and on 2.28 every link. */
static void test_tls12_no_plus(void)
{
    outcome r;
    server_opts so = {.auth = "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 PLAIN",
                      .tls12_only = true};
    if (!submit(&r, so, 404u, 1 << 16))
        return;
    CHECK_STR(r.sv.version, "TLSv1.2");
    CHECK(!r.sv.have_cb);
    CHECK_HAS(r.lb.text, "TLS with localhost: TLSv1.2");
    check_sent(&r, "SCRAM-SHA-256", "n,,");
    outcome_free(&r);

    /* Only -PLUS offered over TLS 1.2: no AUTH at all, and the error says
     * the link lacks the binding (deferred, as Postfix defers 4.7.0). */
    so.auth = "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS";
    if (!submit(&r, so, 405u, 1 << 16))
        return;
    CHECK_INT(r.sv.auth_commands, 0);
    CHECK_INT(r.sv.unexpected, 0);
    CHECK(r.sv.state == SRV_CLOSED);
    CHECK(!hato_message_sent(r.m));
    const hato_error *e = hato_session_error(r.s);
    CHECK(e != NULL);
    if (e != NULL) {
        show("only -PLUS on TLS 1.2", hato_error_message(e));
        CHECK_STR(hato_code_name(hato_error_code(e)), "HATO_E_AUTH_MECH");
        CHECK(hato_error_temporary(e));
        CHECK_HAS(hato_error_message(e), "SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS need TLS "
                                         "channel binding, which this TLS connection does "
                                         "not provide");
    }
    outcome_free(&r);
}

/* The documented limit (docs/auth.md): with a binding on the link, a server
 * offering no -PLUS gets the GS2 flag "n", not "y", so a server that
 * stopped advertising -PLUS is not noticed.  libgsasl's server, which has
 * the binding too, accepts "n". */
static void test_no_plus_offered(void)
{
    outcome r;
    server_opts so = {.auth = "SCRAM-SHA-256 PLAIN"};
    if (!submit(&r, so, 505u, 1 << 16))
        return;
    check_sent(&r, "SCRAM-SHA-256", "n,,");
#if HAVE_EXPORTER
    CHECK(r.sv.have_cb);
#endif
    outcome_free(&r);
}

/* A later process resumes the TLS session from the state directory: the
 * exporter of the resumed TLS 1.3 session still binds the login (RFC 9266
 * defines it for every handshake). */
static void test_plus_resumed(void)
{
    server_opts so = {.auth = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN", .tickets = true};
    for (int round = 0; round < 2; round++) {
        outcome r;
        if (!submit(&r, so, 606u + (unsigned)round, 1 << 16))
            return;
        if (round == 1) {
            show("resumed", r.lb.text);
            CHECK_HAS(r.lb.text, "session resumed");
        }
#if HAVE_EXPORTER
        check_sent(&r, "SCRAM-SHA-256-PLUS", "p=tls-exporter,,");
#else
        check_sent(&r, "SCRAM-SHA-256", "n,,");
#endif
        outcome_free(&r);
    }
}

/* ---- setup ------------------------------------------------------------- */

int main(void)
{
    if (!tls_peer_setup("plus"))
        return 1;
    if (gsasl_init(&gsasl_server_ctx) != GSASL_OK) {
        fprintf(stderr, "gsasl_init failed\n");
        tls_peer_cleanup();
        return 1;
    }
    if (tls_peer_make_certs()) {
        test_plus_sha256();
        test_wrong_binding();
        test_plus_sha1();
        test_tls12_no_plus();
        test_no_plus_offered();
        test_plus_resumed();
    } else {
        CHECK(!"certificates");
    }
    tls_peer_cleanup();
    gsasl_done(gsasl_server_ctx);
    printf("backend: %s, libgsasl %s\n", hato_tls_backend_version(), gsasl_check_version(NULL));
    return check_finish("plus");
}
