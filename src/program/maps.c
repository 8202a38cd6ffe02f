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

#include "wipe.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One logical line: key and value in a caller-provided buffer. */
struct logical {
    char *s;
    size_t len, cap;
    unsigned line;
};

static bool logical_add(struct logical *l, const char *s, size_t n)
{
    size_t need = l->len + 1 + n + 1;
    if (need > l->cap) {
        size_t ncap = l->cap ? l->cap : 128;
        while (ncap < need)
            ncap *= 2;
        char *ns = malloc(ncap);
        if (ns == NULL)
            return false;
        if (l->s != NULL) {
            memcpy(ns, l->s, l->len);
            wipe(l->s, l->cap);
            free(l->s);
        }
        l->s = ns;
        l->cap = ncap;
    }
    if (l->len > 0)
        l->s[l->len++] = ' ';
    memcpy(l->s + l->len, s, n);
    l->len += n;
    l->s[l->len] = '\0';
    return true;
}

/* Checks one logical line against the candidate keys; on a match of a
 * better rank than *best_rank stores user and password. */
static enum maps_status consider(struct logical *l, const char *name, char keys[4][300],
                                 int nkeys, int *best_rank, char **user, char **password,
                                 char *err, size_t errlen)
{
    char *s = l->s;
    size_t klen = 0;
    while (s[klen] != '\0' && !is_blank(s[klen]))
        klen++;
    char *val = s + klen;
    while (is_blank(*val))
        val++;
    size_t vlen = strlen(val);
    while (vlen > 0 && is_blank(val[vlen - 1]))
        vlen--;
    if (vlen == 0) {
        snprintf(err, errlen, "%s:%u: entry %.*s has no value; expected \"%.*s user:password\"",
                 name, l->line, (int)klen, s, (int)klen, s);
        return MAPS_ERR_SYNTAX;
    }
    for (int i = 0; i < nkeys && i < *best_rank; i++) {
        if (strlen(keys[i]) != klen || strncasecmp(keys[i], s, klen) != 0)
            continue;
        char *colon = memchr(val, ':', vlen);
        if (colon == NULL) {
            snprintf(err, errlen, "%s:%u: the value for %.*s has no ':'; expected user:password",
                     name, l->line, (int)klen, s);
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

enum maps_status maps_lookup_text(const char *text, size_t len, const char *name,
                                  const char *host, uint16_t port, char **user,
                                  char **password, char *err, size_t errlen)
{
    char keys[4][300];
    int nkeys = 4;
    int best = nkeys; /* rank of the best match so far; nkeys: none */
    enum maps_status st = MAPS_FOUND;
    struct logical l = {0};
    unsigned lineno = 0;
    size_t pos = 0;

    *user = NULL;
    *password = NULL;
    err[0] = '\0';
    /* Postfix's order: the relay as written with brackets first. */
    snprintf(keys[0], sizeof keys[0], "[%s]:%u", host, (unsigned)port);
    snprintf(keys[1], sizeof keys[1], "[%s]", host);
    snprintf(keys[2], sizeof keys[2], "%s:%u", host, (unsigned)port);
    snprintf(keys[3], sizeof keys[3], "%s", host);

    while (pos < len && st == MAPS_FOUND) {
        const char *ls = text + pos;
        const char *nl = memchr(ls, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - ls) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n > 0 && ls[n - 1] == '\r')
            n--;
        size_t i = 0;
        while (i < n && is_blank(ls[i]))
            i++;
        if (i == n || ls[i] == '#')
            continue;
        if (i > 0 && l.len == 0) {
            snprintf(err, errlen, "%s:%u: a continuation line (it starts with white space) "
                                  "with no entry before it", name, lineno);
            st = MAPS_ERR_SYNTAX;
            break;
        }
        if (i == 0 && l.len > 0) {
            st = consider(&l, name, keys, nkeys, &best, user, password, err, errlen);
            l.len = 0;
        }
        if (st != MAPS_FOUND)
            break;
        if (l.len == 0)
            l.line = lineno;
        if (!logical_add(&l, ls + i, n - i))
            st = MAPS_ERR_NOMEM;
    }
    if (st == MAPS_FOUND && l.len > 0)
        st = consider(&l, name, keys, nkeys, &best, user, password, err, errlen);
    if (l.s != NULL) {
        wipe(l.s, l.cap);
        free(l.s);
    }
    if (st == MAPS_ERR_NOMEM)
        snprintf(err, errlen, "out of memory reading %s", name);
    if (st != MAPS_FOUND || best == nkeys) {
        wipe_free_str(*user);
        wipe_free_str(*password);
        *user = NULL;
        *password = NULL;
        if (st == MAPS_FOUND)
            st = MAPS_NOT_FOUND;
    }
    return st;
}

enum maps_status maps_lookup(const char *path, const char *key_name, const char *host,
                             uint16_t port, char **user, char **password, int *err_no,
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
    if ((sb.st_mode & 077) != 0) {
        snprintf(err, errlen, "password file %s, named by %s, may be read by other users "
                              "(mode %03o); run: chmod 600 %s",
                 path, key_name, (unsigned)(sb.st_mode & 0777), path);
        close(fd);
        return MAPS_ERR_MODE;
    }
    if (!S_ISREG(sb.st_mode) || (uintmax_t)sb.st_size > MAPS_MAX_FILE) {
        snprintf(err, errlen, "password file %s, named by %s, is not a regular file of at most %u bytes",
                 path, key_name, MAPS_MAX_FILE);
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
        st = maps_lookup_text(text, len, path, host, port, user, password, err, errlen);
    wipe(text, cap + 1);
    free(text);
    return st;
}
