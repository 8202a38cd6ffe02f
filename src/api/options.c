#include "api/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply/ehlo.h"
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
    o->tls_min_version = HATO_TLS_V1_2;
    snprintf(o->pin_digest, sizeof o->pin_digest, "sha256");
    o->sasl_plain_link = HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS;
    o->sasl_tls_link = HATO_SASL_NOANONYMOUS;
    return o;
}

// NOLINTNEXTLINE(misc-no-recursion): bounded, one level: fallbacks have no fallbacks
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
    free(o->cert_file);
    free(o->key_file);
    free(o->pins);
    free(o->state_dir);
    for (size_t i = 0; i < o->nfallbacks; i++)
        hato_options_free(o->fallbacks[i]);
    free(o->fallbacks);
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
    if ((unsigned)level > HATO_TLS_TOFU)
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
    const unsigned known = HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS |
                           HATO_SASL_NODICTIONARY | HATO_SASL_MUTUAL_AUTH;
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

hato_code hato_options_set_discard_ehlo_keywords(hato_options *o, const char *list)
{
    o->discard_ehlo = list != NULL ? ehlo_flags_named(list) : 0;
    return HATO_OK;
}

hato_code hato_options_set_keep_alive(hato_options *o, unsigned idle_ms)
{
    if (idle_ms > 3600u * 1000)
        return HATO_E_ARGUMENT;
    o->keep_alive_ms = idle_ms;
    return HATO_OK;
}

hato_code hato_options_set_log(hato_options *o, hato_log_fn fn, void *user, hato_log_level max_level)
{
    o->log.fn = fn;
    o->log.user = user;
    o->log.max = max_level;
    return HATO_OK;
}

static hato_options *copy_one(const hato_options *src, bool with_fallbacks);

hato_options *options_copy(const hato_options *src)
{
    return copy_one(src, true);
}

/* A fallback relay's copy: everything but its own fallbacks (one level of
 * fallbacks only, so a list can never refer back to itself). */
// NOLINTNEXTLINE(misc-no-recursion): bounded, one level: a fallback's copy has no fallbacks
static hato_options *copy_one(const hato_options *src, bool with_fallbacks)
{
    hato_options *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    *o = *src;
    o->host = o->ca_file = o->ca_path = o->tls_server_name = NULL;
    o->user = o->password = o->mech_filter = o->helo_name = NULL;
    o->cert_file = o->key_file = o->state_dir = NULL;
    o->pins = NULL;
    o->fallbacks = NULL;
    o->nfallbacks = 0;
    if (with_fallbacks && src->nfallbacks > 0) {
        if ((o->fallbacks = calloc(src->nfallbacks, sizeof(hato_options *))) == NULL) {
            hato_options_free(o);
            return NULL;
        }
        for (; o->nfallbacks < src->nfallbacks; o->nfallbacks++) {
            o->fallbacks[o->nfallbacks] = copy_one(src->fallbacks[o->nfallbacks], false);
            if (o->fallbacks[o->nfallbacks] == NULL) {
                hato_options_free(o);
                return NULL;
            }
        }
    }
    if (src->npins > 0) {
        if ((o->pins = malloc(src->npins * sizeof *o->pins)) == NULL) {
            o->npins = 0;
            hato_options_free(o);
            return NULL;
        }
        memcpy(o->pins, src->pins, src->npins * sizeof *o->pins);
    }
    bool ok = set_string(&o->host, src->host) == HATO_OK &&
              set_string(&o->ca_file, src->ca_file) == HATO_OK &&
              set_string(&o->ca_path, src->ca_path) == HATO_OK &&
              set_string(&o->tls_server_name, src->tls_server_name) == HATO_OK &&
              set_string(&o->mech_filter, src->mech_filter) == HATO_OK &&
              set_string(&o->helo_name, src->helo_name) == HATO_OK &&
              set_string(&o->cert_file, src->cert_file) == HATO_OK &&
              set_string(&o->key_file, src->key_file) == HATO_OK &&
              set_string(&o->state_dir, src->state_dir) == HATO_OK &&
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

/* ---- TLS: minimum version, client certificate, pins, state ---------- */

hato_code hato_options_set_tls_min_version(hato_options *o, hato_tls_version v)
{
    /* Whether the TLS library has 1.3 is known only when a connection is
     * set up: a 2.28 build reports HATO_E_CONFIG then. */
    if (v != HATO_TLS_V1_2 && v != HATO_TLS_V1_3)
        return HATO_E_ARGUMENT;
    o->tls_min_version = v;
    return HATO_OK;
}

hato_code hato_options_set_client_cert(hato_options *o, const char *cert_file, const char *key_file)
{
    /* The files are read when TLS starts, so that errors name them with the
     * reason of that moment. */
    if (cert_file == NULL)
        key_file = NULL;
    if ((cert_file != NULL && cert_file[0] == '\0') || (key_file != NULL && key_file[0] == '\0'))
        return HATO_E_ARGUMENT;
    char *c = NULL, *k = NULL;
    if ((cert_file != NULL && (c = strdup(cert_file)) == NULL) ||
        (key_file != NULL && (k = strdup(key_file)) == NULL)) {
        free(c);
        return HATO_E_NOMEM;
    }
    free(o->cert_file);
    free(o->key_file);
    o->cert_file = c;
    o->key_file = k;
    return HATO_OK;
}

static size_t digest_size(const char *name)
{
    return strcmp(name, "sha1") == 0     ? 20
           : strcmp(name, "sha256") == 0 ? 32
           : strcmp(name, "sha384") == 0 ? 48
           : strcmp(name, "sha512") == 0 ? 64
                                         : 0;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* "AB:CD:..." as Postfix prints it, or the same digits without colons
 * (either all pairs separated by one colon or none). */
static bool parse_pin(const char *hex, tls_pin *pin)
{
    size_t n = 0;
    const char *p = hex;
    bool colons = strchr(hex, ':') != NULL;
    while (*p != '\0') {
        int hi = hex_value(p[0]), lo = hi < 0 ? -1 : hex_value(p[1]);
        if (hi < 0 || lo < 0 || n == TLS_PIN_MAX)
            return false;
        pin->digest[n++] = (unsigned char)(hi << 4 | lo);
        p += 2;
        if (colons && *p == ':' && p[1] != '\0')
            p++;
        else if (*p != '\0' && (colons || *p == ':'))
            return false;
    }
    pin->len = n;
    return n == 20 || n == 32 || n == 48 || n == 64;
}

hato_code hato_options_add_tls_fingerprint(hato_options *o, bool public_key, const char *hex)
{
    if (hex == NULL)
        return HATO_E_ARGUMENT;
    tls_pin pin = {.pkey = public_key};
    if (!parse_pin(hex, &pin))
        return HATO_E_ARGUMENT;
    /* With the digest known, a wrong length is caught now; otherwise when
     * TLS starts (the digest may be set after the pins). */
    if (o->pin_digest_set && pin.len != digest_size(o->pin_digest))
        return HATO_E_ARGUMENT;
    tls_pin *more = realloc(o->pins, (o->npins + 1) * sizeof *more);
    if (more == NULL)
        return HATO_E_NOMEM;
    more[o->npins++] = pin;
    o->pins = more;
    return HATO_OK;
}

hato_code hato_options_set_tls_fingerprint_digest(hato_options *o, const char *digest)
{
    if (digest == NULL || digest_size(digest) == 0)
        return HATO_E_ARGUMENT;
    snprintf(o->pin_digest, sizeof o->pin_digest, "%s", digest);
    o->pin_digest_set = true;
    return HATO_OK;
}

hato_code hato_options_set_state_dir(hato_options *o, const char *directory)
{
    if (directory != NULL && directory[0] == '\0')
        return HATO_E_ARGUMENT;
    return set_string(&o->state_dir, directory);
}

/* ---- Relays: MX lookups and fallbacks ------------------------------ */

hato_code hato_options_set_relay_mx(hato_options *o, bool mx)
{
    o->relay_mx = mx;
    return HATO_OK;
}

hato_code hato_options_add_fallback_relay(hato_options *o, const hato_options *relay)
{
    if (relay == NULL || relay == o || relay->host == NULL)
        return HATO_E_ARGUMENT;
    if (o->nfallbacks == OPTIONS_FALLBACK_MAX)
        return HATO_E_ARGUMENT;
    hato_options **more = realloc(o->fallbacks, (o->nfallbacks + 1) * sizeof(hato_options *));
    if (more == NULL)
        return HATO_E_NOMEM;
    o->fallbacks = more;
    if ((more[o->nfallbacks] = copy_one(relay, false)) == NULL)
        return HATO_E_NOMEM;
    o->nfallbacks++;
    return HATO_OK;
}
