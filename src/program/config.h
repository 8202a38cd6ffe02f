/*
 * config.h - hato's configuration: Postfix main.cf syntax and key names.
 *
 * The file is read whole (it is small and holds no secrets: the password
 * lives in the smtp_sasl_password_maps file, read by maps.c).  Keys hato
 * does not use are ignored so that a whole Postfix main.cf loads; a key
 * within two edits of a known one gets a warning naming the known key.
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

/* Every string is owned by the struct and freed by config_free(); NULL
 * means "not set" where noted. */
struct config {
    char *path;                 /* the file, for messages */

    char *relay_host;           /* without brackets; NULL when relayhost is empty */
    uint16_t relay_port;        /* 0: not given (library default 587 / 465) */
    bool relay_bracketed;       /* [host]: no MX lookup wanted */
    unsigned relay_line;        /* line of relayhost, 0 when absent */

    hato_tls_level tls_level;
    bool tls_wrapper;
    char *ca_file;              /* NULL: system store */
    char *ca_path;              /* NULL: system store */
    int tls_loglevel;           /* 0..4 */

    bool sasl_enable;
    char **password_maps;       /* text file paths, in lookup order */
    size_t npassword_maps;
    unsigned password_maps_line;
    char *mech_filter;          /* NULL: all */
    unsigned sasl_plain;        /* HATO_SASL_* for unencrypted links */
    unsigned sasl_tls;          /* HATO_SASL_* for TLS links */
    bool auth_soft_bounce;

    hato_family family;
    char *myhostname;
    char *mydomain;
    char *myorigin;
    char *helo_name;
    char *maillog_file;         /* NULL: syslog */

    unsigned timeout_ms[HATO_TIMEOUT_COUNT_];

    int open_errno;             /* with CONFIG_UNREADABLE */
};

/* Loads path into c (c need not be initialised).  On failure err holds one
 * line naming file:line, the key, the value and what is accepted.  c must
 * be freed with config_free() in every case. */
enum config_status config_load(struct config *c, const char *path,
                               const struct config_env *env, char *err, size_t errlen);

/* The same on text in memory; name is used in messages. */
enum config_status config_parse(struct config *c, const char *name, const char *text,
                                size_t len, const struct config_env *env,
                                char *err, size_t errlen);

void config_free(struct config *c);

/* The Postfix key that sets each hato_timeout, e.g. "smtp_rcpt_timeout". */
const char *config_timeout_key(hato_timeout which);

/* Postfix time syntax: a number with an optional unit s, m, h, d or w
 * (seconds when none).  Returns 0 and *ms, or -1. */
int config_parse_time(const char *value, unsigned *ms);

/* Edit distance (insert, delete, substitute, swap of neighbours). */
size_t config_edit_distance(const char *a, const char *b);

#endif
