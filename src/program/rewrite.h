/*
 * rewrite.h - sender address rewriting with Postfix canonical(5) and
 * generic(5) text tables (sender_canonical_maps, smtp_generic_maps).
 *
 * A table's lines are "pattern result": pattern user@domain, user, or
 * @domain; result an address, or @otherdomain for "the same user in
 * otherdomain".  Lookup order, per generic(5): the whole address, then the
 * user part alone when the domain is local (mydestination or myorigin),
 * then @domain; each form is tried in every table before the next form.
 * Keys compare case-insensitively, as postmap folds them.
 *
 * hato rewrites the envelope sender and the sender header fields (From,
 * Sender, Reply-To, Resent-From, Resent-Sender): sender_canonical_maps
 * first, as Postfix's cleanup applies it on arrival, then smtp_generic_maps,
 * as Postfix's smtp client applies it on the way out.
 */
#ifndef HATO_PROGRAM_REWRITE_H
#define HATO_PROGRAM_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

/* A larger table is refused: these tables hold a few lines per user. */
#define REWRITE_MAX_FILE (8u * 1024 * 1024)

typedef void (*rewrite_warn_fn)(void *user, const char *message);

struct rewrite_entry {
    char *key;
    char *value;
};

struct rewrite_table {
    char *name;                 /* the file, for messages */
    struct rewrite_entry *v;
    size_t n, cap;
};

/* The tables of one setting, in lookup order.  Start from {0}. */
struct rewrite_map {
    struct rewrite_table *t;
    size_t n;
};

/* Adds a table from text (name for messages).  A line without a result is
 * reported through warn as "FILE:LINE: ..." and skipped, as postmap skips
 * it.  The first line of a key wins.  Returns 0 or -1 out of memory. */
int rewrite_map_add_text(struct rewrite_map *m, const char *name, const char *text, size_t len,
                         rewrite_warn_fn warn, void *user);

/* Adds the tables at paths (named by key_name).  Returns 0; -1 out of
 * memory; -2 when a file cannot be read, with err naming it and key_name. */
int rewrite_map_load(struct rewrite_map *m, const char *key_name, char *const *paths,
                     size_t npaths, rewrite_warn_fn warn, void *user, char *err, size_t errlen);

void rewrite_map_free(struct rewrite_map *m);

/* Looks address up.  Returns 1 with *out (malloc'd) the new address, 0
 * when no entry applies (or for the null sender ""), -1 out of memory.
 * local_domain says whether the address's domain is local (then the
 * "user" form applies); a bare name never matches "user@domain" forms. */
/* The last '@' outside a quoted local part of address a, or NULL: where
 * its domain starts, and whether it has one at all. */
const char *rewrite_find_at(const char *a);

int rewrite_lookup(const struct rewrite_map *m, const char *address, bool local_domain,
                   char **out);

/* The header fields hato rewrites the addresses of. */
extern const char *const rewrite_sender_fields[];
extern const size_t rewrite_nsender_fields;

#endif
