#include "api/options.h"

#include <stdlib.h>
#include <string.h>

#include "util/secret.h"

/* RFC 5321 section 4.5.3.2 minimums, as Postfix uses them. */
static const unsigned default_timeout_ms[HATO_TIMEOUT_COUNT_] = {
    [HATO_TIMEOUT_CONNECT] = 30 * 1000,
    [HATO_TIMEOUT_HELO] = 300 * 1000,
    [HATO_TIMEOUT_STARTTLS] = 300 * 1000,
    [HATO_TIMEOUT_MAIL] = 300 * 1000,
    [HATO_TIMEOUT_RCPT] = 300 * 1000,
    [HATO_TIMEOUT_DATA_INIT] = 120 * 1000,
    [HATO_TIMEOUT_DATA_XFER] = 180 * 1000,
    [HATO_TIMEOUT_DATA_DONE] = 600 * 1000,
    [HATO_TIMEOUT_QUIT] = 300 * 1000,
};

hato_options *hato_options_new(void)
{
    hato_options *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    memcpy(o->timeout_ms, default_timeout_ms, sizeof o->timeout_ms);
    o->tls_level = HATO_TLS_VERIFY;
    o->sasl_plain_link = HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS;
    o->sasl_tls_link = HATO_SASL_NOANONYMOUS;
    return o;
}

void hato_options_free(hato_options *o)
{
    if (o == NULL)
        return;
    free(o->host);
    free(o->ca_file);
    free(o->ca_path);
    free(o->tls_server_name);
    free(o->user);
    secret_free(o->password);
    free(o->mech_filter);
    free(o->helo_name);
    free(o);
}

/* Replaces *slot with a copy of value (NULL clears it). */
static hato_code set_string(char **slot, const char *value)
{
    char *copy = NULL;
    if (value != NULL && (copy = strdup(value)) == NULL)
        return HATO_E_NOMEM;
    free(*slot);
    *slot = copy;
    return HATO_OK;
}

/* A name that will go on an SMTP command line or into TLS must not carry
 * line breaks (command injection). */
static bool is_clean(const char *s)
{
    return s == NULL || strpbrk(s, "\r\n") == NULL;
}

hato_code hato_options_set_relay(hato_options *o, const char *host, uint16_t port)
{
    if (host == NULL || host[0] == '\0' || !is_clean(host))
        return HATO_E_ARGUMENT;
    o->port = port;
    return set_string(&o->host, host);
}

hato_code hato_options_set_family(hato_options *o, hato_family family)
{
    if (family != HATO_FAMILY_ANY && family != HATO_FAMILY_IPV4 && family != HATO_FAMILY_IPV6)
        return HATO_E_ARGUMENT;
    o->family = family;
    return HATO_OK;
}

hato_code hato_options_set_timeout(hato_options *o, hato_timeout which, unsigned ms)
{
    if ((unsigned)which >= HATO_TIMEOUT_COUNT_ || ms == 0 || ms > 24u * 3600 * 1000)
        return HATO_E_ARGUMENT;
    o->timeout_ms[which] = ms;
    return HATO_OK;
}

hato_code hato_options_set_tls_level(hato_options *o, hato_tls_level level)
{
    if ((unsigned)level > HATO_TLS_VERIFY)
        return HATO_E_ARGUMENT;
    o->tls_level = level;
    return HATO_OK;
}

hato_code hato_options_set_tls_wrapper(hato_options *o, bool implicit_tls)
{
    o->tls_wrapper = implicit_tls;
    return HATO_OK;
}

hato_code hato_options_set_ca_file(hato_options *o, const char *path)
{
    return set_string(&o->ca_file, path);
}

hato_code hato_options_set_ca_path(hato_options *o, const char *directory)
{
    return set_string(&o->ca_path, directory);
}

hato_code hato_options_set_tls_server_name(hato_options *o, const char *name)
{
    if (!is_clean(name))
        return HATO_E_ARGUMENT;
    return set_string(&o->tls_server_name, name);
}

hato_code hato_options_set_credentials(hato_options *o, const char *user, const char *password)
{
    char *u = NULL, *p = NULL;
    if (user != NULL) {
        if (password == NULL)
            return HATO_E_ARGUMENT;
        u = strdup(user);
        p = secret_dup(password);
        if (u == NULL || p == NULL) {
            free(u);
            secret_free(p);
            return HATO_E_NOMEM;
        }
    }
    free(o->user);
    secret_free(o->password);
    o->user = u;
    o->password = p;
    return HATO_OK;
}

hato_code hato_options_set_sasl_mechanisms(hato_options *o, const char *filter)
{
    if (filter != NULL && filter[0] == '\0')
        filter = NULL;
    return set_string(&o->mech_filter, filter);
}

hato_code hato_options_set_sasl_security(hato_options *o, unsigned plain_link, unsigned tls_link)
{
    const unsigned known = HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS;
    if ((plain_link & ~known) || (tls_link & ~known))
        return HATO_E_ARGUMENT;
    o->sasl_plain_link = plain_link;
    o->sasl_tls_link = tls_link;
    return HATO_OK;
}

hato_code hato_options_set_helo_name(hato_options *o, const char *name)
{
    if (name != NULL && (name[0] == '\0' || !is_clean(name) || strchr(name, ' ')))
        return HATO_E_ARGUMENT;
    return set_string(&o->helo_name, name);
}

hato_code hato_options_set_log(hato_options *o, hato_log_fn fn, void *user, hato_log_level max_level)
{
    o->log.fn = fn;
    o->log.user = user;
    o->log.max = max_level;
    return HATO_OK;
}

hato_options *options_copy(const hato_options *src)
{
    hato_options *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    *o = *src;
    o->host = o->ca_file = o->ca_path = o->tls_server_name = NULL;
    o->user = o->password = o->mech_filter = o->helo_name = NULL;
    bool ok = set_string(&o->host, src->host) == HATO_OK &&
              set_string(&o->ca_file, src->ca_file) == HATO_OK &&
              set_string(&o->ca_path, src->ca_path) == HATO_OK &&
              set_string(&o->tls_server_name, src->tls_server_name) == HATO_OK &&
              set_string(&o->mech_filter, src->mech_filter) == HATO_OK &&
              set_string(&o->helo_name, src->helo_name) == HATO_OK &&
              (src->user == NULL ||
               hato_options_set_credentials(o, src->user, src->password) == HATO_OK);
    if (!ok) {
        hato_options_free(o);
        return NULL;
    }
    return o;
}

uint16_t options_port(const hato_options *o)
{
    if (o->port != 0)
        return o->port;
    return o->tls_wrapper ? 465 : 587;
}

const char *options_tls_name(const hato_options *o)
{
    return o->tls_server_name != NULL ? o->tls_server_name : o->host;
}
