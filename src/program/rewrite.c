/*
 * rewrite.c - canonical(5) / generic(5) text tables for the sender.
 */
#include "rewrite.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text.h"

const char *const rewrite_sender_fields[] = {"From", "Sender", "Reply-To", "Resent-From",
                                             "Resent-Sender"};
const size_t rewrite_nsender_fields = sizeof rewrite_sender_fields / sizeof rewrite_sender_fields[0];

static const char *find_key(const struct rewrite_table *t, const char *key, size_t klen)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->v[i].key) == klen && strncasecmp(t->v[i].key, key, klen) == 0)
            return t->v[i].value;
    return NULL;
}

int rewrite_map_add_text(struct rewrite_map *m, const char *name, const char *text, size_t len,
                         rewrite_warn_fn warn, void *user)
{
    struct rewrite_table *nt = realloc(m->t, (m->n + 1) * sizeof *nt);
    if (nt == NULL)
        return -1;
    m->t = nt;
    struct rewrite_table *t = &m->t[m->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (t->name == NULL)
        return -1;
    m->n++;

    struct text_lines tl = {.text = text, .len = len, .reject_nul = true};
    enum text_status ts;
    int rc = 0;
    char msg[1024];
    while (rc == 0 && (ts = text_next(&tl)) != TEXT_END) {
        if (ts == TEXT_NOMEM) {
            rc = -1;
            break;
        }
        if (ts != TEXT_LINE) {
            snprintf(msg, sizeof msg, "%s:%u: %s", name, tl.lineno,
                     ts == TEXT_NUL ? "a NUL byte; the rest of the table is ignored"
                                    : "a continuation line with no entry before it; ignored");
            if (warn != NULL)
                warn(user, msg);
            if (ts == TEXT_NUL)
                break;
            continue;
        }
        char *s = tl.buf;
        size_t klen, vlen;
        char *val;
        text_split_entry(s, &klen, &val, &vlen);
        /* One address per result: "a@b c@d" is a mistake, not a list. */
        if (vlen == 0 || memchr(val, ' ', vlen) != NULL || memchr(val, '\t', vlen) != NULL) {
            snprintf(msg, sizeof msg, "%s:%u: expected \"pattern address\" (one address); the "
                                      "line is ignored", name, tl.line);
            if (warn != NULL)
                warn(user, msg);
            continue;
        }
        if (find_key(t, s, klen) != NULL)
            continue; /* the first line of a key wins */
        if (t->n == t->cap) {
            size_t ncap = t->cap ? t->cap * 2 : 16;
            struct rewrite_entry *nv = realloc(t->v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = -1;
                break;
            }
            t->v = nv;
            t->cap = ncap;
        }
        char *k = malloc(klen + 1), *v = malloc(vlen + 1);
        if (k == NULL || v == NULL) {
            free(k);
            free(v);
            rc = -1;
            break;
        }
        memcpy(k, s, klen);
        k[klen] = '\0';
        memcpy(v, val, vlen);
        v[vlen] = '\0';
        t->v[t->n++] = (struct rewrite_entry){k, v};
    }
    text_lines_free(&tl);
    return rc;
}

int rewrite_map_load(struct rewrite_map *m, const char *key_name, char *const *paths,
                     size_t npaths, rewrite_warn_fn warn, void *user, char *err, size_t errlen)
{
    err[0] = '\0';
    for (size_t i = 0; i < npaths; i++) {
        char *text;
        size_t len;
        int e = text_read_file(paths[i], REWRITE_MAX_FILE, &text, &len);
        if (e == ENOMEM)
            return -1;
        if (e != 0) {
            snprintf(err, errlen, "cannot read %s, named by %s: %s%s", paths[i], key_name,
                     e == EFBIG ? "larger than 8 MiB" : e == EINVAL ? "not a regular file" : strerror(e),
                     e == ENOENT ? " (hato reads the text file postmap was given, not its .db)" : "");
            return -2;
        }
        int rc = rewrite_map_add_text(m, paths[i], text, len, warn, user);
        free(text);
        if (rc != 0)
            return -1;
    }
    return 0;
}

void rewrite_map_free(struct rewrite_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        for (size_t k = 0; k < m->t[i].n; k++) {
            free(m->t[i].v[k].key);
            free(m->t[i].v[k].value);
        }
        free(m->t[i].v);
        free(m->t[i].name);
    }
    free(m->t);
    m->t = NULL;
    m->n = 0;
}

const char *rewrite_find_at(const char *a)
{
    bool quoted = false;
    const char *at = NULL;
    for (; *a; a++) {
        if (*a == '\\' && a[1] != '\0')
            a++;
        else if (*a == '"')
            quoted = !quoted;
        else if (*a == '@' && !quoted)
            at = a;
    }
    return at;
}

int rewrite_lookup(const struct rewrite_map *m, const char *address, bool local_domain,
                   char **out)
{
    *out = NULL;
    if (address[0] == '\0' || m->n == 0)
        return 0;
    const char *at = rewrite_find_at(address);
    size_t ulen = at ? (size_t)(at - address) : strlen(address);
    struct form {
        const char *key;
        size_t len;
    } forms[3];
    size_t nforms = 0;
    if (at != NULL)
        forms[nforms++] = (struct form){address, strlen(address)};
    if (at == NULL || local_domain)
        forms[nforms++] = (struct form){address, ulen};
    if (at != NULL && at[1] != '\0')
        forms[nforms++] = (struct form){at, strlen(at)};

    const char *result = NULL;
    for (size_t f = 0; f < nforms && result == NULL; f++)
        for (size_t i = 0; i < m->n && result == NULL; i++)
            result = find_key(&m->t[i], forms[f].key, forms[f].len);
    if (result == NULL)
        return 0;
    size_t n;
    if (result[0] == '@') {
        /* "@otherdomain": the same user in otherdomain. */
        n = ulen + strlen(result) + 1;
        *out = malloc(n);
        if (*out != NULL)
            snprintf(*out, n, "%.*s%s", (int)ulen, address, result);
    } else {
        *out = strdup(result);
    }
    return *out ? 1 : -1;
}
