/*
 * config.h - hato's configuration: Postfix main.cf syntax and key names.
 *
 * The file is read whole.  It normally holds no secrets (the password
 * lives in the smtp_sasl_password_maps file, read by maps.c); hato's own
 * smtp_sasl_password is accepted only from a file no one else may read,
 * and its value is never expanded, echoed or left unwiped.  Keys hato does
 * not use are ignored so that a whole Postfix main.cf loads; a key within
 * two edits of a known one gets a warning naming the known key.
 * docs/config.md is the reference for each key.
 */
#ifndef HATO_PROGRAM_CONFIG_H
#define HATO_PROGRAM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hato.h"

/* A config file larger than this is refused: a Postfix main.cf is a few
 * tens of KiB; anything near this is not a configuration file. */
#define CONFIG_MAX_FILE (4u * 1024 * 1024)

typedef void (*config_warn_fn)(void *user, const char *message);

struct config_env {
    const char *hostname;   /* the system's name; NULL: gethostname() */
    config_warn_fn warn;    /* receives warnings without "hato: "; may be NULL */
    void *warn_user;
};

enum config_status {
    CONFIG_OK = 0,
    CONFIG_INVALID = -1,    /* a bad value or line: exit EX_CONFIG */
    CONFIG_UNREADABLE = -2, /* the file could not be read; see open_errno */
    CONFIG_NOMEM = -3,
};

/* One mynetworks entry: an address/prefix. */
struct config_network {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];     /* network byte order; AF_INET uses 4 */
    unsigned prefix;            /* 0..32 or 0..128 */
};

/* One relay as relayhost writes it: [host]:port, host:port, ... */
struct config_relay {
    char *host;                 /* owned, without brackets */
    uint16_t port;              /* 0: not given (587, or 465 in wrapper mode) */
    bool bracketed;             /* [host]: no MX lookup */
};

/* Every string is owned by the struct and freed by config_free(); NULL
 * means "not set" where noted. */
struct config {
    char *path;                 /* the file, for messages */

    char *relay_host;           /* without brackets; NULL when relayhost is empty */
    uint16_t relay_port;        /* 0: not given (library default 587 / 465) */
    bool relay_bracketed;       /* [host]: no MX lookup wanted */
    unsigned relay_line;        /* line of relayhost, 0 when absent */
    /* smtp_fallback_relay: tried in order when the relay cannot take the
     * message (docs/config.md says when). */
    struct config_relay *fallback_relays;
    size_t nfallback_relays;
    /* sender_dependent_relayhost_maps: text file paths, in lookup order. */
    char **relayhost_maps;
    size_t nrelayhost_maps;

    hato_tls_level tls_level;
    bool tls_wrapper;
    char *ca_file;              /* NULL: system store */
    char *ca_path;              /* NULL: system store */
    int tls_loglevel;           /* 0..4 */
    /* From smtp_tls_protocols at level may, else from
     * smtp_tls_mandatory_protocols. */
    hato_tls_version tls_min_version;
    char *cert_file;            /* NULL: no client certificate */
    char *key_file;             /* NULL with cert_file NULL */
    char *fp_digest;            /* "sha256", "sha384", "sha512" or "sha1" */
    char **fp_cert;             /* pins as "AB:CD:...", upper case */
    size_t nfp_cert;
    char **fp_pkey;
    size_t nfp_pkey;
    char *data_directory;       /* NULL: the default (config_state_dir) */
    unsigned session_cache_timeout; /* seconds; accepted, see docs/config.md */

    bool sasl_enable;
    char **password_maps;       /* text file paths, in lookup order */
    size_t npassword_maps;
    unsigned password_maps_line;
    char *mech_filter;          /* NULL: all */
    char *discard_ehlo;         /* smtp_discard_ehlo_keywords, "" for none */
    unsigned sasl_plain;        /* HATO_SASL_* for unencrypted links */
    unsigned sasl_tls;          /* HATO_SASL_* for TLS links */
    bool auth_soft_bounce;
    bool sender_dependent;      /* smtp_sender_dependent_authentication */
    char *password_command;     /* NULL: none; argv[0] is an absolute path */
    char *password_credential;  /* systemd credential name, never NULL */
    bool password_credential_set; /* named in the file, not the default */
    /* smtp_sasl_password = user:password, NULL when absent; the password
     * is wiped by config_free(). */
    char *config_user;
    char *config_password;
    unsigned config_password_line;

    hato_family family;
    char *myhostname;
    char *mydomain;
    char *myorigin;
    char *helo_name;
    char *maillog_file;         /* NULL: syslog */

    /* Local recipients (aliases.c) and sender rewriting (rewrite.c).  The
     * table vectors hold text file paths, in lookup order. */
    char **mydestination;       /* domain names whose addresses are local */
    size_t nmydestination;
    char **alias_maps;          /* read when a recipient is local */
    size_t nalias_maps;
    bool alias_maps_set;        /* named in the file: a missing table gets a warning */
    char **alias_database;      /* checked by newaliases */
    size_t nalias_database;
    bool alias_database_set;
    char **canonical_maps;      /* sender_canonical_maps */
    size_t ncanonical_maps;
    char **generic_maps;        /* smtp_generic_maps */
    size_t ngeneric_maps;

    unsigned timeout_ms[HATO_TIMEOUT_COUNT_];

    /* The queue (docs/queue.md); times in seconds. */
    char *queue_directory;      /* never NULL after a successful load */
    unsigned min_backoff;       /* minimal_backoff_time, >= 1 */
    unsigned max_backoff;       /* maximal_backoff_time, >= min_backoff */
    unsigned max_queue_lifetime;    /* 0: no retries, bounce at once */
    unsigned bounce_queue_lifetime; /* the same for reports from <> */
    /* One ordinary user's share of a shared spool (docs/security.md);
     * 0 is no limit. */
    unsigned long user_queue_limit;             /* hato_user_queue_limit, messages */
    unsigned long long user_queue_size_limit;   /* hato_user_queue_size_limit, bytes */
    /* smtputf8_enable: a message whose header section holds UTF-8 asks
     * the relay for SMTPUTF8 (RFC 6531); "no" sends it undeclared. */
    bool smtputf8_enable;

    /* LAN submission, hato -bs (docs/lan.md). */
    struct config_network *mynetworks; /* who may submit over the network */
    size_t nmynetworks;
    unsigned long long message_size_limit; /* bytes; 0: no limit */
    unsigned smtpd_timeout;         /* seconds a client may stay silent */
    unsigned smtpd_hard_error_limit; /* errors before 421 and disconnect */
    unsigned smtpd_message_limit;   /* smtpd_client_message_rate_limit: per
                                       connection; 0: no limit */
    bool smtpd_sasl_enable;         /* smtpd_sasl_auth_enable: offer AUTH */
    bool smtpd_sasl_required;       /* smtpd_sasl_auth_required: no MAIL before */
    char *smtpd_sasl_password_file; /* user:crypt-hash lines; NULL unset */

    int open_errno;             /* with CONFIG_UNREADABLE */
};

/* Loads path into c (c need not be initialised).  On failure err holds one
 * line naming file:line, the key, the value and what is accepted.  c must
 * be freed with config_free() in every case.  The file's bytes are wiped
 * after parsing. */
enum config_status config_load(struct config *c, const char *path,
                               const struct config_env *env, char *err, size_t errlen);

/* The same on text in memory; name is used in messages.  The text counts
 * as private to its owner (smtp_sasl_password is accepted). */
enum config_status config_parse(struct config *c, const char *name, const char *text,
                                size_t len, const struct config_env *env,
                                char *err, size_t errlen);

void config_free(struct config *c);

/* Parses a relay written as in relayhost: [host]:port, host:port,
 * [ipv6address]:port, [host], host (port as a number or service name).
 * Returns 0 with *host malloc'd (without brackets), *port (0 when not
 * given) and *bracketed; -1 with *why set to the reason (a static
 * string); -2 when out of memory. */
int config_parse_relay(const char *value, char **host, uint16_t *port, bool *bracketed,
                       const char **why);

/* hato's state directory (TLS session tickets, TOFU pins), malloc'd in
 * *out: data_directory when not NULL, else /var/lib/hato for uid 0, else
 * $XDG_STATE_HOME/hato (when absolute) or HOME/.local/state/hato.
 * Returns 0, or -1 with *out NULL when no home directory is known, or -2
 * when out of memory.  xdg_state_home and home may be NULL. */
int config_state_dir(const char *data_directory, unsigned long uid, const char *xdg_state_home,
                     const char *home, char **out);

/* The Postfix key that sets each hato_timeout, e.g. "smtp_rcpt_timeout". */
const char *config_timeout_key(hato_timeout which);

/* Postfix time syntax: a number with an optional unit s, m, h, d or w
 * (seconds when none).  Returns 0 and *ms, or -1. */
int config_parse_time(const char *value, unsigned *ms);

/* One mynetworks item in Postfix's syntax: 192.168.1.0/24, [::1]/128,
 * ::1/128, or an address alone (a host).  Returns 0, or -1 with *why set
 * (a static string). */
int config_parse_network(const char *s, size_t n, struct config_network *out, const char **why);

/* Whether addr (4 or 16 bytes, by family) lies in one of nets; an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) is matched as IPv4. */
bool config_network_match(const struct config_network *nets, size_t n, int family,
                          const unsigned char *addr);

/* Edit distance (insert, delete, substitute, swap of neighbours). */
size_t config_edit_distance(const char *a, const char *b);

#endif
