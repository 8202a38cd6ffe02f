/*
 * probe.c - hato_client_probe: what the guide does with telnet, and more.
 *
 * First the relay host's ports 25, 465 and 587, each with a short timeout,
 * so that Outbound Port 25 Blocking shows as what it is; then a session on
 * the configured port in probe mode, which reports greeting, TLS,
 * capabilities and authentication and stops before MAIL.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client.h"
#include "message/message.h"
#include "session/session.h"

/* A port scan must not keep a person waiting: a blocked port costs this. */
#define SCAN_TIMEOUT_MS 4000

typedef struct probe {
    hato_probe_fn fn;
    void *user;
} probe;

static void say(const probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const probe *p, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    p->fn(p->user, line);
}

typedef enum port_answer {
    PORT_GREETS,   /* connected and sent a greeting (25, 587) */
    PORT_OPEN,     /* connected (465: TLS first, no greeting to read) */
    PORT_SILENT,   /* no answer at all: filtered, as OP25B does */
    PORT_REFUSED,  /* refused or unreachable: nothing listens */
} port_answer;

/* Reads the first line the server sends, within the scan timeout. */
static bool read_greeting(int fd, char *line, size_t len)
{
    size_t used = 0;
    while (used + 1 < len) {
        if (transport_wait(fd, POLLIN, SCAN_TIMEOUT_MS) <= 0)
            break;
        ssize_t n = recv(fd, line + used, len - 1 - used, 0);
        if (n <= 0)
            break;
        used += (size_t)n;
        if (memchr(line, '\n', used) != NULL)
            break;
    }
    line[used] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    return used > 0;
}

static port_answer scan_port(const probe *p, const hato_options *o, unsigned short port)
{
    transport_target t = {
        .host = o->host, .port = port, .family = o->family,
        .connect_timeout_ms = SCAN_TIMEOUT_MS,
    };
    logger quiet = {0};
    char peer[TRANSPORT_PEER_MAX], address[64];
    hato_error e;
    int fd = transport_connect(&t, &quiet, peer, address, sizeof address, &e);
    if (fd < 0) {
        bool silent = strstr(e.message, "timed out") != NULL;
        say(p, "  port %-3u %s", port, silent ? "no answer (silently dropped: filtered?)"
                                              : strchr(e.message, ':') ? strchr(e.message, ':') + 2
                                                                       : e.message);
        return silent ? PORT_SILENT : PORT_REFUSED;
    }
    port_answer a = PORT_OPEN;
    if (port == 465) {
        say(p, "  port %-3u connected to %s (implicit TLS)", port, address);
    } else {
        char greeting[256];
        if (read_greeting(fd, greeting, sizeof greeting)) {
            say(p, "  port %-3u connected to %s: %s", port, address, greeting);
            a = PORT_GREETS;
        } else {
            say(p, "  port %-3u connected to %s, but no greeting within %d s", port, address,
                SCAN_TIMEOUT_MS / 1000);
        }
    }
    close(fd);
    return a;
}

static void scan_ports(const probe *p, const hato_options *o)
{
    say(p, "ports of %s:", o->host);
    port_answer p25 = scan_port(p, o, 25);
    port_answer p465 = scan_port(p, o, 465);
    port_answer p587 = scan_port(p, o, 587);
    bool submission = p465 != PORT_SILENT && p465 != PORT_REFUSED;
    submission = submission || p587 == PORT_GREETS || p587 == PORT_OPEN;
    if (p25 == PORT_SILENT && submission)
        say(p, "  port 25 is silent while a submission port answers: this looks like Outbound "
               "Port 25 Blocking (OP25B) by your network; relay through %s with "
               "relayhost = [%s]:%s and SMTP AUTH",
            p587 == PORT_GREETS ? "587 with STARTTLS" : "465 with implicit TLS", o->host,
            p587 == PORT_GREETS ? "587" : "465 and smtp_tls_wrappermode = yes");
}

static const char *const level_names[] = {
    "none", "may", "encrypt", "verify", "secure", "fingerprint", "tofu",
};

hato_code hato_client_probe(hato_client *c, hato_probe_fn fn, void *user)
{
    c->failed = false;
    c->peer[0] = '\0';
    const hato_options *o = c->opt;
    hato_error e;
    if (fn == NULL || o->host == NULL) {
        error_set(&e, HATO_E_ARGUMENT, HATO_LAYER_API, false,
                  fn ? "cannot probe: no relay (hato_options_set_relay)" : "cannot probe: no report function");
        return client_fail(c, &e);
    }
    probe p = {fn, user};
    /* A relay named without brackets is a mail domain: the probe looks at
     * its first MX host, the one a send tries first. */
    hato_options view = *o;
    transport_mx mx[TRANSPORT_MX_MAX];
    if (o->relay_mx && !transport_is_address(o->host)) {
        size_t n = 0;
        logger quiet = {0};
        transport_mx_status st = transport_mx_lookup(o->host, "relayhost", &quiet, mx,
                                                     TRANSPORT_MX_MAX, &n, &e);
        if (st == TRANSPORT_MX_FAILED) {
            say(&p, "failed: %s", e.message);
            return client_fail(c, &e);
        }
        if (st == TRANSPORT_MX_NONE)
            say(&p, "%s has no MX record: probing the host itself", o->host);
        for (size_t i = 0; i < n; i++)
            say(&p, "MX of %s: %s (preference %u)%s", o->host, mx[i].host, mx[i].preference,
                i == 0 ? ": probed below" : "");
        if (n > 0)
            view.host = mx[0].host;
    }
    view.fallbacks = NULL;
    view.nfallbacks = 0;
    o = &view;
    scan_ports(&p, o);

    unsigned short port = options_port(o);
    say(&p, "probing %s port %u: %s, smtp_tls_security_level = %s%s", o->host, port,
        o->tls_wrapper ? "implicit TLS" : "STARTTLS when offered",
        (unsigned)o->tls_level < sizeof level_names / sizeof level_names[0]
            ? level_names[o->tls_level] : "?",
        o->user ? ", with credentials" : ", no credentials");
    transport_target t = {
        .host = o->host, .port = port, .family = o->family,
        .connect_timeout_ms = o->timeout_ms[HATO_TIMEOUT_CONNECT],
    };
    char address[64];
    int fd = transport_connect(&t, &o->log, c->peer, address, sizeof address, &e);
    if (fd < 0) {
        say(&p, "failed: %s", e.message);
        return client_fail(c, &e);
    }
    say(&p, "connected to %s", c->peer);

    /* The session needs a message; a probe's never reaches MAIL. */
    hato_message *none = hato_message_new();
    hato_session *s = none ? hato_session_new(o, none, address) : NULL;
    if (s == NULL) {
        close(fd);
        hato_message_free(none);
        error_set(&e, HATO_E_NOMEM, HATO_LAYER_API, true, "out of memory starting the probe");
        return client_fail(c, &e);
    }
    smtp_set_probe(session_core(s), fn, user);
    client_drive(s, fd);
    close(fd);
    hato_code code = HATO_OK;
    const hato_error *se = hato_session_error(s);
    if (se != NULL) {
        say(&p, "failed: %s", hato_error_message(se));
        code = client_fail(c, se);
    }
    hato_session_free(s);
    hato_message_free(none);
    return code;
}
