/*
 * fuzz_config - the configuration parser (src/program/config.c): Postfix
 * main.cf syntax, $name expansion, every key hato reads and the values'
 * own syntaxes (relays, times, sizes, mynetworks, lists).
 *
 * Input: a configuration file's bytes, parsed from memory exactly as they
 * are (not terminated, so an over-read is caught).  After a good parse
 * the results are touched as the program uses them; the relay value and
 * each line are also given to the value parsers the file's keys use.
 */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "config.h"
#include "fuzz.h"

static void on_warn(void *user, const char *message)
{
    (void)user;
    if (message == NULL || strlen(message) > 1u << 20)
        abort();
}

/* Each line alone through the value parsers (bounded: the first 64). */
static void values(const char *text, size_t len)
{
    unsigned lines = 0;
    while (len > 0 && lines++ < 64) {
        const char *nl = memchr(text, '\n', len);
        size_t n = nl ? (size_t)(nl - text) : len;
        char *v = fuzz_strndup(text, n);
        char *host = NULL;
        uint16_t port = 0;
        bool bracketed = false;
        const char *why = NULL;
        int rc = config_parse_relay(v, &host, &port, &bracketed, &why);
        if (rc == 0 && host == NULL)
            abort();
        if (rc == -1 && why == NULL)
            abort();
        free(host);
        unsigned ms = 0;
        config_parse_time(v, &ms);
        struct config_network net;
        if (config_parse_network(v, n, &net, &why) == 0 &&
            ((net.family == AF_INET && net.prefix > 32) || net.prefix > 128))
            abort();
        free(v);
        size_t step = nl ? n + 1 : n;
        text += step;
        len -= step;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        abort();
    memcpy(text, data, size);
    const struct config_env env = {"mail.example.org", on_warn, NULL};
    struct config c;
    char err[1024] = "";
    enum config_status st = config_parse(&c, "/etc/hato.conf", text, size, &env, err, sizeof err);
    if (st != CONFIG_OK && err[0] == '\0' && st != CONFIG_NOMEM)
        abort(); /* every refusal says why */
    if (st == CONFIG_OK) {
        if (c.queue_directory == NULL)
            abort(); /* config.h: never NULL after a successful load */
        if (c.min_backoff < 1 || c.max_backoff < c.min_backoff)
            abort();
        unsigned char v4[4] = {127, 0, 0, 1}, v6[16] = {0};
        v6[15] = 1;
        config_network_match(c.mynetworks, c.nmynetworks, AF_INET, v4);
        config_network_match(c.mynetworks, c.nmynetworks, AF_INET6, v6);
        for (size_t i = 0; i < c.nfallback_relays; i++)
            (void)strlen(c.fallback_relays[i].host);
    }
    config_free(&c);
    values(text, size);
    free(text);
    return 0;
}
