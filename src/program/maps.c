/*
 * maps.c - reading a Postfix password table's text file.
 *
 * Format, as postmap(1) reads it: "key whitespace value"; lines whose first
 * non-blank character is '#' and blank lines are skipped; a line starting
 * with white space continues the one before.  The value is "user:password"
 * split at the first ':', so the password may hold ':' and spaces.
 */
#include "maps.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text.h"
#include "wipe.h"

/* Checks one logical line against the candidate keys; on a match of a
 * better rank than *best_rank stores user and password. */
static enum maps_status consider(char *s, unsigned line, const char *name,
                                 const char *const *keys, size_t nkeys, size_t *best_rank,
                                 bool raw, char **user, char **password, char *err,
                                 size_t errlen)
{
    size_t klen, vlen;
    char *val;
    text_split_entry(s, &klen, &val, &vlen);
    if (vlen == 0) {
        snprintf(err, errlen, "%s:%u: entry %.*s has no value; expected \"%.*s %s\"",
                 name, line, (int)klen, s, (int)klen, s, raw ? "value" : "user:password");
        return MAPS_ERR_SYNTAX;
    }
    for (size_t i = 0; i < nkeys && i < *best_rank; i++) {
        if (strlen(keys[i]) != klen || strncasecmp(keys[i], s, klen) != 0)
            continue;
        if (raw) {
            /* A table of plain values (relays): the whole value. */
            char *v = malloc(vlen + 1);
            if (v == NULL)
                return MAPS_ERR_NOMEM;
            memcpy(v, val, vlen);
            v[vlen] = '\0';
            free(*user);
            *user = v;
            *best_rank = i;
            break;
        }
        char *colon = memchr(val, ':', vlen);
        if (colon == NULL) {
            snprintf(err, errlen, "%s:%u: the value for %.*s has no ':'; expected user:password",
                     name, line, (int)klen, s);
            return MAPS_ERR_SYNTAX;
        }
        size_t ulen = (size_t)(colon - val);
        size_t plen = vlen - ulen - 1;
        char *u = malloc(ulen + 1), *pw = malloc(plen + 1);
        if (u == NULL || pw == NULL) {
            free(u);
            free(pw);
            return MAPS_ERR_NOMEM;
        }
        memcpy(u, val, ulen);
        u[ulen] = '\0';
        memcpy(pw, colon + 1, plen);
        pw[plen] = '\0';
        wipe_free_str(*user);
        wipe_free_str(*password);
        *user = u;
        *password = pw;
        *best_rank = i;
        break;
    }
    return MAPS_FOUND;
}

static enum maps_status text_keys(const char *text, size_t len, const char *name,
                                  const char *const *keys, size_t nkeys, size_t *matched,
                                  bool raw, char **user, char **password, char *err,
                                  size_t errlen)
{
    size_t best = nkeys; /* rank of the best match so far; nkeys: none */
    enum maps_status st = MAPS_FOUND;
    struct text_lines t = {.text = text, .len = len};
    enum text_status ts;

    *user = NULL;
    *password = NULL;
    err[0] = '\0';
    while (st == MAPS_FOUND && (ts = text_next(&t)) != TEXT_END) {
        if (ts == TEXT_LINE) {
            st = consider(t.buf, t.line, name, keys, nkeys, &best, raw, user, password, err,
                          errlen);
        } else if (ts == TEXT_ORPHAN) {
            snprintf(err, errlen, "%s:%u: a continuation line (it starts with white space) "
                                  "with no entry before it", name, t.lineno);
            st = MAPS_ERR_SYNTAX;
        } else {
            st = MAPS_ERR_NOMEM;
        }
    }
    text_lines_free(&t);
    if (st == MAPS_ERR_NOMEM)
        snprintf(err, errlen, "out of memory reading %s", name);
    if (st != MAPS_FOUND || best == nkeys) {
        wipe_free_str(*user);
        wipe_free_str(*password);
        *user = NULL;
        *password = NULL;
        if (st == MAPS_FOUND)
            st = MAPS_NOT_FOUND;
    } else if (matched != NULL) {
        *matched = best;
    }
    return st;
}

enum maps_status maps_lookup_text_keys(const char *text, size_t len, const char *name,
                                       const char *const *keys, size_t nkeys, size_t *matched,
                                       char **user, char **password, char *err, size_t errlen)
{
    return text_keys(text, len, name, keys, nkeys, matched, false, user, password, err, errlen);
}

/* The relay's keys in Postfix's order: as written with brackets first. */
static void relay_keys(char keys[MAPS_MAX_KEYS][300], const char *ptrs[MAPS_MAX_KEYS],
                       const char *host, uint16_t port)
{
    snprintf(keys[0], sizeof keys[0], "[%s]:%u", host, (unsigned)port);
    snprintf(keys[1], sizeof keys[1], "[%s]", host);
    snprintf(keys[2], sizeof keys[2], "%s:%u", host, (unsigned)port);
    snprintf(keys[3], sizeof keys[3], "%s", host);
    for (int i = 0; i < MAPS_MAX_KEYS; i++)
        ptrs[i] = keys[i];
}

enum maps_status maps_lookup_text(const char *text, size_t len, const char *name,
                                  const char *host, uint16_t port, char **user,
                                  char **password, char *err, size_t errlen)
{
    char keys[MAPS_MAX_KEYS][300];
    const char *ptrs[MAPS_MAX_KEYS];
    relay_keys(keys, ptrs, host, port);
    return maps_lookup_text_keys(text, len, name, ptrs, MAPS_MAX_KEYS, NULL, user, password,
                                 err, errlen);
}

/* One file: a password table (raw false: mode checked, values split) or
 * a table of plain values (raw: the value in *user, no mode check). */
static enum maps_status file_keys(const char *path, const char *key_name,
                                  const char *const *keys, size_t nkeys, size_t *matched,
                                  bool raw, char **user, char **password, int *err_no,
                                  char *err, size_t errlen)
{
    *user = NULL;
    *password = NULL;
    *err_no = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *err_no = errno;
        char db[4096];
        struct stat sb;
        snprintf(db, sizeof db, "%s.db", path);
        bool only_db = errno == ENOENT && stat(db, &sb) == 0;
        snprintf(err, errlen, "cannot open %s, named by %s: %s%s", path, key_name,
                 strerror(*err_no),
                 only_db ? " (hato reads the text file postmap was given, not its .db)" : "");
        return MAPS_ERR_OPEN;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        *err_no = errno;
        snprintf(err, errlen, "cannot stat %s, named by %s: %s", path, key_name, strerror(*err_no));
        close(fd);
        return MAPS_ERR_OPEN;
    }
    /* Checked on the open descriptor, so the file read is the file checked. */
    if (!raw && (sb.st_mode & 077) != 0) {
        snprintf(err, errlen, "password file %s, named by %s, may be read by other users "
                              "(mode %03o); run: chmod 600 %s",
                 path, key_name, (unsigned)(sb.st_mode & 0777), path);
        close(fd);
        return MAPS_ERR_MODE;
    }
    if (!S_ISREG(sb.st_mode) || (uintmax_t)sb.st_size > MAPS_MAX_FILE) {
        snprintf(err, errlen, "%s %s, named by %s, is not a regular file of at most %u bytes",
                 raw ? "table" : "password file", path, key_name, MAPS_MAX_FILE);
        close(fd);
        return MAPS_ERR_SYNTAX;
    }
    size_t cap = (size_t)sb.st_size, len = 0;
    char *text = malloc(cap + 1);
    if (text == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory reading %s", path);
        return MAPS_ERR_NOMEM;
    }
    enum maps_status st = MAPS_FOUND;
    while (len < cap) {
        ssize_t r = read(fd, text + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err_no = errno;
            snprintf(err, errlen, "cannot read %s, named by %s: %s", path, key_name, strerror(errno));
            st = MAPS_ERR_OPEN;
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (st == MAPS_FOUND)
        st = text_keys(text, len, path, keys, nkeys, matched, raw, user, password, err, errlen);
    wipe(text, cap + 1);
    free(text);
    return st;
}

enum maps_status maps_lookup_keys(const char *path, const char *key_name,
                                  const char *const *keys, size_t nkeys, size_t *matched,
                                  char **user, char **password, int *err_no, char *err,
                                  size_t errlen)
{
    return file_keys(path, key_name, keys, nkeys, matched, false, user, password, err_no, err,
                     errlen);
}

enum maps_status maps_lookup(const char *path, const char *key_name, const char *host,
                             uint16_t port, char **user, char **password, int *err_no,
                             char *err, size_t errlen)
{
    char keys[MAPS_MAX_KEYS][300];
    const char *ptrs[MAPS_MAX_KEYS];
    relay_keys(keys, ptrs, host, port);
    return maps_lookup_keys(path, key_name, ptrs, MAPS_MAX_KEYS, NULL, user, password, err_no,
                            err, errlen);
}


/* Postfix's mail_addr_find() order: the whole address in every table,
 * then its domain as "@domain".  The null sender ("" or NULL) is null_key
 * alone, or nothing when null_key is NULL.  Returns the count in keys. */
static size_t sender_lookup_keys(const char *sender, const char *null_key, const char *keys[2])
{
    if (sender == NULL || sender[0] == '\0') {
        if (null_key == NULL)
            return 0;
        keys[0] = null_key;
        return 1;
    }
    size_t n = 0;
    keys[n++] = sender;
    const char *at = strrchr(sender, '@');
    if (at != NULL && at[1] != '\0')
        keys[n++] = at;
    return n;
}

enum maps_status maps_find(const char *const *paths, size_t npaths, const char *key_name,
                           const char *sender, const char *host, uint16_t port, char **user,
                           char **password, char *found, size_t foundlen, int *err_no,
                           char *err, size_t errlen)
{
    char keys[MAPS_MAX_KEYS][300];
    const char *ptrs[MAPS_MAX_KEYS];
    enum maps_status st = MAPS_NOT_FOUND;

    *user = NULL;
    *password = NULL;
    *err_no = 0;
    err[0] = '\0';
    if (found != NULL && foundlen > 0)
        found[0] = '\0';

    /* The null sender has no key in password maps. */
    const char *sender_keys[2];
    size_t nsender = sender_lookup_keys(sender, NULL, sender_keys);
    for (size_t k = 0; k < nsender && st == MAPS_NOT_FOUND; k++) {
        for (size_t i = 0; i < npaths && st == MAPS_NOT_FOUND; i++) {
            st = maps_lookup_keys(paths[i], key_name, &sender_keys[k], 1, NULL, user,
                                  password, err_no, err, errlen);
            if (st == MAPS_FOUND && found != NULL)
                snprintf(found, foundlen, "%s %s", paths[i], sender_keys[k]);
        }
    }
    if (st != MAPS_NOT_FOUND)
        return st;

    relay_keys(keys, ptrs, host, port);
    for (size_t i = 0; i < npaths && st == MAPS_NOT_FOUND; i++) {
        /* Each table is searched for every form of the relay before the
         * next table, as hato did before sender-dependent lookups. */
        size_t rank = 0;
        st = maps_lookup_keys(paths[i], key_name, ptrs, MAPS_MAX_KEYS, &rank, user, password,
                              err_no, err, errlen);
        if (st == MAPS_FOUND && found != NULL)
            snprintf(found, foundlen, "%s %s", paths[i], ptrs[rank]);
    }
    return st;
}

enum maps_status maps_find_sender_value(const char *const *paths, size_t npaths,
                                        const char *key_name, const char *sender, char **value,
                                        char *found, size_t foundlen, int *err_no, char *err,
                                        size_t errlen)
{
    enum maps_status st = MAPS_NOT_FOUND;
    char *unused = NULL;

    *value = NULL;
    *err_no = 0;
    err[0] = '\0';
    if (found != NULL && foundlen > 0)
        found[0] = '\0';
    /* The null sender is looked up as "<>"
     * (empty_address_relayhost_maps_lookup_key). */
    const char *sender_keys[2];
    size_t nsender = sender_lookup_keys(sender, "<>", sender_keys);
    for (size_t k = 0; k < nsender && st == MAPS_NOT_FOUND; k++) {
        for (size_t i = 0; i < npaths && st == MAPS_NOT_FOUND; i++) {
            st = file_keys(paths[i], key_name, &sender_keys[k], 1, NULL, true, value, &unused,
                           err_no, err, errlen);
            if (st == MAPS_FOUND && found != NULL)
                snprintf(found, foundlen, "%s %s", paths[i], sender_keys[k]);
        }
    }
    return st;
}
