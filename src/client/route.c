/*
 * route.c - where a new connection goes: the relay, or its MX hosts when
 * it was named without brackets, then each fallback relay
 * (smtp_fallback_relay) in turn, for as long as nothing of the message
 * can have been delivered.  Each host's addresses are raced by the
 * transport (Happy Eyeballs).
 *
 * The states of one send, in order:
 *   NEXT_RELAY  take the next relay of the list (or fail: none left)
 *   HOSTS       its hosts: MX lookup, or the relay host itself
 *   CONNECT     race the next host's addresses (next host on failure)
 *   SESSION     run SMTP; a failure before any recipient was answered
 *               goes to the next host, else the send ends here
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/error.h"
#include "api/options.h"
#include "client/client.h"
#include "message/message.h"
#include "transport/transport.h"

/* The failures of one send, for the message when every relay failed. */
typedef struct route_log {
    hato_error last;   /* the last attempt's failure: its code counts */
    char text[ERROR_MESSAGE_MAX];
    size_t attempts;
} route_log;

static void note(route_log *r, const hato_error *e)
{
    r->last = *e;
    /* Cut at the buffer's end: the first failures matter most. */
    const char *parts[2] = {r->attempts ? "; then " : "", e->message};
    size_t used = strlen(r->text);
    for (size_t k = 0; k < 2; k++) {
        size_t len = strlen(parts[k]), room = sizeof r->text - 1 - used;
        if (len > room)
            len = room;
        memcpy(r->text + used, parts[k], len);
        used += len;
    }
    r->text[used] = '\0';
    r->attempts++;
}

/* Watches the message's reader during one session: whether any content
 * was pulled from it. */
typedef struct pull_watch {
    hato_read_fn fn;   /* the caller's reader, borrowed */
    void *user;
    bool pulled;
} pull_watch;

static ptrdiff_t watched_read(void *user, char *out, size_t cap)
{
    pull_watch *w = user;
    w->pulled = true;
    return w->fn(w->user, out, cap);
}

bool client_drive_watched(hato_session *s, int fd, hato_message *m)
{
    /* The reader is watched for this run only (after it, an idle session
     * no longer touches the message); in-memory content shows it by its
     * position, which the session rewound when it started. */
    size_t before = m->content_pos;
    pull_watch watch = {m->reader, m->reader_user, false};
    if (m->reader != NULL) {
        m->reader = watched_read;
        /* Restored below, before watch goes out of scope. */
        // cppcheck-suppress autoVariables
        m->reader_user = &watch;
    }
    client_drive(s, fd);
    if (watch.fn != NULL) {
        m->reader = watch.fn;
        m->reader_user = watch.user;
        return watch.pulled;
    }
    return m->content_pos > before;
}

/* Whether a failed session leaves room for another host: nothing of the
 * message can have been delivered, and another server may do better.
 * Content leaves the message only when it is about to be written: after
 * the 354 to DATA, or with the first BDAT chunk, which CHUNKING sends
 * pipelined with MAIL and RCPT before any reply.  So a session that
 * pulled no content, and had no recipient answered, cannot have
 * delivered anything.  What moves on follows Postfix's choice of trying
 * the next MX host or fallback relay: unreachable, 4xx, TLS,
 * authentication, a dead or broken connection.  A 5xx, or a fault of the
 * message or of this host, would be the same anywhere. */
static bool worth_another(const hato_error *e, hato_message *m, bool content_pulled)
{
    if (content_pulled)
        return false;
    if (hato_message_recipient_count(m) > 0 && hato_message_recipient_reply(m, 0, NULL, NULL) != 0)
        return false;
    if (hato_message_data_reply(m, NULL, NULL) != 0)
        return false;
    switch (e->code) {
    case HATO_E_RESOLVE:
    case HATO_E_CONNECT:
    case HATO_E_TIMEOUT:
    case HATO_E_NETWORK:
    case HATO_E_TLS:
    case HATO_E_TLS_VERIFY:
    case HATO_E_TLS_REQUIRED:
    case HATO_E_PROTOCOL:
    case HATO_E_AUTH:
    case HATO_E_AUTH_MECH:
        return e->temporary || e->code == HATO_E_AUTH;
    case HATO_E_REPLY:
        return e->temporary;
    default:
        return false;
    }
}

/* The hosts of relay r: its MX hosts, or itself.  Returns how many, or 0
 * with e set. */
static size_t relay_hosts(const hato_options *r, const logger *log, transport_mx *hosts,
                          hato_error *e)
{
    size_t n = 0;
    if (r->relay_mx && !transport_is_address(r->host)) {
        transport_mx_status st = transport_mx_lookup(r->host, "relayhost", log, hosts,
                                                     TRANSPORT_MX_MAX, &n, e);
        if (st == TRANSPORT_MX_FAILED)
            return 0;
        if (st == TRANSPORT_MX_FOUND)
            return n;
    }
    snprintf(hosts[0].host, sizeof hosts[0].host, "%s", r->host);
    hosts[0].preference = 0;
    return 1;
}

/* One host of relay r: connect, then SMTP.  Returns true when the send
 * ended here (success or a failure not worth another host); false with
 * the failure noted in rl. */
static bool try_host(hato_client *c, hato_message *m, const hato_options *r, size_t relay_index,
                     const char *host, bool last, route_log *rl, hato_code *code)
{
    const logger *log = &c->opt->log;
    /* The relay's settings with this host: the session takes its own deep
     * copy, so a shallow view on the stack is enough. */
    hato_options view = *r;
    view.host = (char *)host;
    view.fallbacks = NULL;
    view.nfallbacks = 0;
    view.log = c->opt->log; /* one log for the whole send, as documented */
    transport_target target = {
        .host = host,
        .port = options_port(r),
        .family = r->family,
        .connect_timeout_ms = r->timeout_ms[HATO_TIMEOUT_CONNECT],
    };
    hato_error e;
    char address[64];
    c->peer[0] = '\0';
    int fd = transport_connect(&target, log, c->peer, address, sizeof address, &e);
    if (fd < 0) {
        note(rl, &e);
        return false;
    }
    /* The last connection's TLS session is offered to the same server
     * only (with the same settings: the same relay of the list). */
    char relay_key[TRANSPORT_PEER_MAX];
    snprintf(relay_key, sizeof relay_key, "%zu/%s:%u", relay_index, host, target.port);
    if (strcmp(relay_key, c->tls_cache_relay) != 0) {
        session_cache_clear(&c->tls_cache);
        snprintf(c->tls_cache_relay, sizeof c->tls_cache_relay, "%s", relay_key);
    }
    hato_session *s = session_new_cached(&view, m, address, &c->tls_cache);
    if (s == NULL) {
        close(fd);
        error_set(&e, HATO_E_NOMEM, HATO_LAYER_API, true, "out of memory starting the session");
        *code = client_fail(c, &e);
        return true;
    }
    bool pulled = client_drive_watched(s, fd, m);
    const hato_error *se = hato_session_error(s);
    if (se == NULL || last || !worth_another(se, m, pulled)) {
        bool earlier = se != NULL && rl->attempts > 0;
        if (earlier)
            note(rl, se);
        *code = client_finish(c, s, fd);
        /* Earlier hosts failed too: the message names every failure, the
         * code and reply stay this one's. */
        if (earlier)
            snprintf(c->err.message, sizeof c->err.message, "%s", rl->text);
        return true;
    }
    note(rl, se);
    log_line(log, HATO_LOG_INFO, "%s failed before any recipient was answered (%s); trying the "
             "next relay host", c->peer, se->message);
    hato_session_free(s);
    close(fd);
    return false;
}

hato_code client_send_routed(hato_client *c, hato_message *m)
{
    const hato_options *o = c->opt;
    const logger *log = &o->log;
    route_log rl;
    memset(&rl, 0, sizeof rl);
    size_t nrelays = 1 + o->nfallbacks;
    hato_code code = HATO_OK;

    for (size_t i = 0; i < nrelays; i++) {
        const hato_options *r = i == 0 ? o : o->fallbacks[i - 1];
        if (i > 0)
            log_line(log, HATO_LOG_INFO, "trying fallback relay %s%s%s:%u (%zu of %zu)",
                     r->relay_mx ? "" : "[", r->host, r->relay_mx ? "" : "]",
                     (unsigned)options_port(r), i, o->nfallbacks);
        transport_mx hosts[TRANSPORT_MX_MAX];
        hato_error e;
        size_t n = relay_hosts(r, log, hosts, &e);
        if (n == 0) {
            note(&rl, &e);
            if (!e.temporary)
                break; /* a null MX: no relay is meant to be found there */
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            bool last = i + 1 == nrelays && k + 1 == n;
            if (try_host(c, m, r, i, hosts[k].host, last, &rl, &code))
                return code;
        }
    }
    /* Every host failed before a session ended the send: the last
     * failure's code, every failure's text. */
    hato_error all = rl.last;
    snprintf(all.message, sizeof all.message, "%s", rl.text);
    return client_fail(c, &all);
}
