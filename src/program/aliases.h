/*
 * aliases.h - local recipients through aliases(5) files.
 *
 * hato reads the text file of an alias table (the file newaliases or
 * postalias is given, never the .db): "name: value, value", a line that
 * starts with white space continues the one before, lines whose first
 * non-blank character is '#' are comments, a name with special characters
 * is written in double quotes.  Names compare case-insensitively (postalias
 * folds them to lower case); the first definition of a name wins, as
 * postalias keeps it.
 *
 * hato relays only: a value may be an address (expanded again when it is
 * local), a bare name, "\name" (that name, not expanded further) or
 * ":include:/path" (the file's addresses, read when the alias is used);
 * "|command" and "/file" targets are skipped with a warning.
 *
 * Loops: a name met again while it is being expanded is not expanded again
 * but kept as an address, the way Postfix's local(8) delivers "root: root,
 * admin" to root's own mailbox -- here, the name at myorigin.  No address
 * is ever dropped: an alias whose every target was skipped keeps its own
 * name in the same way, with a warning.
 */
#ifndef HATO_PROGRAM_ALIASES_H
#define HATO_PROGRAM_ALIASES_H

#include <stdbool.h>
#include <stddef.h>

/* Larger alias or include files are refused: /etc/aliases has a few
 * hundred lines; a file of this size is not one. */
#define ALIASES_MAX_FILE (8u * 1024 * 1024)

/* Names expanded within names (and :include: within :include:) go at most
 * this deep; deeper, the name is kept as an address.  sendmail stops at 10
 * (MaxAliasRecursion). */
#define ALIASES_MAX_DEPTH 10

typedef void (*aliases_warn_fn)(void *user, const char *message);

struct alias {
    char *name;      /* lower case, unquoted */
    char *value;     /* as written, continuation lines joined */
    const char *file;/* the table's path, owned by struct aliases */
    unsigned line;
};

/* The tables read so far.  Start from {0}; aliases_free() frees it all. */
struct aliases {
    struct alias *v;
    size_t n, cap;
    char **files;
    size_t nfiles;
};

enum aliases_status {
    ALIASES_OK = 0,
    ALIASES_MISSING = 1,     /* the file does not exist */
    ALIASES_ERR_OPEN = -1,   /* cannot open or read it, or not a regular file */
    ALIASES_ERR_SYNTAX = -2, /* with strict parsing: a bad line */
    ALIASES_ERR_NOMEM = -3,
};

/* Adds the entries of text (name is the file, for messages).  Each bad
 * line is reported through warn as "FILE:LINE: what is wrong" and skipped,
 * as postalias skips it; *nbad (may be NULL) counts them.  Returns
 * ALIASES_OK or ALIASES_ERR_NOMEM. */
enum aliases_status aliases_parse_text(struct aliases *al, const char *name, const char *text,
                                       size_t len, aliases_warn_fn warn, void *user,
                                       unsigned *nbad);

/* The same for the file at path.  ALIASES_MISSING and ALIASES_ERR_OPEN
 * leave the table unchanged, with err holding one line naming the file
 * and key_name (the setting that named it). */
enum aliases_status aliases_load(struct aliases *al, const char *path, const char *key_name,
                                 aliases_warn_fn warn, void *user, unsigned *nbad, char *err,
                                 size_t errlen);

/* The entry for a name (compared without case), or NULL. */
const struct alias *aliases_find(const struct aliases *al, const char *name);

void aliases_free(struct aliases *al);

/* What newaliases reports beyond syntax: each target hato will skip
 * ("|command", "/file", an :include: file that cannot be read), through
 * warn as "FILE:LINE: ...".  Returns the number of warnings. */
unsigned aliases_check(const struct aliases *al, aliases_warn_fn warn, void *user);

/* The local part of address as an alias name: unquoted, lower case,
 * malloc'd; *domain points into address after its last '@' outside
 * quotes, or is NULL for a bare name.  NULL when out of memory. */
char *aliases_local_name(const char *address, const char **domain);

/* One expansion run: the whole envelope of one message shares it, so a
 * name is expanded once however many recipients lead to it. */
struct aliases_expander {
    const struct aliases *table;
    /* True when the domain (not NUL-terminated, n bytes) is local, as
     * mydestination says. */
    bool (*is_local_domain)(void *user, const char *domain, size_t n);
    /* Receives each resulting address: as written in the table or given,
     * possibly a bare name (the caller qualifies it).  0 to go on, -1
     * out of memory. */
    int (*deliver)(void *user, const char *address);
    aliases_warn_fn warn;
    void *user;

    /* Private: the names expanded so far, and the chain being expanded. */
    char **done;
    size_t ndone, done_cap;
    const char *chain[ALIASES_MAX_DEPTH + 1];
    size_t depth;
};

/* Expands one recipient: a local one (bare, or in a local domain) through
 * the table, anything else delivered as it is.  Returns 0 or -1 out of
 * memory (from deliver or here). */
int aliases_expand(struct aliases_expander *x, const char *address);

void aliases_expander_free(struct aliases_expander *x);

#endif
