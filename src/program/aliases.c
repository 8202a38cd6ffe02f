/*
 * aliases.c - reading aliases(5) text files and expanding local recipients.
 */
#include "aliases.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "headers.h"
#include "text.h"

static void warnf(aliases_warn_fn warn, void *user, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void warnf(aliases_warn_fn warn, void *user, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (warn == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    warn(user, line);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* s[0..n) without its quotes and quoted-pair backslashes, malloc'd. */
static char *unquote(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            continue;
        if (s[i] == '\\' && i + 1 < n)
            i++;
        out[k++] = s[i];
    }
    out[k] = '\0';
    return out;
}

char *aliases_local_name(const char *address, const char **domain)
{
    bool quoted = false;
    const char *at = NULL;
    for (const char *p = address; *p; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (*p == '@' && !quoted)
            at = p;
    }
    *domain = at ? at + 1 : NULL;
    char *name = unquote(address, at ? (size_t)(at - address) : strlen(address));
    if (name != NULL)
        lower(name);
    return name;
}

/* ------------------------------------------------------------------ */
/* Values                                                             */

/* The next comma-separated item of a value: commas inside quotes, angle
 * brackets, comments and domain literals do not separate.  Sets *item and
 * *n (trimmed; may be 0) and advances *cursor; false at the end. */
static bool next_item(const char **cursor, const char **item, size_t *n)
{
    const char *s = *cursor;
    if (*s == '\0')
        return false;
    bool quoted = false;
    int angle = 0, paren = 0, bracket = 0;
    const char *p = s;
    for (; *p; p++) {
        if (*p == '\\' && p[1] != '\0') {
            p++;
            continue;
        }
        if (quoted) {
            quoted = *p != '"';
            continue;
        }
        if (*p == '"')
            quoted = true;
        else if (*p == '<')
            angle++;
        else if (*p == '>' && angle > 0)
            angle--;
        else if (*p == '(')
            paren++;
        else if (*p == ')' && paren > 0)
            paren--;
        else if (*p == '[')
            bracket++;
        else if (*p == ']' && bracket > 0)
            bracket--;
        else if (*p == ',' && angle == 0 && paren == 0 && bracket == 0)
            break;
    }
    *cursor = *p ? p + 1 : p;
    while (s < p && is_blank(*s))
        s++;
    while (p > s && is_blank(p[-1]))
        p--;
    *item = s;
    *n = (size_t)(p - s);
    return true;
}

enum item_kind {
    ITEM_ADDRESS,   /* an address or bare name: expanded again when local */
    ITEM_NOALIAS,   /* "\name": that name, not expanded */
    ITEM_COMMAND,   /* "|command": skipped */
    ITEM_FILE,      /* "/file": skipped */
    ITEM_INCLUDE,   /* ":include:/path" */
    ITEM_BAD,
};

static bool starts_with_ci(const char *s, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    return n >= pl && strncasecmp(s, prefix, pl) == 0;
}

/* Classifies an item; *payload (malloc'd, the caller frees it) is the
 * include path or the name after '\'; *why is set for ITEM_BAD. */
static enum item_kind classify(const char *s, size_t n, char **payload, const char **why)
{
    *payload = NULL;
    *why = NULL;
    /* sendmail and Postfix allow the whole target in quotes, as in
     * "|/usr/bin/vacation user" or "/var/log/mail archive". */
    const char *t = s;
    size_t tn = n;
    char *inner = NULL;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        inner = unquote(s, n);
        if (inner == NULL)
            return ITEM_BAD;
        if (inner[0] == '|' || inner[0] == '/' || starts_with_ci(inner, strlen(inner), ":include:")) {
            t = inner;
            tn = strlen(inner);
        }
    }
    enum item_kind kind = ITEM_ADDRESS;
    if (tn > 0 && t[0] == '|') {
        kind = ITEM_COMMAND;
    } else if (tn > 0 && t[0] == '/') {
        kind = ITEM_FILE;
    } else if (starts_with_ci(t, tn, ":include:")) {
        const char *p = t + 9;
        size_t pn = tn - 9;
        while (pn > 0 && is_blank(*p))
            p++, pn--;
        if (pn == 0 || p[0] != '/') {
            kind = ITEM_BAD;
            *why = "an :include: target needs an absolute path, as in :include:/etc/mail/list";
        } else if ((*payload = malloc(pn + 1)) == NULL) {
            kind = ITEM_BAD;
        } else {
            memcpy(*payload, p, pn);
            (*payload)[pn] = '\0';
            kind = ITEM_INCLUDE;
        }
    } else if (tn > 1 && t[0] == '\\') {
        if ((*payload = malloc(tn)) == NULL) {
            kind = ITEM_BAD;
        } else {
            memcpy(*payload, t + 1, tn - 1);
            (*payload)[tn - 1] = '\0';
            kind = ITEM_NOALIAS;
        }
    }
    free(inner);
    return kind;
}

static int count_address(void *user, const char *address)
{
    (void)address;
    (*(size_t *)user)++;
    return 0;
}

/* Checks one value; NULL when fine, else why not (a static string). */
static const char *check_value(const char *value, const char **bad_item, size_t *bad_n)
{
    const char *cur = value, *item;
    size_t n, items = 0;
    while (next_item(&cur, &item, &n)) {
        if (n == 0)
            continue;
        items++;
        char *payload;
        const char *why;
        enum item_kind k = classify(item, n, &payload, &why);
        free(payload);
        *bad_item = item;
        *bad_n = n;
        if (k == ITEM_BAD)
            return why ? why : "out of memory";
        if (k == ITEM_ADDRESS) {
            size_t count = 0;
            if (headers_parse_addresses(item, n, count_address, &count) != 0)
                return "out of memory";
            if (count == 0)
                return "this target holds no address";
        }
    }
    if (items == 0) {
        *bad_item = value;
        *bad_n = 0;
        return "the alias has no value; write name: address, address";
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Tables                                                             */

const struct alias *aliases_find(const struct aliases *al, const char *name)
{
    for (size_t i = 0; i < al->n; i++)
        if (strcasecmp(al->v[i].name, name) == 0)
            return &al->v[i];
    return NULL;
}

/* Splits "name: value" (the name possibly quoted); false with *why. */
static bool split_entry(char *s, char **name, char **value, const char **why)
{
    char *p = s;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++)
            if (*p == '\\' && p[1] != '\0')
                p++;
        if (*p != '"') {
            *why = "the quoted name has no closing '\"'";
            return false;
        }
        p++;
        char *end = p;
        while (is_blank(*p))
            p++;
        if (*p != ':') {
            *why = "expected ':' after the quoted name";
            return false;
        }
        *end = '\0';
    } else {
        while (*p && *p != ':' && !is_blank(*p))
            p++;
        char *end = p;
        while (is_blank(*p))
            p++;
        if (*p != ':' || end == s) {
            *why = "expected name: value (a name with spaces or special characters goes in "
                   "double quotes)";
            return false;
        }
        *end = '\0';
    }
    *name = s;
    *value = p + 1;
    while (is_blank(**value))
        (*value)++;
    return true;
}

static const char *keep_file_name(struct aliases *al, const char *name)
{
    for (size_t i = 0; i < al->nfiles; i++)
        if (strcmp(al->files[i], name) == 0)
            return al->files[i];
    char *copy = strdup(name);
    char **nv = copy ? realloc(al->files, (al->nfiles + 1) * sizeof *nv) : NULL;
    if (nv == NULL) {
        free(copy);
        return NULL;
    }
    al->files = nv;
    al->files[al->nfiles++] = copy;
    return copy;
}

enum aliases_status aliases_parse_text(struct aliases *al, const char *name, const char *text,
                                       size_t len, aliases_warn_fn warn, void *user,
                                       unsigned *nbad)
{
    struct text_lines t = {.text = text, .len = len, .reject_nul = true};
    enum text_status ts;
    enum aliases_status st = ALIASES_OK;
    unsigned bad = 0;
    const char *file = keep_file_name(al, name);
    if (file == NULL)
        return ALIASES_ERR_NOMEM;

    while (st == ALIASES_OK && (ts = text_next(&t)) != TEXT_END) {
        if (ts == TEXT_NOMEM) {
            st = ALIASES_ERR_NOMEM;
            break;
        }
        if (ts == TEXT_ORPHAN || ts == TEXT_NUL) {
            warnf(warn, user, "%s:%u: %s", name, t.lineno,
                  ts == TEXT_ORPHAN ? "a continuation line (it starts with white space) with no "
                                      "alias before it"
                                    : "a NUL byte in the line");
            bad++;
            if (ts == TEXT_NUL)
                break; /* text_next cannot go on past it */
            continue;
        }
        char *aname, *value;
        const char *why, *item;
        size_t n;
        if (!split_entry(t.buf, &aname, &value, &why)) {
            warnf(warn, user, "%s:%u: %s; the line is ignored", name, t.line, why);
            bad++;
            continue;
        }
        if ((why = check_value(value, &item, &n)) != NULL) {
            if (n > 0)
                warnf(warn, user, "%s:%u: alias %s: %.*s: %s; the alias is ignored", name, t.line,
                      aname, (int)n, item, why);
            else
                warnf(warn, user, "%s:%u: alias %s: %s; the alias is ignored", name, t.line, aname,
                      why);
            bad++;
            continue;
        }
        char *key = unquote(aname, strlen(aname));
        if (key == NULL) {
            st = ALIASES_ERR_NOMEM;
            break;
        }
        lower(key);
        const struct alias *old = aliases_find(al, key);
        if (old != NULL) {
            warnf(warn, user, "%s:%u: alias %s is defined again; the first definition (%s:%u) is used",
                  name, t.line, key, old->file, old->line);
            free(key);
            continue;
        }
        if (al->n == al->cap) {
            size_t ncap = al->cap ? al->cap * 2 : 32;
            struct alias *nv = realloc(al->v, ncap * sizeof *nv);
            if (nv == NULL) {
                free(key);
                st = ALIASES_ERR_NOMEM;
                break;
            }
            al->v = nv;
            al->cap = ncap;
        }
        char *v = strdup(value);
        if (v == NULL) {
            free(key);
            st = ALIASES_ERR_NOMEM;
            break;
        }
        al->v[al->n++] = (struct alias){key, v, file, t.line};
    }
    text_lines_free(&t);
    if (nbad != NULL)
        *nbad = bad;
    return st;
}

enum aliases_status aliases_load(struct aliases *al, const char *path, const char *key_name,
                                 aliases_warn_fn warn, void *user, unsigned *nbad, char *err,
                                 size_t errlen)
{
    char *text;
    size_t len;
    err[0] = '\0';
    if (nbad != NULL)
        *nbad = 0;
    int e = text_read_file(path, ALIASES_MAX_FILE, &text, &len);
    if (e == ENOMEM)
        return ALIASES_ERR_NOMEM;
    if (e == ENOENT) {
        snprintf(err, errlen, "alias file %s, named by %s, does not exist", path, key_name);
        return ALIASES_MISSING;
    }
    if (e != 0) {
        snprintf(err, errlen, "cannot read alias file %s, named by %s: %s", path, key_name,
                 e == EFBIG ? "larger than 8 MiB" : e == EINVAL ? "not a regular file" : strerror(e));
        return ALIASES_ERR_OPEN;
    }
    enum aliases_status st = aliases_parse_text(al, path, text, len, warn, user, nbad);
    free(text);
    return st;
}

void aliases_free(struct aliases *al)
{
    for (size_t i = 0; i < al->n; i++) {
        free(al->v[i].name);
        free(al->v[i].value);
    }
    free(al->v);
    for (size_t i = 0; i < al->nfiles; i++)
        free(al->files[i]);
    free(al->files);
    memset(al, 0, sizeof *al);
}

unsigned aliases_check(const struct aliases *al, aliases_warn_fn warn, void *user)
{
    unsigned count = 0;
    for (size_t i = 0; i < al->n; i++) {
        const struct alias *a = &al->v[i];
        const char *cur = a->value, *item;
        size_t n;
        while (next_item(&cur, &item, &n)) {
            char *payload;
            const char *why;
            enum item_kind k = classify(item, n, &payload, &why);
            if (k == ITEM_COMMAND || k == ITEM_FILE) {
                warnf(warn, user, "%s:%u: alias %s: %.*s: hato relays only and skips %s targets",
                      a->file, a->line, a->name, (int)n, item, k == ITEM_COMMAND ? "command" : "file");
                count++;
            } else if (k == ITEM_INCLUDE) {
                char *text;
                size_t len;
                int e = text_read_file(payload, ALIASES_MAX_FILE, &text, &len);
                if (e != 0) {
                    warnf(warn, user, "%s:%u: alias %s: cannot read %s: %s", a->file, a->line,
                          a->name, payload, e == EFBIG ? "larger than 8 MiB" : strerror(e));
                    count++;
                }
                free(text);
            }
            free(payload);
        }
    }
    return count;
}

/* ------------------------------------------------------------------ */
/* Expansion                                                          */

static bool in_chain(const struct aliases_expander *x, const char *name, size_t *at)
{
    for (size_t i = 0; i < x->depth; i++)
        if (strcmp(x->chain[i], name) == 0) {
            *at = i;
            return true;
        }
    return false;
}

static bool is_done(const struct aliases_expander *x, const char *name)
{
    for (size_t i = 0; i < x->ndone; i++)
        if (strcmp(x->done[i], name) == 0)
            return true;
    return false;
}

/* Records name as expanded; the copy it keeps is returned (NULL: out of
 * memory), and lives until aliases_expander_free(). */
static const char *mark_done(struct aliases_expander *x, const char *name)
{
    if (x->ndone == x->done_cap) {
        size_t ncap = x->done_cap ? x->done_cap * 2 : 16;
        char **nv = realloc(x->done, ncap * sizeof *nv);
        if (nv == NULL)
            return NULL;
        x->done = nv;
        x->done_cap = ncap;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return NULL;
    x->done[x->ndone++] = copy;
    return copy;
}

static int expand_items(struct aliases_expander *x, const char *value, const char *where,
                        const char *owner, size_t *count);

struct item_ctx {
    struct aliases_expander *x;
    size_t *count;
};

static int expand_one(void *user, const char *address)
{
    struct item_ctx *c = user;
    int rc = aliases_expand(c->x, address);
    if (rc == 0)
        (*c->count)++;
    return rc;
}

/* The addresses of an :include: file, one list per logical line. */
// NOLINTNEXTLINE(misc-no-recursion): bounded, :include: nests at most ALIASES_MAX_DEPTH
static int expand_include(struct aliases_expander *x, const char *path, const char *where,
                          const char *owner, size_t *count)
{
    char tag[4096];
    size_t at;
    snprintf(tag, sizeof tag, ":include:%s", path);
    if (in_chain(x, tag, &at)) {
        warnf(x->warn, x->user, "%s: alias %s: %s includes itself; skipped", where, owner, path);
        return 0;
    }
    if (x->depth >= ALIASES_MAX_DEPTH) {
        warnf(x->warn, x->user, "%s: alias %s: :include:%s nests deeper than %d levels; skipped",
              where, owner, path, ALIASES_MAX_DEPTH);
        return 0;
    }
    char *text;
    size_t len;
    int e = text_read_file(path, ALIASES_MAX_FILE, &text, &len);
    if (e == ENOMEM)
        return -1;
    if (e != 0) {
        warnf(x->warn, x->user, "%s: alias %s: cannot read %s: %s; skipped", where, owner, path,
              e == EFBIG ? "larger than 8 MiB" : strerror(e));
        return 0;
    }
    x->chain[x->depth++] = tag;
    struct text_lines t = {.text = text, .len = len, .reject_nul = true};
    enum text_status ts;
    int rc = 0;
    while (rc == 0 && (ts = text_next(&t)) != TEXT_END) {
        if (ts == TEXT_NOMEM) {
            rc = -1;
        } else if (ts == TEXT_LINE) {
            char w[4200];
            snprintf(w, sizeof w, "%s:%u", path, t.line);
            rc = expand_items(x, t.buf, w, owner, count);
        } else if (ts == TEXT_NUL) {
            warnf(x->warn, x->user, "%s:%u: a NUL byte; the rest of the file is skipped", path,
                  t.lineno);
            break;
        }
    }
    text_lines_free(&t);
    x->depth--;
    free(text);
    return rc;
}

/* Expands the targets in value (of alias owner, defined at where). */
// NOLINTNEXTLINE(misc-no-recursion): bounded, aliases nest at most ALIASES_MAX_DEPTH
static int expand_items(struct aliases_expander *x, const char *value, const char *where,
                        const char *owner, size_t *count)
{
    const char *cur = value, *item;
    size_t n;
    int rc = 0;
    while (rc == 0 && next_item(&cur, &item, &n)) {
        if (n == 0)
            continue;
        char *payload;
        const char *why;
        switch (classify(item, n, &payload, &why)) {
        case ITEM_COMMAND:
        case ITEM_FILE:
            warnf(x->warn, x->user, "%s: alias %s: %.*s is skipped: hato relays mail and runs no "
                                    "commands and writes no files", where, owner, (int)n, item);
            break;
        case ITEM_BAD:
            if (why == NULL)
                rc = -1;
            else
                warnf(x->warn, x->user, "%s: alias %s: %.*s: %s; skipped", where, owner, (int)n,
                      item, why);
            break;
        case ITEM_INCLUDE:
            rc = expand_include(x, payload, where, owner, count);
            break;
        case ITEM_NOALIAS:
            rc = x->deliver(x->user, payload);
            if (rc == 0)
                (*count)++;
            break;
        case ITEM_ADDRESS: {
            struct item_ctx c = {x, count};
            rc = headers_parse_addresses(item, n, expand_one, &c);
            break;
        }
        }
        free(payload);
    }
    return rc;
}

int aliases_expand(struct aliases_expander *x, const char *address)
{
    const char *domain;
    char *name = aliases_local_name(address, &domain);
    if (name == NULL)
        return -1;
    bool local = domain == NULL ||
                 (x->is_local_domain != NULL && x->is_local_domain(x->user, domain, strlen(domain)));
    const struct alias *a = local && x->table != NULL ? aliases_find(x->table, name) : NULL;
    int rc = 0;
    size_t at;

    if (a == NULL) {
        rc = x->deliver(x->user, address);
    } else if (in_chain(x, name, &at)) {
        /* The name's own mailbox, as Postfix does for "root: root, admin";
         * a loop through other names is a mistake worth a warning. */
        if (at + 1 != x->depth) {
            char path[1024] = "";
            for (size_t i = at; i < x->depth; i++) {
                size_t k = strlen(path);
                snprintf(path + k, sizeof path - k, "%s -> ", x->chain[i]);
            }
            warnf(x->warn, x->user, "alias loop %s%s (%s:%u): %s is kept as an address", path,
                  name, a->file, a->line, address);
        }
        rc = x->deliver(x->user, address);
    } else if (is_done(x, name)) {
        rc = 0; /* its addresses were delivered already for this message */
    } else if (x->depth >= ALIASES_MAX_DEPTH) {
        warnf(x->warn, x->user, "aliases nest deeper than %d levels at %s (%s:%u): %s is kept as "
                                "an address", ALIASES_MAX_DEPTH, name, a->file, a->line, address);
        rc = x->deliver(x->user, address);
    } else {
        const char *kept = mark_done(x, name);
        if (kept == NULL) {
            free(name);
            return -1;
        }
        char where[1024];
        snprintf(where, sizeof where, "%s:%u", a->file, a->line);
        size_t count = 0;
        x->chain[x->depth++] = kept;
        rc = expand_items(x, a->value, where, kept, &count);
        x->depth--;
        if (rc == 0 && count == 0) {
            /* Never drop mail: the name itself, as if it had no alias. */
            warnf(x->warn, x->user, "%s: alias %s has no target hato can relay to; %s is kept as "
                                    "an address", where, kept, address);
            rc = x->deliver(x->user, address);
        }
    }
    free(name);
    return rc;
}

void aliases_expander_free(struct aliases_expander *x)
{
    for (size_t i = 0; i < x->ndone; i++)
        free(x->done[i]);
    free(x->done);
    x->done = NULL;
    x->ndone = x->done_cap = 0;
    x->depth = 0;
}
