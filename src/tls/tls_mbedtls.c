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
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#endif

#include "util/buf.h"
#include "util/secret.h"

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
/* A client key file: PEM of an RSA-8192 key is about 6.5 KB. */
#define KEY_FILE_MAX (64 * 1024)
/* Certificates described or remembered per chain: real chains have 2-4. */
#define CHAIN_MAX 8
/* Saved sessions: "HATOTLS1", binding digest, time saved, length, data.
 * Older than a week is never resumed (RFC 8446 4.6.1's ticket limit). */
#define SESSION_MAGIC "HATOTLS1"
#define SESSION_HEAD (8 + 32 + 8 + 4)
#define SESSION_MAX_AGE (7 * 24 * 3600)
#define SESSION_MAX (64 * 1024)
#define SKIP_HINT "or set smtp_tls_security_level = encrypt to skip verification (less safe)"

/* Room for the cipher suites kept from the library's list (3.6 keeps 60 of
 * its 170), plus the terminating 0. */
#define SUITES_MAX 160
/* Room for the key-exchange groups kept from the library's list (3.6 has
 * 13, 2.28 at most 13 curves), plus the terminator. */
#define GROUPS_MAX 32

struct tls_config {
    mbedtls_ssl_config conf;
    int suites[SUITES_MAX]; /* forward-secret suites, 0-terminated */
#if MBEDTLS_VERSION_MAJOR >= 3
    uint16_t groups[GROUPS_MAX]; /* IANA NamedGroups, cheapest first, 0-terminated */
#else
    mbedtls_ecp_group_id groups[GROUPS_MAX]; /* MBEDTLS_ECP_DP_NONE-terminated */
#endif
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    /* The files the anchors came from (owned), for the session binding. */
    struct tls_anchor_file *files;
    size_t nfiles, files_cap;
    bool verify;
    char store[600]; /* the trust store searched, for messages */
    int min_version; /* 12 or 13 */
    /* Client certificate (owned); has_own when loaded. */
    mbedtls_x509_crt own_crt;
    mbedtls_pk_context own_key;
    bool has_own;
    /* HATO_TLS_FINGERPRINT: pins (owned copy) and their digest. */
    tls_pin *pins;
    size_t npins;
    mbedtls_md_type_t pin_md;
    const char *pin_md_name; /* static */
    /* HATO_TLS_TOFU */
    bool tofu, tofu_known;
    unsigned char tofu_key[TLS_KEY_ID_LEN];
    char tofu_file[512];
    char tofu_peer[300];
    /* Digest of the settings a saved session must share (see tls.h). */
    unsigned char binding[32];
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
    bool self_signed; /* the leaf names itself as its issuer */
    /* Each certificate's verification flags, by SHA-256 of its DER. */
    struct {
        unsigned char id[32];
        uint32_t flags;
    } seen[CHAIN_MAX];
    size_t nseen;
    bool saw_cert_state; /* the handshake processed a server Certificate */
    bool resumed;
    bool tofu_new;       /* TOFU: no key recorded yet; the session records it */
    unsigned char *pending; /* owned, wiped: a saved session not yet taken */
    size_t pending_len;
    char version[16];
    char suite[96];
    char err[ERR_SIZE];
    char summary[320];
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

/* A CA file or one file of a CA directory: Debian's bundle is ~220 KB. */
#define CA_FILE_MAX (16 * 1024 * 1024)

/* The identity of a file the anchors came from, for the session binding:
 * any rewrite, replacement or touch changes the change time (which no
 * caller can set back), most also the size, inode or modification time. */
struct tls_anchor_file {
    uint64_t dev, ino, size;
    int64_t mtime_s, mtime_ns, ctime_s, ctime_ns;
};

static bool note_anchor_file(tls_config *cfg, const struct stat *sb)
{
    if (cfg->nfiles == cfg->files_cap) {
        size_t cap = cfg->files_cap ? 2 * cfg->files_cap : 8;
        struct tls_anchor_file *f = realloc(cfg->files, cap * sizeof *f);
        if (f == NULL)
            return false;
        cfg->files = f;
        cfg->files_cap = cap;
    }
    cfg->files[cfg->nfiles++] = (struct tls_anchor_file){
        .dev = (uint64_t)sb->st_dev, .ino = (uint64_t)sb->st_ino,
        .size = (uint64_t)sb->st_size,
        .mtime_s = (int64_t)sb->st_mtim.tv_sec, .mtime_ns = (int64_t)sb->st_mtim.tv_nsec,
        .ctime_s = (int64_t)sb->st_ctim.tv_sec, .ctime_ns = (int64_t)sb->st_ctim.tv_nsec};
    return true;
}

static bool anchor_file_seen(const tls_config *cfg, const struct stat *sb)
{
    for (size_t i = 0; i < cfg->nfiles; i++)
        if (cfg->files[i].dev == (uint64_t)sb->st_dev && cfg->files[i].ino == (uint64_t)sb->st_ino)
            return true;
    return false;
}

/* Base64 digit values; B64_SPACE for line breaks and blanks, B64_PAD for
 * '=', B64_BAD for everything else. */
#define B64_BAD (-1)
#define B64_SPACE (-2)
#define B64_PAD (-3)
static const signed char base64_value[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -2, -2, -1, -1, -2, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -2, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -3, -1, -1,
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* Decodes the base64 of one PEM block, skipping line breaks and blanks;
 * dst has room for len bytes.  Certificates are public, so this is a plain
 * table decoder: mbedTLS's own is constant-time, made for private keys, and
 * costs ~450 K instructions per certificate (64 M for Debian's bundle). */
static bool decode_pem_body(const char *src, size_t len, unsigned char *dst, size_t *out)
{
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t n = 0;
    const unsigned char *u = (const unsigned char *)src;
    for (size_t i = 0; i < len; i++) {
        /* Four digits at a time inside a line (64 to a PEM line). */
        while (bits == 0 && pad == 0 && len - i >= 4) {
            /* The table is signed on purpose: -1 marks a byte that is no digit. */
            // NOLINTNEXTLINE(bugprone-signed-char-misuse,cert-str34-c)
            int a = base64_value[u[i]], b = base64_value[u[i + 1]];
            // NOLINTNEXTLINE(bugprone-signed-char-misuse,cert-str34-c)
            int c = base64_value[u[i + 2]], d = base64_value[u[i + 3]];
            if ((a | b | c | d) < 0)
                break;
            uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
            dst[n] = (unsigned char)(w >> 16);
            dst[n + 1] = (unsigned char)(w >> 8);
            dst[n + 2] = (unsigned char)w;
            n += 3;
            i += 4;
        }
        if (i == len)
            break;
        int v = base64_value[u[i]]; // NOLINT(bugprone-signed-char-misuse,cert-str34-c)
        if (v >= 0 && pad == 0) {
            acc = (acc << 6 | (uint32_t)v) & 0xffffff;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                dst[n++] = (unsigned char)(acc >> bits);
            }
        } else if (v == B64_PAD && pad < 2) {
            pad++;
        } else if (v != B64_SPACE) {
            return false; /* headers (Proc-Type...), stray bytes, data after '=' */
        }
    }
    *out = n;
    return n > 0;
}

/* Is this DER certificate already an anchor?  /etc/ssl/certs holds each CA
 * twice (NAME.pem and the bundle), which a CA directory would load twice. */
static bool have_anchor(const tls_config *cfg, const unsigned char *der, size_t len)
{
    for (const mbedtls_x509_crt *c = &cfg->ca; c != NULL && c->version != 0; c = c->next)
        if (c->raw.len == len && memcmp(c->raw.p, der, len) == 0)
            return true;
    return false;
}

/* Adds the certificates of one file (text ending in a NUL) to the anchors:
 * each "CERTIFICATE" PEM block, or the whole file as DER, as
 * mbedtls_x509_crt_parse() does.  Blocks that do not parse are skipped (a
 * bundle with one odd entry still serves); *rc keeps the first error. */
static size_t add_anchors(tls_config *cfg, unsigned char *data, size_t len, int *rc)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    size_t added = 0;
    const char *text = (const char *)data;
    if (strstr(text, begin) == NULL) {
        if (have_anchor(cfg, data, len))
            return 1;
        int r = mbedtls_x509_crt_parse_der(&cfg->ca, data, len);
        if (r != 0 && *rc == 0)
            *rc = r;
        return r == 0;
    }
    /* len > 0: text holds the BEGIN line. */
    unsigned char *der = malloc(len); // NOLINT(clang-analyzer-optin.portability.UnixAPI)
    if (der == NULL) {
        *rc = MBEDTLS_ERR_X509_ALLOC_FAILED;
        return 0;
    }
    for (const char *p = strstr(text, begin); p != NULL; p = strstr(p, begin)) {
        p += sizeof begin - 1;
        const char *q = strstr(p, end);
        if (q == NULL)
            break;
        size_t n = 0;
        int r = MBEDTLS_ERR_X509_INVALID_FORMAT;
        if (decode_pem_body(p, (size_t)(q - p), der, &n))
            r = have_anchor(cfg, der, n) ? 0 : mbedtls_x509_crt_parse_der(&cfg->ca, der, n);
        if (r == 0)
            added++;
        else if (*rc == 0)
            *rc = r;
        if (r == MBEDTLS_ERR_X509_ALLOC_FAILED)
            break;
        p = q + sizeof end - 1;
    }
    free(der);
    return added;
}

/* Reads one file of certificates through the descriptor it stats.  False
 * with errno set when it cannot be read; *skipped when it is not a regular
 * file or was read already (a CA directory's hash links). */
static bool read_ca_file(tls_config *cfg, const char *path, unsigned char **data, size_t *len,
                         bool *skipped)
{
    *skipped = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return false;
    struct stat sb;
    unsigned char *p = NULL;
    size_t have = 0;
    int saved = 0;
    if (fstat(fd, &sb) != 0) {
        saved = errno;
    } else if (!S_ISREG(sb.st_mode) || anchor_file_seen(cfg, &sb)) {
        *skipped = true;
    } else if (sb.st_size > CA_FILE_MAX) {
        saved = EFBIG;
    } else if ((p = malloc((size_t)sb.st_size + 1)) == NULL || !note_anchor_file(cfg, &sb)) {
        saved = ENOMEM;
    } else {
        while (have < (size_t)sb.st_size) {
            ssize_t n = read(fd, p + have, (size_t)sb.st_size - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                saved = n < 0 ? errno : EIO; /* it shrank while read */
                break;
            }
            have += (size_t)n;
        }
    }
    close(fd);
    if (saved != 0 || *skipped || p == NULL) { /* p: for the analyser, which lets errno be 0 */
        free(p);
        errno = saved;
        return *skipped;
    }
    p[have] = '\0';
    *data = p;
    *len = have;
    return true;
}

/* fix: what a person does about a bad file, e.g. "check smtp_tls_CAfile" */
static bool load_ca_file(tls_config *cfg, const char *path, const char *fix, char *err,
                         size_t errlen)
{
    unsigned char *data = NULL;
    size_t len = 0;
    bool skipped;
    /* mbedTLS reports only "file I/O error": the system's reason is better. */
    if (!read_ca_file(cfg, path, &data, &len, &skipped) || skipped) {
        set_err(err, errlen, "cannot read CA file %s: %s; %s", path,
                skipped ? "not a regular file" : strerror(errno), fix);
        return false;
    }
    int rc = 0;
    size_t added = add_anchors(cfg, data, len, &rc);
    free(data);
    if (added == 0) {
        char why[256];
        describe_code(rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT, why, sizeof why);
        set_err(err, errlen, "CA file %s holds no certificate that can be used (%s); %s", path,
                why, fix);
        return false;
    }
    return true;
}

/* Every regular file of the directory, as mbedtls_x509_crt_parse_path()
 * does; files that do not parse are skipped. */
static bool load_ca_path(tls_config *cfg, const char *path, char *err, size_t errlen)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        set_err(err, errlen, "cannot read CA directory %s: %s; check smtp_tls_CApath", path,
                strerror(errno));
        return false;
    }
    struct stat dsb;
    int rc = 0;
    size_t added = 0;
    /* Adding or removing an entry changes the directory's own times. */
    if (fstat(dirfd(d), &dsb) != 0 || !note_anchor_file(cfg, &dsb))
        rc = MBEDTLS_ERR_X509_FILE_IO_ERROR;
    for (struct dirent *e; rc != MBEDTLS_ERR_X509_ALLOC_FAILED && (e = readdir(d)) != NULL;) {
        char name[PATH_MAX];
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' ||
                                    (e->d_name[1] == '.' && e->d_name[2] == '\0')))
            continue;
        if ((size_t)snprintf(name, sizeof name, "%s/%s", path, e->d_name) >= sizeof name)
            continue;
        unsigned char *data = NULL;
        size_t len = 0;
        bool skipped;
        if (!read_ca_file(cfg, name, &data, &len, &skipped) || skipped)
            continue;
        added += add_anchors(cfg, data, len, &rc);
        free(data);
    }
    closedir(d);
    if (added == 0) {
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

/* ---- digests ---------------------------------------------------------- */

/* One-shot digest; false when the library lacks the algorithm. */
static bool digest(mbedtls_md_type_t type, const unsigned char *data, size_t len,
                   unsigned char *out, size_t *outlen)
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(type);
    if (info == NULL || mbedtls_md(info, data, len, out) != 0)
        return false;
    *outlen = mbedtls_md_get_size(info);
    return true;
}

/* Compares without a timing signal of where the bytes differ: a pin check
 * must not let a server learn the pinned value byte by byte. */
static bool same_bytes(const unsigned char *a, const unsigned char *b, size_t n)
{
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

void tls_colon_hex(const unsigned char *d, size_t n, char *dst, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t at = 0;
    if (cap == 0)
        return;
    for (size_t i = 0; i < n && at + 3 <= cap; i++) {
        if (i > 0)
            dst[at++] = ':';
        dst[at++] = hex[d[i] >> 4];
        dst[at++] = hex[d[i] & 15];
    }
    if (at >= cap)
        at = cap - 1;
    dst[at] = '\0';
}

/* A running SHA-256 for the session binding. */
typedef struct binder {
    mbedtls_md_context_t md;
    bool ok;
} binder;

static void bind_start(binder *b)
{
    mbedtls_md_init(&b->md);
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    b->ok = info != NULL && mbedtls_md_setup(&b->md, info, 0) == 0 &&
            mbedtls_md_starts(&b->md) == 0;
}

/* Each field with its length, so that fields cannot run into each other. */
static void bind_add(binder *b, const void *data, size_t len)
{
    unsigned char n[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                          (unsigned char)(len >> 8), (unsigned char)len};
    if (b->ok)
        b->ok = mbedtls_md_update(&b->md, n, 4) == 0 &&
                (len == 0 || mbedtls_md_update(&b->md, data, len) == 0);
}

static void bind_str(binder *b, const char *s)
{
    bind_add(b, s ? s : "", s ? strlen(s) + 1 : 0); /* NULL differs from "" */
}

static bool bind_finish(binder *b, unsigned char out[32])
{
    bool ok = b->ok && mbedtls_md_finish(&b->md, out) == 0;
    mbedtls_md_free(&b->md);
    return ok;
}

/* ---- client certificate -------------------------------------------- */

/* Reads a private key file after checking, on the open descriptor, that
 * only its owner may read it.  *data (wiped and freed by the caller) ends
 * with a NUL, which mbedTLS wants for PEM. */
static bool read_key_file(const char *path, unsigned char **data, size_t *len, char *err,
                          size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        set_err(err, errlen, "cannot read client key file %s: %s; check smtp_tls_key_file",
                path, strerror(errno));
        return false;
    }
    struct stat sb;
    bool ok = false;
    unsigned char *p = NULL;
    size_t have = 0;
    if (fstat(fd, &sb) != 0) {
        set_err(err, errlen, "cannot stat client key file %s: %s", path, strerror(errno));
    } else if ((sb.st_mode & 077) != 0) {
        set_err(err, errlen, "client key file %s, named by smtp_tls_key_file, may be read by "
                "other users (mode %03o); run: chmod 600 %s", path,
                (unsigned)(sb.st_mode & 0777), path);
    } else if (!S_ISREG(sb.st_mode) || sb.st_size > KEY_FILE_MAX) {
        set_err(err, errlen, "client key file %s is not a regular file of at most %d bytes",
                path, KEY_FILE_MAX);
    } else if ((p = malloc((size_t)sb.st_size + 1)) == NULL) {
        set_err(err, errlen, "out of memory");
    } else {
        ok = true;
        while (have < (size_t)sb.st_size) {
            ssize_t n = read(fd, p + have, (size_t)sb.st_size - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                set_err(err, errlen, "cannot read client key file %s: %s", path,
                        n < 0 ? strerror(errno) : "it shrank while read");
                ok = false;
                break;
            }
            have += (size_t)n;
        }
    }
    close(fd);
    if (!ok) {
        if (p != NULL) {
            secret_wipe(p, have);
            free(p);
        }
        return false;
    }
    p[have] = '\0';
    *data = p;
    *len = have + 1;
    return true;
}

static bool load_own(tls_config *cfg, const char *cert, const char *key, char *err,
                     size_t errlen)
{
    char why[256];
    FILE *f = fopen(cert, "r");
    if (f == NULL) {
        set_err(err, errlen, "cannot read client certificate file %s: %s; check "
                "smtp_tls_cert_file", cert, strerror(errno));
        return false;
    }
    (void)fclose(f); /* opened only to name an unreadable file */
    int rc = mbedtls_x509_crt_parse_file(&cfg->own_crt, cert);
    if (rc != 0) {
        describe_code(rc, why, sizeof why);
        set_err(err, errlen, "client certificate file %s holds no usable PEM certificate (%s); "
                "check smtp_tls_cert_file", cert, why);
        return false;
    }
    unsigned char *pem = NULL;
    size_t len = 0;
    if (!read_key_file(key, &pem, &len, err, errlen))
        return false;
#if MBEDTLS_VERSION_MAJOR >= 3
    rc = mbedtls_pk_parse_key(&cfg->own_key, pem, len, NULL, 0, mbedtls_ctr_drbg_random,
                              &cfg->drbg);
#else
    rc = mbedtls_pk_parse_key(&cfg->own_key, pem, len, NULL, 0);
#endif
    secret_wipe(pem, len);
    free(pem);
    if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || rc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
        set_err(err, errlen, "client key file %s is encrypted; hato needs it unencrypted "
                "(protected by mode 600): openssl pkey -in %s -out NEW", key, key);
        return false;
    }
    if (rc != 0) {
        describe_code(rc, why, sizeof why);
        set_err(err, errlen, "client key file %s holds no usable private key (%s); check "
                "smtp_tls_key_file", key, why);
        return false;
    }
#if MBEDTLS_VERSION_MAJOR >= 3
    rc = mbedtls_pk_check_pair(&cfg->own_crt.pk, &cfg->own_key, mbedtls_ctr_drbg_random,
                               &cfg->drbg);
#else
    rc = mbedtls_pk_check_pair(&cfg->own_crt.pk, &cfg->own_key);
#endif
    if (rc != 0) {
        set_err(err, errlen, "client key file %s does not hold the key of certificate %s; "
                "check smtp_tls_cert_file and smtp_tls_key_file", key, cert);
        return false;
    }
    rc = mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->own_crt, &cfg->own_key);
    if (rc != 0) {
        describe_code(rc, why, sizeof why);
        set_err(err, errlen, "cannot use client certificate %s: %s", cert, why);
        return false;
    }
    cfg->has_own = true;
    return true;
}

/* ---- pins ------------------------------------------------------------- */

static bool pin_digest_type(const char *name, mbedtls_md_type_t *type, const char **canon)
{
    static const struct {
        const char *name;
        mbedtls_md_type_t type;
    } known[] = {
        {"sha256", MBEDTLS_MD_SHA256},
        {"sha384", MBEDTLS_MD_SHA384},
        {"sha512", MBEDTLS_MD_SHA512},
        {"sha1", MBEDTLS_MD_SHA1},
    };
    if (name == NULL)
        name = "sha256";
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i].name) == 0) {
            *type = known[i].type;
            *canon = known[i].name;
            return true;
        }
    return false;
}

static bool setup_pins(tls_config *cfg, const tls_settings *s, char *err, size_t errlen)
{
    if (!pin_digest_type(s->pin_digest, &cfg->pin_md, &cfg->pin_md_name) ||
        mbedtls_md_info_from_type(cfg->pin_md) == NULL) {
        set_err(err, errlen, "smtp_tls_fingerprint_digest = %s is not available; use sha256, "
                "sha384, sha512 or sha1", s->pin_digest);
        return false;
    }
    size_t want = mbedtls_md_get_size(mbedtls_md_info_from_type(cfg->pin_md));
    for (size_t i = 0; i < s->npins; i++)
        if (s->pins[i].len != want) {
            set_err(err, errlen, "fingerprint %zu of smtp_tls_fingerprint_%s_match has %zu "
                    "bytes, but a %s digest has %zu; check smtp_tls_fingerprint_digest",
                    i + 1, s->pins[i].pkey ? "pkey" : "cert", s->pins[i].len,
                    cfg->pin_md_name, want);
            return false;
        }
    cfg->pins = malloc(s->npins * sizeof *cfg->pins);
    if (cfg->pins == NULL) {
        set_err(err, errlen, "out of memory");
        return false;
    }
    memcpy(cfg->pins, s->pins, s->npins * sizeof *cfg->pins);
    cfg->npins = s->npins;
    return true;
}

/* The settings a resumed session must have been made under. */
static bool make_binding(tls_config *cfg, const tls_settings *s)
{
    binder b;
    bind_start(&b);
    bind_str(&b, "hato tls session binding 1");
    bind_str(&b, tls_backend_version()); /* also catches format changes */
    int level = s->level;
    bind_add(&b, &level, sizeof level);
    unsigned char flags[4] = {s->verify, s->tofu, (unsigned char)cfg->min_version,
                              cfg->has_own};
    bind_add(&b, flags, sizeof flags);
    if (s->verify) {
        bind_str(&b, s->ca_file);
        bind_str(&b, s->ca_path);
        /* The anchors' files as they were read: a CA removed from (or added
         * to) a file or directory stops resumption.  Their identity, not
         * their bytes: SHA-256 over Debian's bundle costs ~10 M
         * instructions, more than a third of a whole send. */
        for (size_t i = 0; i < cfg->nfiles; i++) {
            const struct tls_anchor_file *f = &cfg->files[i];
            uint64_t v[7] = {f->dev, f->ino, f->size, (uint64_t)f->mtime_s,
                             (uint64_t)f->mtime_ns, (uint64_t)f->ctime_s, (uint64_t)f->ctime_ns};
            bind_add(&b, v, sizeof v);
        }
        size_t n = chain_length(&cfg->ca);
        bind_add(&b, &n, sizeof n);
    }
    bind_str(&b, cfg->pin_md_name);
    for (size_t i = 0; i < cfg->npins; i++) {
        bind_add(&b, &cfg->pins[i].pkey, 1);
        bind_add(&b, cfg->pins[i].digest, cfg->pins[i].len);
    }
    if (cfg->has_own)
        bind_add(&b, cfg->own_crt.raw.p, cfg->own_crt.raw.len);
    return bind_finish(&b, cfg->binding);
}

/* The cipher suites offered: the library's own list (strongest first) less
 * what a mail relay should not use in 2026: key exchanges without forward
 * secrecy (static RSA, PSK), and NULL, RC4, 3DES, DES and export ciphers.
 * CBC suites with ECDHE stay, for older provider servers.  Filtering the
 * names keeps this the same on 2.28 and 3.6; TLS 1.3 suites all pass. */
static void choose_suites(tls_config *cfg)
{
    static const char *const weak[] = {"NULL", "RC4", "3DES", "-DES-", "EXPORT", "PSK"};
    size_t n = 0;
    for (const int *id = mbedtls_ssl_list_ciphersuites(); *id != 0 && n + 1 < SUITES_MAX; id++) {
        const char *name = mbedtls_ssl_get_ciphersuite_name(*id);
        bool keep = strncmp(name, "TLS1-3-", 7) == 0 || strncmp(name, "TLS-ECDHE-", 10) == 0 ||
                    strncmp(name, "TLS-DHE-", 8) == 0;
        for (size_t w = 0; keep && w < sizeof weak / sizeof weak[0]; w++)
            keep = strstr(name, weak[w]) == NULL;
        if (keep)
            cfg->suites[n++] = *id;
    }
    cfg->suites[n] = 0;
    mbedtls_ssl_conf_ciphersuites(&cfg->conf, cfg->suites);
}

/* The key-exchange groups offered: the library's own list, with the
 * cheapest ones moved to the front.  The client computes one key share, for
 * the first group (3.6, TLS 1.3), and TLS 1.2 servers mostly take the
 * client's order, so the first entry decides most of a handshake's cost.
 * Measured with callgrind, key generation + shared secret, on the Debian
 * builds' generic bignum code: 3.6.6 secp256r1 11.4 M instructions (its
 * generator has a precomputed table), x25519 15.7 M; 2.28.3 x25519 15.6 M,
 * secp256r1 16.4 M, and its own list starts with secp521r1, 48.0 M.
 * Nothing is added or removed, so what a server can agree on is unchanged;
 * both front groups give ~128-bit security. */
static void choose_groups(tls_config *cfg)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    static const uint16_t cheap[] = {MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
                                     MBEDTLS_SSL_IANA_TLS_GROUP_X25519};
    const uint16_t *lib = cfg->conf.MBEDTLS_PRIVATE(group_list);
    const uint16_t end = 0;
#else
    static const mbedtls_ecp_group_id cheap[] = {MBEDTLS_ECP_DP_CURVE25519,
                                                 MBEDTLS_ECP_DP_SECP256R1};
    const mbedtls_ecp_group_id *lib = cfg->conf.curve_list;
    const mbedtls_ecp_group_id end = MBEDTLS_ECP_DP_NONE;
#endif
    size_t nlib = 0, n = 0;
    if (lib == NULL)
        return;
    while (lib[nlib] != end)
        nlib++;
    if (nlib + 1 > GROUPS_MAX)
        return; /* a library with more groups than expected: keep its order */
    for (size_t c = 0; c < sizeof cheap / sizeof cheap[0]; c++)
        for (size_t i = 0; i < nlib; i++)
            if (lib[i] == cheap[c]) {
                cfg->groups[n++] = cheap[c];
                break;
            }
    for (size_t i = 0; i < nlib; i++) {
        bool moved = false;
        for (size_t c = 0; c < sizeof cheap / sizeof cheap[0]; c++)
            moved = moved || lib[i] == cheap[c];
        if (!moved)
            cfg->groups[n++] = lib[i];
    }
    cfg->groups[n] = end;
#if MBEDTLS_VERSION_MAJOR >= 3
    mbedtls_ssl_conf_groups(&cfg->conf, cfg->groups);
#else
    mbedtls_ssl_conf_curves(&cfg->conf, cfg->groups);
#endif
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
    int min_version = s->min_version == 0 ? 12 : s->min_version;
    if (min_version != 12 && min_version != 13) {
        set_err(err, errlen, "unknown minimum TLS version %d", s->min_version);
        return NULL;
    }
#if !(MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3))
    if (min_version == 13) {
        set_err(err, errlen, "smtp_tls_mandatory_protocols asks for TLS 1.3 at least, but "
                "hato was built with %s, which has no TLS 1.3; allow TLSv1.2 or build hato "
                "with mbedTLS 3.6", tls_backend_version());
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
    mbedtls_x509_crt_init(&cfg->own_crt);
    mbedtls_pk_init(&cfg->own_key);
    cfg->verify = s->verify;
    cfg->min_version = min_version;
    cfg->tofu = s->tofu;
    cfg->tofu_known = s->tofu && s->tofu_known;
    if (cfg->tofu_known)
        memcpy(cfg->tofu_key, s->tofu_key, TLS_KEY_ID_LEN);
    snprintf(cfg->tofu_file, sizeof cfg->tofu_file, "%s", s->tofu_file ? s->tofu_file : "");
    snprintf(cfg->tofu_peer, sizeof cfg->tofu_peer, "%s", s->tofu_peer ? s->tofu_peer : "");

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
    if (s->npins > 0 && !setup_pins(cfg, s, err, errlen))
        goto fail;
    rc = mbedtls_ssl_config_defaults(&cfg->conf, MBEDTLS_SSL_IS_CLIENT,
                                     MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        describe_code(rc, why, sizeof why);
        set_err(err, errlen, "cannot set up the TLS configuration: %s", why);
        goto fail;
    }
    mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
    choose_suites(cfg);
    choose_groups(cfg);
    /* Without verification (levels may/encrypt) no anchors are loaded and
     * any certificate is accepted: the link is encrypted, not authenticated.
     * Pins and TOFU are checked by this file after the handshake, before
     * tls_conn_handshake() reports success. */
    mbedtls_ssl_conf_authmode(&cfg->conf,
                              s->verify ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
    if (s->verify)
        mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
    if (s->cert_file != NULL &&
        !load_own(cfg, s->cert_file, s->key_file ? s->key_file : s->cert_file, err, errlen))
        goto fail;
#if MBEDTLS_VERSION_MAJOR >= 3
    /* TLS 1.2 (RFC 8996 retired 1.0 and 1.1) or 1.3 at least, up to 1.3
     * when compiled in. */
    mbedtls_ssl_conf_min_tls_version(&cfg->conf, min_version == 13 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                                    : MBEDTLS_SSL_VERSION_TLS1_2);
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
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    /* TLS 1.2 tickets come inside the handshake. */
    mbedtls_ssl_conf_session_tickets(&cfg->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
#if defined(MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED)
    /* 3.6.1 and later drop TLS 1.3 tickets unless asked to report them;
     * tls_conn_read() keeps each one for tls_conn_take_session(). */
    mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
        &cfg->conf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
#endif
#endif
    if (!make_binding(cfg, s)) {
        set_err(err, errlen, "cannot compute SHA-256 for the TLS session cache");
        goto fail;
    }
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
    free(cfg->files);
    mbedtls_x509_crt_free(&cfg->own_crt);
    mbedtls_pk_free(&cfg->own_key);
    free(cfg->pins);
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

void tls_conn_trim(tls_conn *c)
{
    if (buf_size(&c->out) == 0)
        buf_free(&c->out);
    if (buf_size(&c->in) == 0)
        buf_free(&c->in);
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
    if (c->nseen < CHAIN_MAX) {
        size_t n;
        if (digest(MBEDTLS_MD_SHA256, crt->raw.p, crt->raw.len, c->seen[c->nseen].id, &n)) {
            c->seen[c->nseen].flags = *flags;
            c->nseen++;
        }
    }
    if (c->issuer[0] == '\0' &&
        mbedtls_x509_dn_gets(c->issuer, sizeof c->issuer, &crt->issuer) < 0)
        snprintf(c->issuer, sizeof c->issuer, "(unreadable)");
    if (depth != 0)
        return 0;
    c->saw_leaf = true;
    c->self_signed = crt->issuer_raw.len == crt->subject_raw.len &&
                     memcmp(crt->issuer_raw.p, crt->subject_raw.p, crt->issuer_raw.len) == 0;
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
        if (c->nseen > 0)
            c->seen[c->nseen - 1].flags = *flags;
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
    tls_session_free(c->pending, c->pending_len);
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
        if (c->self_signed)
            at = appendf(e, ERR_SIZE, at, "certificate of %s is self-signed (\"%s\") and not in %s",
                         name, c->issuer[0] ? c->issuer : "(unknown)", c->cfg->store);
        else
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
    if (untrusted && c->self_signed)
        fix = "trust this one certificate by pinning it (smtp_tls_security_level = fingerprint "
              "with smtp_tls_fingerprint_cert_match; hato --probe prints its digest) or by "
              "naming it in smtp_tls_CAfile";
    else if (untrusted)
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
            if ((msg[1] == 70 || msg[1] == 40 || msg[1] == 71) && c->cfg->min_version == 13)
                appendf(c->err, ERR_SIZE, at, "; the server may not offer TLS 1.3, which "
                        "smtp_tls_mandatory_protocols requires (>=TLSv1.2 allows TLS 1.2)");
            else if (msg[1] == 70 || msg[1] == 40 || msg[1] == 71)
                /* OpenSSL answers a missing client certificate in TLS 1.2
                 * with handshake_failure too. */
                appendf(c->err, ERR_SIZE, at, "; the server may not offer TLS 1.2 or later "
                        "with a cipher suite this client has (%s)%s", tls_backend_version(),
                        msg[1] == 40 && !c->cfg->has_own
                            ? ", or may want a client certificate (smtp_tls_cert_file)" : "");
            else if ((msg[1] == 116 || msg[1] == 42 || msg[1] == 46) && !c->cfg->has_own)
                appendf(c->err, ERR_SIZE, at, "; the server may want a client certificate: "
                        "set smtp_tls_cert_file and smtp_tls_key_file");
            else if (msg[1] == 116 || msg[1] == 42 || msg[1] == 46 || msg[1] == 48)
                appendf(c->err, ERR_SIZE, at, "; the server did not accept the client "
                        "certificate (smtp_tls_cert_file)");
            return TLS_FAIL;
        }
    }
    at = appendf(c->err, ERR_SIZE, at, ": %s", why);
    /* The same code in both versions (renamed in 3.x): the server chose a
     * protocol version outside [minimum, newest]. */
    if (rc == -0x6E80)
        appendf(c->err, ERR_SIZE, at, "; the server offers only a protocol version older than "
                "TLS %s, the oldest hato accepts (smtp_tls_mandatory_protocols); the provider "
                "must enable TLS 1.2 or later", c->cfg->min_version == 13 ? "1.3" : "1.2");
    return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? TLS_NOMEM : TLS_FAIL;
}

static void make_summary(tls_conn *c)
{
    /* mbedTLS spells suites "TLS1-3-AES-256-GCM-SHA384" and
     * "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384": give the IANA names. */
    const char *s = mbedtls_ssl_get_ciphersuite(&c->ssl);
    if (s == NULL)
        snprintf(c->suite, sizeof c->suite, "unknown");
    else if (strncmp(s, "TLS1-3-", 7) == 0)
        snprintf(c->suite, sizeof c->suite, "TLS_%s", s + 7);
    else
        snprintf(c->suite, sizeof c->suite, "%s", s);
    for (char *p = c->suite; *p; p++)
        if (*p == '-')
            *p = '_';
    snprintf(c->version, sizeof c->version, "%s", mbedtls_ssl_get_version(&c->ssl));
    char cn[128] = "";
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
    if (peer != NULL)
        dn_cn(&peer->subject, cn, sizeof cn);
    const char *check = c->cfg->verify  ? "verified"
                        : c->cfg->npins ? "matches a pinned fingerprint"
                        : c->tofu_new   ? "key seen for the first time (trust on first use)"
                        : c->cfg->tofu  ? "key matched the one recorded (trust on first use)"
                                        : "not verified";
    if (peer == NULL && c->resumed)
        /* 3.6 keeps no certificate in a TLS 1.3 ticket: the checks stand
         * from the handshake that made the session (see the binding). */
        snprintf(c->summary, sizeof c->summary, "%s %s, session resumed; the handshake that "
                 "made it: certificate %s", c->version, c->suite, check);
    else
        snprintf(c->summary, sizeof c->summary, "%s %s, certificate CN=%s %s%s", c->version,
                 c->suite, cn[0] ? cn : "(none)", check,
                 c->resumed ? ", session resumed" : ", new session");
}

/* Is the handshake over?  3.6 has a call for it; 2.28 has the state. */
static bool handshake_over(mbedtls_ssl_context *ssl)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    return mbedtls_ssl_is_handshake_over(ssl) != 0;
#else
    return ssl->state == MBEDTLS_SSL_HANDSHAKE_OVER;
#endif
}

/* Rejects the connection for a failed pin or TOFU check: the alert tells
 * the server, and nothing of SMTP has gone over the link yet. */
static tls_status reject(tls_conn *c)
{
    c->failed = true;
    (void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                         MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
    return TLS_FAIL_VERIFY;
}

static tls_status check_pins(tls_conn *c, const mbedtls_x509_crt *leaf)
{
    const tls_config *cfg = c->cfg;
    unsigned char dc[TLS_PIN_MAX], dk[TLS_PIN_MAX];
    size_t nc = 0, nk = 0;
    if (!digest(cfg->pin_md, leaf->raw.p, leaf->raw.len, dc, &nc) ||
        !digest(cfg->pin_md, leaf->pk_raw.p, leaf->pk_raw.len, dk, &nk)) {
        snprintf(c->err, ERR_SIZE, "cannot compute the %s fingerprint of %s's certificate",
                 cfg->pin_md_name, c->server_name);
        return reject(c);
    }
    bool match = false;
    for (size_t i = 0; i < cfg->npins; i++) {
        const tls_pin *p = &cfg->pins[i];
        const unsigned char *d = p->pkey ? dk : dc;
        size_t n = p->pkey ? nk : nc;
        /* Every pin is compared, so the time does not tell which matched. */
        if (p->len == n && same_bytes(p->digest, d, n))
            match = true;
    }
    if (match)
        return TLS_OK;
    char hc[3 * TLS_PIN_MAX], hk[3 * TLS_PIN_MAX];
    tls_colon_hex(dc, nc, hc, sizeof hc);
    tls_colon_hex(dk, nk, hk, sizeof hk);
    snprintf(c->err, ERR_SIZE, "certificate of %s matches no pinned fingerprint; its %s "
             "fingerprints are cert %s and pkey %s; if this is the right server, put one in "
             "smtp_tls_fingerprint_cert_match or smtp_tls_fingerprint_pkey_match",
             c->server_name, cfg->pin_md_name, hc, hk);
    return reject(c);
}

static tls_status check_tofu(tls_conn *c, const mbedtls_x509_crt *leaf)
{
    const tls_config *cfg = c->cfg;
    unsigned char id[TLS_KEY_ID_LEN];
    size_t n;
    if (!digest(MBEDTLS_MD_SHA256, leaf->pk_raw.p, leaf->pk_raw.len, id, &n)) {
        snprintf(c->err, ERR_SIZE, "cannot compute the SHA-256 of %s's key", c->server_name);
        return reject(c);
    }
    if (!cfg->tofu_known) {
        c->tofu_new = true; /* the session records it once the link is up */
        return TLS_OK;
    }
    if (same_bytes(id, cfg->tofu_key, TLS_KEY_ID_LEN))
        return TLS_OK;
    char was[3 * TLS_KEY_ID_LEN], now[3 * TLS_KEY_ID_LEN];
    tls_colon_hex(cfg->tofu_key, TLS_KEY_ID_LEN, was, sizeof was);
    tls_colon_hex(id, TLS_KEY_ID_LEN, now, sizeof now);
    appendf(c->err, ERR_SIZE, 0, "the key of %s changed since first contact (trust on first "
             "use): recorded pkey sha256 %s, now %s; if the server's key was replaced on "
             "purpose, accept the new one with: hato --tofu-accept %s (or: rm %s)",
             c->server_name, was, now, cfg->tofu_peer[0] ? cfg->tofu_peer : c->server_name,
             cfg->tofu_file[0] ? cfg->tofu_file : "the record in the state directory");
    return reject(c);
}

static void keep_session(tls_conn *c);

/* After the handshake: the checks that are not the library's. */
static tls_status after_handshake(tls_conn *c)
{
    c->resumed = !c->saw_cert_state;
    const mbedtls_x509_crt *leaf = mbedtls_ssl_get_peer_cert(&c->ssl);
    tls_status st = TLS_OK;
    if (c->cfg->npins > 0 || c->cfg->tofu) {
        if (leaf == NULL && !c->resumed) {
            snprintf(c->err, ERR_SIZE, "server %s sent no certificate to check against "
                     "the %s", c->server_name, c->cfg->tofu ? "recorded key" : "pins");
            return reject(c);
        }
        /* A resumed session was offered only under these same pins or this
         * same recorded key (the binding); its certificate, when kept, is
         * checked again all the same. */
        if (leaf != NULL)
            st = c->cfg->npins > 0 ? check_pins(c, leaf) : check_tofu(c, leaf);
        if (st != TLS_OK)
            return st;
    }
    c->done = true;
    make_summary(c);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3) && MBEDTLS_VERSION_MAJOR >= 3
    /* TLS 1.3 sessions come as tickets after the handshake. */
    if (mbedtls_ssl_get_version_number(&c->ssl) != MBEDTLS_SSL_VERSION_TLS1_3)
        keep_session(c);
#else
    keep_session(c);
#endif
    return TLS_OK;
}

tls_status tls_conn_handshake(tls_conn *c)
{
    if (c->failed)
        return TLS_FAIL;
    if (c->done)
        return TLS_OK;
    /* Step by step, to see whether the server's Certificate was processed:
     * neither version says otherwise whether a session was resumed. */
    int rc = 0;
    while (!handshake_over(&c->ssl)) {
        if (c->ssl.MBEDTLS_PRIVATE(state) == MBEDTLS_SSL_SERVER_CERTIFICATE)
            c->saw_cert_state = true;
        rc = mbedtls_ssl_handshake_step(&c->ssl);
        if (rc != 0)
            break;
    }
    if (rc == 0)
        return after_handshake(c);
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
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        /* A ticket read on the way (3.6, TLS 1.3): keep it, write on. */
        if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            keep_session(c);
            continue;
        }
#endif
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
    for (int again = 0;;) {
        int rc = mbedtls_ssl_read(&c->ssl, dst, cap);
        if (rc > 0) {
            *got = (size_t)rc;
            return TLS_OK;
        }
        /* 3.6 answers a TLS 1.3 NewSessionTicket first with WANT_READ,
         * keeping the message to process on the next call. */
        if (rc == MBEDTLS_ERR_SSL_WANT_READ && mbedtls_ssl_check_pending(&c->ssl) != 0 &&
            ++again < 16)
            continue;
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            return TLS_WANT_INPUT;
        /* rc 0 would mean the transport ended, which a memory BIO never
         * reports; count it as a close. */
        if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == 0)
            return TLS_CLOSED;
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        /* 3.6, TLS 1.3: a ticket after the handshake (Postfix sends one just
         * before the EHLO reply): kept for the next connection. */
        if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            keep_session(c);
            continue;
        }
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

/* ---- after the handshake: facts for logs and the probe ---------------- */

bool tls_conn_resumed(const tls_conn *c)
{
    return c->done && c->resumed;
}

bool tls_conn_tofu_first(const tls_conn *c)
{
    return c->done && c->tofu_new;
}

const char *tls_conn_version(const tls_conn *c)
{
    return c->done ? c->version : "";
}

const char *tls_conn_cipher(const tls_conn *c)
{
    return c->done ? c->suite : "";
}

bool tls_conn_peer_key_id(const tls_conn *c, unsigned char out[TLS_KEY_ID_LEN])
{
    const mbedtls_x509_crt *leaf = mbedtls_ssl_get_peer_cert(&c->ssl);
    size_t n;
    return leaf != NULL && digest(MBEDTLS_MD_SHA256, leaf->pk_raw.p, leaf->pk_raw.len, out, &n);
}

/* The verification result of one certificate, as text. */
static void check_text(const tls_conn *c, const mbedtls_x509_crt *crt, bool leaf, char *dst,
                       size_t cap)
{
    if (c->cfg->npins > 0 || c->cfg->tofu) {
        snprintf(dst, cap, "%s", !leaf ? "not checked (the leaf is pinned)"
                                 : c->cfg->npins ? "matches a pinned fingerprint"
                                 : c->tofu_new ? "key recorded now (trust on first use)"
                                               : "key matches the recorded one (trust on first use)");
        return;
    }
    if (!c->cfg->verify) {
        snprintf(dst, cap, "not verified (smtp_tls_security_level = may or encrypt)");
        return;
    }
    unsigned char id[32];
    size_t n;
    if (!digest(MBEDTLS_MD_SHA256, crt->raw.p, crt->raw.len, id, &n))
        n = 0;
    for (size_t i = 0; n == 32 && i < c->nseen; i++) {
        if (memcmp(c->seen[i].id, id, 32) != 0)
            continue;
        if (c->seen[i].flags == 0) {
            snprintf(dst, cap, "verified");
            return;
        }
        char info[400] = "";
        if (mbedtls_x509_crt_verify_info(info, sizeof info, "", c->seen[i].flags) < 0)
            info[0] = '\0';
        size_t len = strlen(info);
        while (len > 0 && info[len - 1] == '\n')
            info[--len] = '\0';
        for (char *p = info; *p; p++)
            if (*p == '\n')
                *p = ';';
        snprintf(dst, cap, "does not verify: %s", info);
        return;
    }
    snprintf(dst, cap, "%s", leaf ? "verified" : "not used to verify (outside the chain built)");
}

void tls_conn_describe_chain(const tls_conn *c, void (*line)(void *user, const char *text),
                             void *user)
{
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&c->ssl);
    if (crt == NULL) {
        line(user, c->resumed ? "session resumed: the server sent no certificate this time"
                              : "the server sent no certificate");
        return;
    }
    int i = 0;
    for (; crt != NULL && crt->version != 0 && i < CHAIN_MAX; crt = crt->next, i++) {
        char subject[256], issuer[256], from[40], to[40], text[1400];
        char hc[3 * 32], hk[3 * 32], result[480];
        unsigned char d[32];
        size_t n;
        if (mbedtls_x509_dn_gets(subject, sizeof subject, &crt->subject) < 0)
            snprintf(subject, sizeof subject, "(unreadable)");
        if (mbedtls_x509_dn_gets(issuer, sizeof issuer, &crt->issuer) < 0)
            snprintf(issuer, sizeof issuer, "(unreadable)");
        for (char *p = subject; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
        for (char *p = issuer; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
        fmt_time(&crt->valid_from, from, sizeof from);
        fmt_time(&crt->valid_to, to, sizeof to);
        hc[0] = hk[0] = '\0';
        if (digest(MBEDTLS_MD_SHA256, crt->raw.p, crt->raw.len, d, &n))
            tls_colon_hex(d, n, hc, sizeof hc);
        if (digest(MBEDTLS_MD_SHA256, crt->pk_raw.p, crt->pk_raw.len, d, &n))
            tls_colon_hex(d, n, hk, sizeof hk);
        check_text(c, crt, i == 0, result, sizeof result);
        snprintf(text, sizeof text, "certificate %d: subject %s; issuer %s; valid %s to %s; "
                 "sha256 cert %s; sha256 pkey %s; %s", i, subject, issuer, from, to, hc, hk,
                 result);
        line(user, text);
    }
}

/* ---- channel binding --------------------------------------------------- */

bool tls_conn_channel_binding(tls_conn *c, const char *type, unsigned char *out, size_t *len)
{
    if (!c->done || c->failed || type == NULL)
        return false;
    bool tls13 = false;
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
    tls13 = mbedtls_ssl_get_version_number(&c->ssl) == MBEDTLS_SSL_VERSION_TLS1_3;
#endif
    if (strcmp(type, "tls-exporter") == 0) {
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3) && \
    defined(MBEDTLS_SSL_KEYING_MATERIAL_EXPORT)
        /* RFC 9266 section 2: label, no context, 32 bytes. */
        static const char label[] = "EXPORTER-Channel-Binding";
        if (!tls13 || *len < 32)
            return false;
        if (mbedtls_ssl_export_keying_material(&c->ssl, out, 32, label, sizeof label - 1, NULL,
                                               0, 0) != 0)
            return false;
        *len = 32;
        return true;
#else
        (void)out;
        return false;
#endif
    }
    if (strcmp(type, "tls-unique") == 0) {
#if defined(MBEDTLS_SSL_RENEGOTIATION)
        /* RFC 5929 section 3.1: the first Finished of the latest handshake,
         * the client's in a full handshake, the server's in a resumed one.
         * mbedTLS keeps both for renegotiation_info (RFC 5746); TLS 1.3 has
         * no tls-unique (RFC 8446 C.5). */
        size_t n = c->ssl.MBEDTLS_PRIVATE(verify_data_len);
        if (tls13 || n == 0 || n > *len || n > MBEDTLS_SSL_VERIFY_DATA_MAX_LEN)
            return false;
        memcpy(out, c->resumed ? c->ssl.MBEDTLS_PRIVATE(peer_verify_data)
                               : c->ssl.MBEDTLS_PRIVATE(own_verify_data), n);
        *len = n;
        return true;
#else
        return false;
#endif
    }
    return false;
}

/* ---- session resumption ------------------------------------------------- */

/* The digest a saved session carries: the config's, the server name, for
 * TOFU the key the session's first handshake was checked against, and the
 * session itself, so that a damaged file is not offered either. */
static bool conn_binding(const tls_conn *c, const unsigned char *key,
                         const unsigned char *payload, size_t len, unsigned char out[32])
{
    binder b;
    bind_start(&b);
    bind_add(&b, c->cfg->binding, sizeof c->cfg->binding);
    bind_str(&b, c->server_name);
    if (c->cfg->tofu)
        bind_add(&b, key, TLS_KEY_ID_LEN);
    bind_add(&b, payload, len);
    return bind_finish(&b, out);
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

void tls_session_free(unsigned char *data, size_t len)
{
    if (data == NULL)
        return;
    secret_wipe(data, len);
    free(data);
}

/* Serialises the current session into c->pending (replacing one not yet
 * taken).  Failures only cost the next connection a full handshake. */
static void keep_session(tls_conn *c)
{
    unsigned char key[TLS_KEY_ID_LEN] = {0};
    if (c->cfg->tofu) {
        if (c->resumed)
            memcpy(key, c->cfg->tofu_key, sizeof key);
        else if (!tls_conn_peer_key_id(c, key))
            return;
    }
    mbedtls_ssl_session sess;
    mbedtls_ssl_session_init(&sess);
    unsigned char *data = NULL;
    size_t need = 0, total = 0;
    if (mbedtls_ssl_get_session(&c->ssl, &sess) != 0)
        goto out;
    (void)mbedtls_ssl_session_save(&sess, NULL, 0, &need);
    if (need == 0 || need > SESSION_MAX)
        goto out;
    total = SESSION_HEAD + need;
    if ((data = malloc(total)) == NULL)
        goto out;
    size_t got = 0;
    if (mbedtls_ssl_session_save(&sess, data + SESSION_HEAD, need, &got) != 0 || got != need ||
        !conn_binding(c, key, data + SESSION_HEAD, need, data + 8)) {
        tls_session_free(data, total);
        data = NULL;
        goto out;
    }
    memcpy(data, SESSION_MAGIC, 8);
    put_be(data + 40, (uint64_t)time(NULL), 8);
    put_be(data + 48, need, 4);
    tls_session_free(c->pending, c->pending_len);
    c->pending = data;
    c->pending_len = total;
out:
    mbedtls_ssl_session_free(&sess); /* wipes the master secret */
}

bool tls_conn_take_session(tls_conn *c, unsigned char **data, size_t *len)
{
    if (c->pending == NULL || c->failed)
        return false;
    *data = c->pending;
    *len = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    return true;
}

bool tls_conn_offer_session(tls_conn *c, const unsigned char *data, size_t len, char *why,
                            size_t whylen)
{
    if (c->cfg->tofu && !c->cfg->tofu_known) {
        set_err(why, whylen, "no key recorded yet for trust on first use");
        return false;
    }
    if (len < SESSION_HEAD || memcmp(data, SESSION_MAGIC, 8) != 0 ||
        get_be(data + 48, 4) != len - SESSION_HEAD) {
        set_err(why, whylen, "not a saved session of this version of hato");
        return false;
    }
    unsigned char want[32];
    if (!conn_binding(c, c->cfg->tofu_key, data + SESSION_HEAD, len - SESSION_HEAD, want) ||
        memcmp(want, data + 8, 32) != 0) {
        set_err(why, whylen, "saved under other TLS settings, server name or library "
                "version, or damaged");
        return false;
    }
    uint64_t saved = get_be(data + 40, 8), now = (uint64_t)time(NULL);
    if (saved > now + 300 || now - saved > SESSION_MAX_AGE) {
        set_err(why, whylen, "saved too long ago (or in the future)");
        return false;
    }
    mbedtls_ssl_session sess;
    mbedtls_ssl_session_init(&sess);
    int rc = mbedtls_ssl_session_load(&sess, data + SESSION_HEAD, len - SESSION_HEAD);
    if (rc == 0)
        rc = mbedtls_ssl_set_session(&c->ssl, &sess);
    mbedtls_ssl_session_free(&sess);
    if (rc != 0) {
        char text[200];
        describe_code(rc, text, sizeof text);
        set_err(why, whylen, "mbedTLS does not take it: %s", text);
        return false;
    }
    return true;
}
