/*
 * options.h - the settings a client or session runs with.
 *
 * Clients and sessions take a private copy (options_copy), so the caller
 * may change or free its object at any time.
 */
#ifndef HATO_API_OPTIONS_H
#define HATO_API_OPTIONS_H

#include "api/log.h"
#include "hato.h"
#include "tls/tls.h"

struct hato_options {
    char *host;            /* owned; relay name or address literal */
    uint16_t port;         /* 0: 587, or 465 in wrapper mode */
    hato_family family;
    unsigned timeout_ms[HATO_TIMEOUT_COUNT_];
    hato_tls_level tls_level;
    bool tls_wrapper;
    char *ca_file;         /* owned, may be NULL */
    char *ca_path;         /* owned, may be NULL */
    char *tls_server_name; /* owned, may be NULL: use host */
    char *user;            /* owned, may be NULL */
    char *password;        /* owned, wiped on free */
    char *mech_filter;     /* owned, may be NULL */
    unsigned sasl_plain_link;
    unsigned sasl_tls_link;
    char *helo_name;       /* owned, may be NULL: gethostname() */
    logger log;
    unsigned keep_alive_ms; /* 0: QUIT after each message */
    unsigned discard_ehlo;  /* EHLO_* flags treated as not offered */
    hato_tls_version tls_min_version;
    char *cert_file;       /* owned, may be NULL */
    char *key_file;        /* owned, may be NULL: the key is in cert_file */
    tls_pin *pins;         /* owned array of npins (parsed at add time) */
    size_t npins;
    char pin_digest[8];    /* "sha256" unless set */
    bool pin_digest_set;   /* set explicitly: pins added later are checked now */
    char *state_dir;       /* owned, may be NULL */
    bool relay_mx;         /* look up MX records for host (relayhost without [ ]) */
    /* smtp_fallback_relay: each an owned copy with its own relay, TLS and
     * credentials, tried in order; their own fallbacks are never copied. */
    struct hato_options **fallbacks;
    size_t nfallbacks;
};

/* Fallback relays one options object may carry: Postfix lists rarely hold
 * more than two or three, and each may cost a connect timeout. */
#define OPTIONS_FALLBACK_MAX 8

/* A deep copy of src, or NULL when out of memory. */
hato_options *options_copy(const hato_options *src);
/* The port to connect to. */
uint16_t options_port(const hato_options *o);
/* The name to check the certificate against and send as SNI. */
const char *options_tls_name(const hato_options *o);

#endif
