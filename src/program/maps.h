/*
 * maps.h - the smtp_sasl_password_maps file: "[host]:port user:password".
 *
 * hato reads the text source of a Postfix hash: table, never the .db that
 * postmap builds.  The file must not be accessible to group or others.
 */
#ifndef HATO_PROGRAM_MAPS_H
#define HATO_PROGRAM_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Larger files are refused: a password table has a few lines. */
#define MAPS_MAX_FILE (1u * 1024 * 1024)

enum maps_status {
    MAPS_FOUND = 0,
    MAPS_NOT_FOUND = 1,    /* the file has no entry for the relay */
    MAPS_ERR_MODE = -1,    /* group/others may access it: exit EX_CONFIG */
    MAPS_ERR_OPEN = -2,    /* cannot open or read; see *err_no */
    MAPS_ERR_SYNTAX = -3,  /* a bad line: exit EX_CONFIG */
    MAPS_ERR_NOMEM = -4,
};

/* Looks up the relay in the file at path, trying "[host]:port", "[host]",
 * "host:port", "host" in that order (keys compare case-insensitively, as
 * postmap folds them).  port is the port hato will connect to.
 * On MAPS_FOUND *user and *password are malloc'd; the caller wipes and
 * frees them (wipe_free_str).  The file's bytes are wiped from memory
 * before returning.  On an error err holds one line naming the file and
 * key_name (the setting that names the file) and *err_no the errno. */
enum maps_status maps_lookup(const char *path, const char *key_name, const char *host,
                             uint16_t port, char **user, char **password, int *err_no,
                             char *err, size_t errlen);

/* The same on the file's text, without the mode check (for tests and
 * maps_lookup).  text is not modified. */
enum maps_status maps_lookup_text(const char *text, size_t len, const char *name,
                                  const char *host, uint16_t port, char **user,
                                  char **password, char *err, size_t errlen);

/* The general forms: the candidate keys, best first; the entry of the
 * best key present wins (the first line among equal keys), and *matched
 * (may be NULL) receives that key's index. */
#define MAPS_MAX_KEYS 4
enum maps_status maps_lookup_keys(const char *path, const char *key_name,
                                  const char *const *keys, size_t nkeys, size_t *matched,
                                  char **user, char **password, int *err_no, char *err,
                                  size_t errlen);
enum maps_status maps_lookup_text_keys(const char *text, size_t len, const char *name,
                                       const char *const *keys, size_t nkeys, size_t *matched,
                                       char **user, char **password, char *err, size_t errlen);

/* Postfix's search of smtp_sasl_password_maps (paths, in order): with a
 * sender (smtp_sender_dependent_authentication = yes; NULL or "" skips
 * this), the sender address in every table, then its "@domain" in every
 * table; then the relay's keys (as maps_lookup) in each table.  On
 * MAPS_FOUND *user and *password are as for maps_lookup and found (may be
 * NULL) receives "FILE KEY" of the entry used, for messages.  The other
 * results as for maps_lookup. */
enum maps_status maps_find(const char *const *paths, size_t npaths, const char *key_name,
                           const char *sender, const char *host, uint16_t port, char **user,
                           char **password, char *found, size_t foundlen, int *err_no,
                           char *err, size_t errlen);

/* sender_dependent_relayhost_maps (paths, in order): the sender address
 * in every table, then its "@domain" in every table; the null sender ("")
 * as "<>".  On MAPS_FOUND *value is the entry's value, malloc'd (the
 * caller frees it), and found (may be NULL) receives "FILE KEY".  These
 * tables hold no secrets: their mode is not checked.  Otherwise as
 * maps_find. */
enum maps_status maps_find_sender_value(const char *const *paths, size_t npaths,
                                        const char *key_name, const char *sender, char **value,
                                        char *found, size_t foundlen, int *err_no, char *err,
                                        size_t errlen);

#endif
