/*
 * commands.c - the two commands that send nothing: --probe, which lets the
 * library diagnose the relay with the same options a send would use, and
 * --tofu-accept, which removes one pinned key from the state directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "hato.h"

#include "config.h"
#include "exitcode.h"
#include "program.h"

static void on_probe_line(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
    fflush(stdout); /* each line as it comes: a slow port shows where it waits */
}

int probe(struct program *pg)
{
    hato_options *o = hato_options_new();
    hato_client *cl = NULL;
    int ex = EX_OK;

    if (o == NULL) {
        say("out of memory");
        return EX_TEMPFAIL;
    }
    if ((ex = build_options(pg, o)) != EX_OK)
        goto out;
    cl = hato_client_new(o);
    hato_options_free(o); /* wipes the password: the client has its copy */
    o = NULL;
    if (cl == NULL) {
        say("out of memory");
        ex = EX_TEMPFAIL;
        goto out;
    }
    hato_code rc = hato_client_probe(cl, on_probe_line, pg);
    if (rc != HATO_OK) {
        const hato_error *e = hato_client_error(cl);
        const char *peer = hato_client_peer(cl);
        char line[2048];
        ex = exitcode_for_error(rc, e ? hato_error_temporary(e) : true, pg->cfg.auth_soft_bounce);
        failure_line(pg, rc, e, ex, peer[0] ? peer : pg->cfg.relay_host, line, sizeof line);
        say("%s", line);
    }
out:
    hato_client_free(cl);
    hato_options_free(o);
    return ex;
}

/* What a TOFU record pins, for a person: its "pkey-sha256 ..." line
 * (the format src/session/session.c writes), else its first line. */
static void describe_record(const char *text, char *out, size_t size)
{
    const char *line = strstr(text, "pkey-sha256 ");
    if (line == NULL || (line != text && line[-1] != '\n'))
        line = text;
    size_t n = strcspn(line, "\r\n");
    snprintf(out, size, "%.*s", (int)n, line);
    for (char *q = out; *q != '\0'; q++)
        if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
            *q = '?';
}

int tofu_accept(struct program *pg)
{
    const struct config *c = &pg->cfg;
    char *host = NULL;
    uint16_t port = 0;
    bool bracketed;
    int ex = EX_OK;

    if (pg->args.tofu_target != NULL) {
        const char *why;
        int r = config_parse_relay(pg->args.tofu_target, &host, &port, &bracketed, &why);
        if (r == -2) {
            say("out of memory");
            return EX_TEMPFAIL;
        }
        if (r == -1) {
            say("--tofu-accept %s: %s; give the relay as [host]:port", pg->args.tofu_target, why);
            return EX_USAGE;
        }
        if (port == 0)
            port = relay_port(c);
    } else if (c->relay_host == NULL) {
        say("relayhost is not set in %s: name the relay, as in hato --tofu-accept [host]:port",
            c->path);
        return EX_CONFIG;
    } else {
        host = strdup(c->relay_host);
        port = relay_port(c);
        if (host == NULL) {
            say("out of memory");
            return EX_TEMPFAIL;
        }
    }
    char *dir = find_state_dir(pg);
    if (dir == NULL) {
        free(host);
        return EX_CONFIG;
    }
    /* The library's layout (src/tls/state.c): tofu/HOST:PORT, with bytes
     * other than letters, digits, ':', '_', '-' and a '.' after the first
     * replaced by '_'. */
    char path[4096];
    int k = snprintf(path, sizeof path, "%s/tofu/", dir);
    for (size_t i = 0; host[i] != '\0' && k > 0 && (size_t)k + 1 < sizeof path; i++) {
        char ch = host[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == ':' || ch == '_' || ch == '-' ||
                  (ch == '.' && i > 0);
        path[k++] = ok ? ch : '_';
        path[k] = '\0';
    }
    if (k > 0 && (size_t)k < sizeof path)
        snprintf(path + k, sizeof path - (size_t)k, ":%u", (unsigned)port);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            say("no key is pinned for [%s]:%u (no file %s); the next connection records the "
                "server's key", host, (unsigned)port, path);
            ex = EX_NOINPUT;
        } else {
            say("cannot open %s: %s", path, strerror(errno));
            ex = errno == EACCES ? EX_NOPERM : EX_IOERR;
        }
        goto out;
    }
    char record[4096];
    ssize_t n = read(fd, record, sizeof record - 1);
    close(fd);
    record[n > 0 ? n : 0] = '\0';
    char shown[300] = "";
    describe_record(record, shown, sizeof shown);
    if (unlink(path) != 0) {
        say("cannot remove %s: %s", path, strerror(errno));
        ex = errno == EACCES || errno == EPERM ? EX_NOPERM : EX_IOERR;
        goto out;
    }
    printf("removed the key pinned for [%s]:%u (%s) from %s; the next connection records the "
           "server's current key: check it first with hato --probe\n", host, (unsigned)port,
           shown[0] ? shown : "an empty record", path);
    if (c->tls_level != HATO_TLS_TOFU)
        say("warning: smtp_tls_security_level is not tofu in %s, so keys are not pinned",
            c->path);
out:
    free(dir);
    free(host);
    return ex;
}

