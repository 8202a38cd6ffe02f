/*
 * tls_mbedtls.c - tls.h on mbedTLS, over memory buffers.
 *
 * The only file of hato that includes mbedTLS.  It builds against mbedTLS
 * 3.6 LTS (TLS 1.3 and 1.2) and Debian 12's 2.28 (TLS 1.2 only); the few
 * places where they differ are marked with MBEDTLS_VERSION_MAJOR and say why.
 *
 * Ownership: a tls_config owns the mbedTLS config, trust anchors, entropy and
 * DRBG; a tls_conn owns its SSL context and both ciphertext buffers and
 * borrows its config.  mbedTLS wipes keys in its *_free functions.
 *
 * Threads: a config may be shared by connections in several threads (its
 * mbedTLS config is read-only once built, and the DRBG has its own mutex
 * when mbedTLS is built with MBEDTLS_THREADING_C, as Debian's are); one
 * connection is used by one thread at a time.
 */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#endif

#include "util/buf.h"

/* 3.x hides struct members behind MBEDTLS_PRIVATE(); 2.28 has no such
 * macro and plain names. */
#ifndef MBEDTLS_PRIVATE
#define MBEDTLS_PRIVATE(member) member
#endif

/* Ciphertext fed but not yet taken by mbedTLS: the session feeds one socket
 * read at a time and reads plaintext before feeding more, so this only
 * stops a loop that feeds without reading. */
#define TLS_IN_LIMIT (1024 * 1024 + 64 * 1024)
/* Ciphertext not yet written: a 1 MiB write plus its records' overhead fits;
 * the session drains it between writes. */
#define TLS_OUT_LIMIT (1024 * 1024 + 64 * 1024)
/* Upper bound of what one record adds to its plaintext (header, explicit IV,
 * tag or MAC with CBC padding, TLS 1.3 content type): for the room check. */
#define TLS_RECORD_OVERHEAD 512
#define TLS_RECORD_PLAIN 16384 /* RFC 8446 5.1, RFC 5246 6.2.1 */

#define ERR_SIZE 1024
#define SKIP_HINT "or set smtp_tls_security_level = encrypt to skip verification (less safe)"

struct tls_config {
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    bool verify;
    char store[600]; /* the trust store searched, for messages */
};

struct tls_conn {
    tls_config *cfg; /* borrowed */
    mbedtls_ssl_context ssl;
    buf in;  /* ciphertext fed, not yet taken by mbedTLS */
    buf out; /* ciphertext to write */
    char *server_name;
    bool name_is_ip;
    unsigned char ip[16];
    size_t ip_len;
    bool done;   /* handshake complete */
    bool failed; /* a fatal error: err says which */
    /* What the verify callback saw, for the messages. */
    char names[512];  /* the leaf's DNS and IP names */
    char issuer[256]; /* issuer of the topmost certificate the server sent */
    mbedtls_x509_time valid_from, valid_to;
    bool saw_leaf;
    char err[ERR_SIZE];
    char summary[256];
};

/* ---- one-time initialisation ---------------------------------------- */

static pthread_once_t version_once = PTHREAD_ONCE_INIT;
static char version_text[32]; /* written once, under version_once */

static void version_init(void)
{
    char v[32] = "";
    /* The library actually loaded, which may be newer than the headers. */
    mbedtls_version_get_string_full(v);
    snprintf(version_text, sizeof version_text, "%s", v);
}

const char *tls_backend_version(void)
{
    pthread_once(&version_once, version_init);
    return version_text;
}

#if MBEDTLS_VERSION_MAJOR >= 3
/* 3.6: TLS 1.3 uses PSA crypto, which must be initialised once per process
 * before any TLS, X.509 or PK call. */
static pthread_once_t psa_once = PTHREAD_ONCE_INIT;
static psa_status_t psa_status = PSA_ERROR_BAD_STATE; /* written once */

static void psa_init(void)
{
    psa_status = psa_crypto_init();
}
#endif

/* ---- helpers ------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "X509 - Certificate verification failed (-0x2700)" */
static void describe_code(int code, char *dst, size_t len)
{
    char text[200] = "";
#if defined(MBEDTLS_ERROR_C)
    mbedtls_strerror(code, text, sizeof text);
#endif
    int abs = code < 0 ? -code : code;
    if (text[0] != '\0')
        snprintf(dst, len, "%s (-0x%04x)", text, (unsigned)abs);
    else
        snprintf(dst, len, "mbedTLS error -0x%04x", (unsigned)abs);
}

static size_t appendf(char *dst, size_t cap, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends to dst at offset at; returns the new length, never past cap - 1. */
static size_t appendf(char *dst, size_t cap, size_t at, const char *fmt, ...)
{
    if (at >= cap)
        return at;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst + at, cap - at, fmt, ap);
    va_end(ap);
    if (n < 0)
        return at;
    return (size_t)n >= cap - at ? cap - 1 : at + (size_t)n;
}

static bool parse_ip(const char *s, unsigned char ip[16], size_t *len)
{
    if (inet_pton(AF_INET, s, ip) == 1) {
        *len = 4;
        return true;
    }
    if (inet_pton(AF_INET6, s, ip) == 1) {
        *len = 16;
        return true;
    }
    return false;
}

/* ---- the configuration --------------------------------------------- */

/* Counts the certificates of a chain (an empty chain has version 0). */
static size_t chain_length(const mbedtls_x509_crt *crt)
{
    size_t n = 0;
    for (; crt != NULL && crt->version != 0; crt = crt->next)
        n++;
    return n;
}

/* fix: what a person does about a bad file, e.g. "check smtp_tls_CAfile" */
static bool load_ca_file(tls_config *cfg, const char *path, const char *fix, char *err,
                         size_t errlen)
{
    /* mbedTLS reports only "file I/O error": ask the system for the reason. */
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_err(err, errlen, "cannot read CA file %s: %s; %s", path, strerror(errno), fix);
        return false;
    }
    fclose(f);
    size_t before = chain_length(&cfg->ca);
    int rc = mbedtls_x509_crt_parse_file(&cfg->ca, path);
    /* rc > 0 counts certificates that did not parse beside ones that did:
     * a bundle with one odd entry still serves. */
    if (rc < 0 || chain_length(&cfg->ca) == before) {
        char why[256];
        describe_code(rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT, why, sizeof why);
        set_err(err, errlen, "CA file %s holds no certificate that can be used (%s); %s", path,
                why, fix);
        return false;
    }
    return true;
}

static bool load_ca_path(tls_config *cfg, const char *path, char *err, size_t errlen)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        set_err(err, errlen, "cannot read CA directory %s: %s; check smtp_tls_CApath", path,
                strerror(errno));
        return false;
    }
    closedir(d);
    size_t before = chain_length(&cfg->ca);
    int rc = mbedtls_x509_crt_parse_path(&cfg->ca, path);
    if (rc < 0 || chain_length(&cfg->ca) == before) {
        char why[256];
        describe_code(rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT, why, sizeof why);
        set_err(err, errlen, "CA directory %s holds no certificate that can be used (%s); "
                "check smtp_tls_CApath names a directory of PEM CA certificates", path, why);
        return false;
    }
    return true;
}

static bool load_anchors(tls_config *cfg, const tls_settings *s, char *err, size_t errlen)
{
    size_t at = 0;
    if (s->ca_file == NULL && s->ca_path == NULL) {
        if (!load_ca_file(cfg, TLS_SYSTEM_CA_FILE,
                          "install the ca-certificates package or set smtp_tls_CAfile",
                          err, errlen))
            return false;
        snprintf(cfg->store, sizeof cfg->store, "the system CA file %s", TLS_SYSTEM_CA_FILE);
        return true;
    }
    if (s->ca_file != NULL) {
        if (!load_ca_file(cfg, s->ca_file, "check smtp_tls_CAfile (a PEM file of CA certificates)",
                          err, errlen))
            return false;
        at = appendf(cfg->store, sizeof cfg->store, at, "CA file %s", s->ca_file);
    }
    if (s->ca_path != NULL) {
        if (!load_ca_path(cfg, s->ca_path, err, errlen))
            return false;
        appendf(cfg->store, sizeof cfg->store, at, "%sCA directory %s", at ? " and " : "",
                s->ca_path);
    }
    return true;
}

tls_config *tls_config_new(const tls_settings *s, char *err, size_t errlen)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    pthread_once(&psa_once, psa_init);
    if (psa_status != PSA_SUCCESS) {
        set_err(err, errlen, "cannot initialise PSA crypto for TLS (status %d)", (int)psa_status);
        return NULL;
    }
#endif
    tls_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&cfg->conf);
    mbedtls_entropy_init(&cfg->entropy);
    mbedtls_ctr_drbg_init(&cfg->drbg);
    mbedtls_x509_crt_init(&cfg->ca);
    cfg->verify = s->verify;

    static const unsigned char personal[] = "hato tls";
    char why[256];
    int rc = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy, personal,
                                   sizeof personal - 1);
    if (rc != 0) {
        describe_code(rc, why, sizeof why);
        set_err(err, errlen, "cannot seed the random generator for TLS: %s", why);
        goto fail;
    }
    if (s->verify && !load_anchors(cfg, s, err, errlen))
        goto fail;
    rc = mbedtls_ssl_config_defaults(&cfg->conf, MBEDTLS_SSL_IS_CLIENT,
                                     MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        describe_code(rc, why, sizeof why);
        set_err(err, errlen, "cannot set up the TLS configuration: %s", why);
        goto fail;
    }
    mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
    /* Without verification (levels may/encrypt) no anchors are loaded and
     * any certificate is accepted: the link is encrypted, not authenticated. */
    mbedtls_ssl_conf_authmode(&cfg->conf,
                              s->verify ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
    if (s->verify)
        mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
#if MBEDTLS_VERSION_MAJOR >= 3
    /* TLS 1.2 (RFC 8996 retired 1.0 and 1.1) up to 1.3 when compiled in. */
    mbedtls_ssl_conf_min_tls_version(&cfg->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    mbedtls_ssl_conf_max_tls_version(&cfg->conf, MBEDTLS_SSL_VERSION_TLS1_3);
#else
    mbedtls_ssl_conf_max_tls_version(&cfg->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
#else
    /* 2.28 names versions by record major/minor: 3.3 is TLS 1.2, its newest. */
    mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
#endif
    return cfg;

fail:
    tls_config_free(cfg);
    return NULL;
}

void tls_config_free(tls_config *cfg)
{
    if (cfg == NULL)
        return;
    mbedtls_ssl_config_free(&cfg->conf);
    mbedtls_x509_crt_free(&cfg->ca);
    mbedtls_ctr_drbg_free(&cfg->drbg);
    mbedtls_entropy_free(&cfg->entropy);
    free(cfg);
}

/* ---- memory BIO ---------------------------------------------------- */

static int bio_send(void *ctx, const unsigned char *data, size_t len)
{
    tls_conn *c = ctx;
    /* Past the limit the session has stopped draining: let mbedTLS keep
     * the record and retry (tls_conn_write checks room beforehand). */
    if (!buf_append(&c->out, data, len))
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *dst, size_t len)
{
    tls_conn *c = ctx;
    size_t n = buf_size(&c->in);
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    if (n > INT_MAX)
        n = INT_MAX;
    memcpy(dst, buf_head(&c->in), n);
    buf_consume(&c->in, n);
    return (int)n;
}

bool tls_conn_feed(tls_conn *c, const unsigned char *data, size_t len)
{
    return buf_append(&c->in, data, len);
}

bool tls_conn_has_input(const tls_conn *c)
{
    /* Ciphertext not taken yet, or a record mbedTLS read but has not
     * delivered: either way tls_conn_read() has work before more input. */
    return buf_size(&c->in) > 0 || mbedtls_ssl_check_pending(&c->ssl) != 0;
}

const unsigned char *tls_conn_output(tls_conn *c, size_t *len)
{
    *len = buf_size(&c->out);
    return *len ? buf_head(&c->out) : NULL;
}

void tls_conn_output_done(tls_conn *c, size_t n)
{
    buf_consume(&c->out, n);
}

/* ---- certificate details for messages ------------------------------- */

/* The Common Name of a distinguished name, or "" */
static void dn_cn(const mbedtls_x509_name *dn, char *dst, size_t len)
{
    dst[0] = '\0';
    for (; dn != NULL; dn = dn->next) {
        if (dn->oid.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &dn->oid) == 0) {
            size_t n = dn->val.len < len - 1 ? dn->val.len : len - 1;
            memcpy(dst, dn->val.p, n);
            dst[n] = '\0';
            for (size_t i = 0; i < n; i++)
                if (dst[i] < 0x20 || dst[i] == 0x7f)
                    dst[i] = '?'; /* a hostile name cannot forge a message line */
        }
    }
}

/* Lists the leaf's subjectAltName DNS names and IP addresses (the raw
 * GeneralNames that both versions keep: [2] dNSName, [7] iPAddress), or its
 * CN when it has none.  True when an iPAddress equals ip/ip_len. */
static bool leaf_names(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t ip_len,
                       char *dst, size_t cap)
{
    bool ip_match = false;
    size_t at = 0;
    dst[0] = '\0';
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s != NULL; s = s->next) {
        if (s->buf.p == NULL)
            continue;
        int type = s->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK;
        const char *sep = at ? ", " : "";
        if (type == MBEDTLS_X509_SAN_DNS_NAME) {
            int n = s->buf.len > 253 ? 253 : (int)s->buf.len; /* RFC 1035 limit */
            char name[254];
            memcpy(name, s->buf.p, (size_t)n);
            name[n] = '\0';
            for (int i = 0; i < n; i++)
                if (name[i] < 0x20 || name[i] == 0x7f)
                    name[i] = '?';
            at = appendf(dst, cap, at, "%s%s", sep, name);
        } else if (type == MBEDTLS_X509_SAN_IP_ADDRESS &&
                   (s->buf.len == 4 || s->buf.len == 16)) {
            char text[INET6_ADDRSTRLEN];
            int af = s->buf.len == 4 ? AF_INET : AF_INET6;
            if (inet_ntop(af, s->buf.p, text, sizeof text) != NULL)
                at = appendf(dst, cap, at, "%s%s", sep, text);
            if (ip_len == s->buf.len && memcmp(ip, s->buf.p, ip_len) == 0)
                ip_match = true;
        }
    }
    if (at == 0) {
        char cn[128];
        dn_cn(&crt->subject, cn, sizeof cn);
        if (cn[0] != '\0')
            snprintf(dst, cap, "%s", cn);
    }
    return ip_match;
}

/* Called for each certificate of the chain, the topmost first. */
static int verify_cb(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    tls_conn *c = ctx;
    if (c->issuer[0] == '\0' &&
        mbedtls_x509_dn_gets(c->issuer, sizeof c->issuer, &crt->issuer) < 0)
        snprintf(c->issuer, sizeof c->issuer, "(unreadable)");
    if (depth != 0)
        return 0;
    c->saw_leaf = true;
    c->valid_from = crt->valid_from;
    c->valid_to = crt->valid_to;
    bool ip_match = leaf_names(crt, c->ip, c->ip_len, c->names, sizeof c->names);
    if (c->name_is_ip) {
        /* An IP literal is matched here on both versions: 2.28 does not
         * compare iPAddress names at all, and the library is given no
         * host name for it (no SNI for an address, RFC 6066 section 3). */
        if (ip_match)
            *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
        else
            *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    }
    return 0;
}

/* ---- the connection ------------------------------------------------ */

tls_conn *tls_conn_new(tls_config *cfg, const char *server_name, char *err, size_t errlen)
{
    if (server_name == NULL || server_name[0] == '\0') {
        set_err(err, errlen, "no server name for TLS; it is needed for SNI and to check the "
                "certificate");
        return NULL;
    }
    tls_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    c->cfg = cfg;
    buf_init(&c->in, TLS_IN_LIMIT);
    buf_init(&c->out, TLS_OUT_LIMIT);
    mbedtls_ssl_init(&c->ssl);
    c->server_name = strdup(server_name);
    if (c->server_name == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    c->name_is_ip = parse_ip(server_name, c->ip, &c->ip_len);

    char why[256];
    int rc = mbedtls_ssl_setup(&c->ssl, &cfg->conf);
    if (rc != 0) {
        describe_code(rc, why, sizeof why);
        set_err(err, errlen, "cannot set up TLS for %s: %s", server_name, why);
        goto fail;
    }
    /* A DNS name goes to the library for SNI and the name check.  An
     * address is checked in verify_cb; NULL tells 3.6 that leaving the name
     * to the callback is deliberate (else it refuses to verify). */
    rc = mbedtls_ssl_set_hostname(&c->ssl, c->name_is_ip ? NULL : server_name);
    if (rc != 0) {
        describe_code(rc, why, sizeof why);
        set_err(err, errlen, "cannot use %s as the TLS server name: %s", server_name, why);
        goto fail;
    }
    if (cfg->verify)
        mbedtls_ssl_set_verify(&c->ssl, verify_cb, c);
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    return c;

fail:
    tls_conn_free(c);
    return NULL;
}

void tls_conn_free(tls_conn *c)
{
    if (c == NULL)
        return;
    mbedtls_ssl_free(&c->ssl);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->server_name);
    free(c);
}

static void fmt_time(const mbedtls_x509_time *t, char *dst, size_t len)
{
    snprintf(dst, len, "%04d-%02d-%02d %02d:%02d:%02d UTC", t->year, t->mon, t->day, t->hour,
             t->min, t->sec);
}

/* The verification failure as one line: each problem with its detail, then
 * what to change. */
static void verify_message(tls_conn *c, uint32_t flags)
{
    char *e = c->err;
    size_t at = 0;
    bool untrusted = false;
    const char *name = c->server_name;
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
        at = appendf(e, ERR_SIZE, at, "certificate of %s was issued by \"%s\", which is not in %s",
                     name, c->issuer[0] ? c->issuer : "(unknown)", c->cfg->store);
        untrusted = true;
    }
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED) {
        char when[40];
        fmt_time(&c->valid_to, when, sizeof when);
        at = appendf(e, ERR_SIZE, at, "%scertificate of %s expired on %s", at ? "; " : "", name,
                     when);
    }
    if (flags & MBEDTLS_X509_BADCERT_FUTURE) {
        char when[40];
        fmt_time(&c->valid_from, when, sizeof when);
        at = appendf(e, ERR_SIZE, at, "%scertificate of %s is not valid before %s", at ? "; " : "",
                     name, when);
    }
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
        at = appendf(e, ERR_SIZE, at, "%scertificate of %s is for %s, not %s", at ? "; " : "",
                     name, c->names[0] ? c->names : "no name", name);
    }
    uint32_t rest = flags & ~(uint32_t)(MBEDTLS_X509_BADCERT_NOT_TRUSTED |
                                        MBEDTLS_X509_BADCERT_EXPIRED |
                                        MBEDTLS_X509_BADCERT_FUTURE |
                                        MBEDTLS_X509_BADCERT_CN_MISMATCH);
    if (rest != 0) {
        /* The library's text for the rarer problems (key usage, weak
         * signature...), one line per flag: joined with "; ". */
        char info[512] = "";
        if (mbedtls_x509_crt_verify_info(info, sizeof info, "", rest) < 0)
            info[0] = '\0';
        size_t n = strlen(info);
        while (n > 0 && info[n - 1] == '\n')
            info[--n] = '\0';
        for (char *p = info; *p; p++)
            if (*p == '\n')
                *p = ';';
        at = appendf(e, ERR_SIZE, at, "%scertificate of %s: %s", at ? "; " : "", name,
                     info[0] ? info : "verification failed");
    }
    /* One remedy, for the first problem in this order, then the way around. */
    const char *fix;
    if (untrusted)
        fix = "add the issuing CA with smtp_tls_CAfile or smtp_tls_CApath";
    else if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        fix = "the server needs a renewed certificate (or this machine's clock is wrong)";
    else if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        fix = "check this machine's clock";
    else if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
        fix = "connect with one of the certificate's names";
    else
        fix = "the server needs a certificate that passes these checks";
    appendf(e, ERR_SIZE, at, "; %s, " SKIP_HINT, fix);
}

static const char *alert_name(int alert)
{
    /* RFC 8446 section 6 and RFC 5246 section 7.2 */
    switch (alert) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 100: return "no_renegotiation";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "unknown";
    }
}

/* Records a fatal error from mbedTLS; what tells the phase. */
static tls_status fail(tls_conn *c, int rc, const char *what)
{
    char why[256];
    describe_code(rc, why, sizeof why);
    c->failed = true;
    size_t at = appendf(c->err, ERR_SIZE, 0, "TLS %s with %s failed", what, c->server_name);
    if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
        /* No accessor for the alert in either version: the record just
         * read holds it (level, description).  3.6 marks in_msg private;
         * its layout is fixed within the LTS branch. */
        const unsigned char *msg = c->ssl.MBEDTLS_PRIVATE(in_msg);
        if (msg != NULL) {
            at = appendf(c->err, ERR_SIZE, at, ": the server sent alert %s (%d)",
                         alert_name(msg[1]), msg[1]);
            if (msg[1] == 70 || msg[1] == 40 || msg[1] == 71)
                appendf(c->err, ERR_SIZE, at, "; the server may not offer TLS 1.2 or later "
                        "with a cipher suite this client has (%s)", tls_backend_version());
            else if (msg[1] == 116 || msg[1] == 42 || msg[1] == 46)
                appendf(c->err, ERR_SIZE, at, "; the server may want a client certificate, "
                        "which hato does not send");
            return TLS_FAIL;
        }
    }
    appendf(c->err, ERR_SIZE, at, ": %s", why);
    return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? TLS_NOMEM : TLS_FAIL;
}

static void make_summary(tls_conn *c)
{
    /* mbedTLS spells suites "TLS1-3-AES-256-GCM-SHA384" and
     * "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384": give the IANA names. */
    const char *s = mbedtls_ssl_get_ciphersuite(&c->ssl);
    char suite[96];
    if (s == NULL)
        snprintf(suite, sizeof suite, "unknown");
    else if (strncmp(s, "TLS1-3-", 7) == 0)
        snprintf(suite, sizeof suite, "TLS_%s", s + 7);
    else
        snprintf(suite, sizeof suite, "%s", s);
    for (char *p = suite; *p; p++)
        if (*p == '-')
            *p = '_';
    char cn[128] = "";
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
    if (peer != NULL)
        dn_cn(&peer->subject, cn, sizeof cn);
    snprintf(c->summary, sizeof c->summary, "%s %s, certificate CN=%s %s",
             mbedtls_ssl_get_version(&c->ssl), suite, cn[0] ? cn : "(none)",
             c->cfg->verify ? "verified" : "not verified");
}

tls_status tls_conn_handshake(tls_conn *c)
{
    if (c->failed)
        return TLS_FAIL;
    if (c->done)
        return TLS_OK;
    int rc = mbedtls_ssl_handshake(&c->ssl);
    if (rc == 0) {
        c->done = true;
        make_summary(c);
        return TLS_OK;
    }
    /* WANT_WRITE only when the output is past its limit: the session drains
     * output before it waits for input, and the next call flushes. */
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return TLS_WANT_INPUT;
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        c->failed = true;
        uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
        if (flags == 0 || flags == (uint32_t)-1)
            flags = MBEDTLS_X509_BADCERT_OTHER;
        if (!c->saw_leaf && (flags & MBEDTLS_X509_BADCERT_MISSING))
            snprintf(c->err, ERR_SIZE, "server %s sent no certificate; " SKIP_HINT,
                     c->server_name);
        else
            verify_message(c, flags);
        return TLS_FAIL_VERIFY;
    }
    return fail(c, rc, "handshake");
}

tls_status tls_conn_write(tls_conn *c, const unsigned char *data, size_t len)
{
    if (c->failed)
        return TLS_FAIL;
    if (!c->done) {
        snprintf(c->err, ERR_SIZE, "TLS write to %s before the handshake completed",
                 c->server_name);
        return TLS_FAIL;
    }
    /* Check the room first: a record refused halfway would have to be
     * retried with the same buffer, which this call cannot promise. */
    size_t need = len + (len / TLS_RECORD_PLAIN + 1) * TLS_RECORD_OVERHEAD;
    if (len > TLS_OUT_LIMIT || need > TLS_OUT_LIMIT) {
        snprintf(c->err, ERR_SIZE, "TLS write of %zu bytes to %s is more than one write may "
                 "hold (%d bytes of plaintext); write it in pieces", len, c->server_name,
                 TLS_OUT_LIMIT - (TLS_OUT_LIMIT / TLS_RECORD_PLAIN + 1) * TLS_RECORD_OVERHEAD);
        return TLS_NOMEM;
    }
    if (need > TLS_OUT_LIMIT - buf_size(&c->out)) {
        snprintf(c->err, ERR_SIZE, "TLS write of %zu bytes to %s does not fit beside the %zu "
                 "bytes of output not yet sent; send the output first", len, c->server_name,
                 buf_size(&c->out));
        return TLS_NOMEM;
    }
    size_t done = 0;
    while (done < len) {
        int rc = mbedtls_ssl_write(&c->ssl, data + done, len - done);
        if (rc > 0) {
            done += (size_t)rc;
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
            /* mbedTLS holds a record the output did not take (out of
             * memory); the stream cannot continue without it. */
            c->failed = true;
            snprintf(c->err, ERR_SIZE, "TLS write to %s failed: out of memory for the output",
                     c->server_name);
            return TLS_NOMEM;
        }
        return fail(c, rc, "write");
    }
    return TLS_OK;
}

tls_status tls_conn_read(tls_conn *c, unsigned char *dst, size_t cap, size_t *got)
{
    *got = 0;
    if (c->failed)
        return TLS_FAIL;
    if (!c->done) {
        snprintf(c->err, ERR_SIZE, "TLS read from %s before the handshake completed",
                 c->server_name);
        return TLS_FAIL;
    }
    if (cap == 0)
        return TLS_OK;
    for (;;) {
        int rc = mbedtls_ssl_read(&c->ssl, dst, cap);
        if (rc > 0) {
            *got = (size_t)rc;
            return TLS_OK;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            return TLS_WANT_INPUT;
        /* rc 0 would mean the transport ended, which a memory BIO never
         * reports; count it as a close. */
        if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == 0)
            return TLS_CLOSED;
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        /* 3.6, TLS 1.3: a ticket after the handshake (Postfix sends one just
         * before the EHLO reply); hato does not resume sessions. */
        if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue;
#endif
        return fail(c, rc, "read");
    }
}

void tls_conn_close(tls_conn *c)
{
    if (c->done && !c->failed)
        (void)mbedtls_ssl_close_notify(&c->ssl);
}

const char *tls_conn_error(const tls_conn *c)
{
    return c->err[0] ? c->err : "no TLS error";
}

const char *tls_conn_summary(const tls_conn *c)
{
    return c->summary[0] ? c->summary : "TLS handshake not complete";
}
