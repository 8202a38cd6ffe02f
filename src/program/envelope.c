/*
 * envelope.c - who the message is from and to: the envelope sender (-f,
 * else the invoking user) rewritten through sender_canonical_maps and
 * smtp_generic_maps; the recipients (arguments, -t) with local ones
 * expanded through alias_maps; the header fields that change with them
 * (Bcc and Resent-Bcc removed, sender fields rewritten); and the two
 * commands about addresses, -bv and newaliases.
 *
 * A recipient is local when it is a bare name or its domain is listed in
 * mydestination (Postfix's idea of "this machine"); only local recipients
 * are looked up in the aliases.  Addresses are qualified with myorigin
 * after expansion, so "root" reaches its alias whatever myorigin is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "aliases.h"
#include "headers.h"
#include "program.h"
#include "rewrite.h"

/* ------------------------------------------------------------------ */
/* Addresses                                                          */

char *qualify(const char *addr, const char *origin)
{
    if (addr[0] == '\0' || rewrite_find_at(addr) != NULL)
        return strdup(addr);
    size_t n = strlen(addr) + 1 + strlen(origin) + 1;
    char *q = malloc(n);
    if (q != NULL)
        snprintf(q, n, "%s@%s", addr, origin);
    return q;
}

/* The domain n bytes at d is in mydestination. */
static bool in_mydestination(const struct config *c, const char *d, size_t n)
{
    if (n > 0 && d[n - 1] == '.') /* a fully qualified "host." */
        n--;
    for (size_t i = 0; i < c->nmydestination; i++)
        if (strlen(c->mydestination[i]) == n && strncasecmp(c->mydestination[i], d, n) == 0)
            return true;
    return false;
}

static bool is_local_domain(void *user, const char *domain, size_t n)
{
    struct program *pg = user;
    return in_mydestination(&pg->cfg, domain, n);
}

static void warn_say(void *user, const char *message)
{
    (void)user;
    say("warning: %s", message);
}

/* One final recipient, qualified, kept once. */
static int deliver(void *user, const char *address)
{
    struct program *pg = user;
    /* Past the limit the message is refused anyway (main.c): counting on
     * without comparing keeps a header of 100,000 addresses linear, not
     * quadratic (the input fuzzer's find). */
    if (pg->nrcpts > HATO_MAX_RECIPIENTS) {
        pg->nrcpts_over++;
        return 0;
    }
    char *q = qualify(address, pg->cfg.myorigin);
    if (q == NULL)
        return -1;
    for (size_t i = 0; i < pg->nrcpts; i++) {
        if (strcasecmp(pg->rcpts[i], q) == 0) { /* sent once, as Postfix does */
            free(q);
            return 0;
        }
    }
    if (pg->nrcpts == pg->rcpts_cap) {
        size_t ncap = pg->rcpts_cap ? pg->rcpts_cap * 2 : 8;
        char **v = realloc(pg->rcpts, ncap * sizeof *v);
        if (v == NULL) {
            free(q);
            return -1;
        }
        pg->rcpts = v;
        pg->rcpts_cap = ncap;
    }
    pg->rcpts[pg->nrcpts++] = q;
    return 0;
}

/* Reads alias_maps, once, when the first local recipient needs them.  A
 * missing or unreadable table only warns: mail to "root" still goes to
 * root@myorigin, and /etc/aliases is absent on many systems (no warning
 * then, unless alias_maps names it). */
static int load_aliases(struct program *pg)
{
    char err[1024];
    pg->aliases_loaded = true;
    for (size_t i = 0; i < pg->cfg.nalias_maps; i++) {
        enum aliases_status st = aliases_load(&pg->aliases, pg->cfg.alias_maps[i], "alias_maps",
                                              warn_say, NULL, NULL, err, sizeof err);
        if (st == ALIASES_ERR_NOMEM)
            return -1;
        if ((st == ALIASES_MISSING && pg->cfg.alias_maps_set) || st == ALIASES_ERR_OPEN)
            say("warning: %s; local recipients are sent as name@%s", err, pg->cfg.myorigin);
    }
    pg->expander = (struct aliases_expander){.table = &pg->aliases,
                                             .is_local_domain = is_local_domain,
                                             .deliver = deliver,
                                             .warn = warn_say,
                                             .user = pg};
    return 0;
}

int add_rcpt(void *user, const char *address)
{
    struct program *pg = user;
    pg->nparsed++;
    if (!pg->aliases_loaded) {
        const char *domain = strrchr(address, '@');
        bool local = rewrite_find_at(address) == NULL ||
                     (domain != NULL && in_mydestination(&pg->cfg, domain + 1, strlen(domain + 1)));
        if (!local)
            return deliver(pg, address);
        if (load_aliases(pg) != 0)
            return -1;
    }
    return aliases_expand(&pg->expander, address);
}

/* ------------------------------------------------------------------ */
/* The sender                                                         */

/* The domain of a qualified address is local for the "user" form of a
 * rewriting table: mydestination or myorigin (generic(5)). */
static bool rewrite_local(const struct config *c, const char *address)
{
    const char *at = strrchr(address, '@');
    if (at == NULL)
        return true;
    return strcasecmp(at + 1, c->myorigin) == 0 || in_mydestination(c, at + 1, strlen(at + 1));
}

/* address (qualified with myorigin for the lookup) through
 * sender_canonical_maps, then smtp_generic_maps: 1 with *out malloc'd, 0
 * unchanged, -1 out of memory. */
static int rewrite_sender(struct program *pg, const char *address, char **out)
{
    *out = NULL;
    if (address[0] == '\0')
        return 0;
    char *cur = qualify(address, pg->cfg.myorigin);
    if (cur == NULL)
        return -1;
    bool changed = false;
    const struct rewrite_map *maps[2] = {&pg->canonical, &pg->generic};
    for (int i = 0; i < 2; i++) {
        char *next;
        int rc = rewrite_lookup(maps[i], cur, rewrite_local(&pg->cfg, cur), &next);
        if (rc < 0) {
            free(cur);
            return -1;
        }
        if (rc > 0) {
            free(cur);
            cur = next;
            changed = true;
        }
    }
    if (!changed) {
        free(cur);
        return 0;
    }
    *out = cur;
    return 1;
}

static int first_address(void *user, const char *address)
{
    char **out = user;
    *out = strdup(address);
    return *out ? 1 : -1;
}

int envelope_sender(struct program *pg)
{
    char err[1024];
    int rc = rewrite_map_load(&pg->canonical, "sender_canonical_maps", pg->cfg.canonical_maps,
                              pg->cfg.ncanonical_maps, warn_say, NULL, err, sizeof err);
    if (rc == 0)
        rc = rewrite_map_load(&pg->generic, "smtp_generic_maps", pg->cfg.generic_maps,
                              pg->cfg.ngeneric_maps, warn_say, NULL, err, sizeof err);
    if (rc == -2) {
        say("%s", err);
        return EX_CONFIG;
    }
    if (rc != 0) {
        say("out of memory reading the address rewriting tables");
        return EX_TEMPFAIL;
    }

    /* -f, else the user at myorigin. */
    if (pg->args.sender != NULL) {
        char *a = NULL;
        rc = headers_parse_addresses(pg->args.sender, strlen(pg->args.sender), first_address, &a);
        if (rc < 0)
            return EX_TEMPFAIL;
        rc = envelope_set_sender(pg, a ? a : "");
        free(a);
    } else {
        rc = envelope_set_sender(pg, pg->user);
    }
    return rc == 0 ? EX_OK : EX_TEMPFAIL;
}

int envelope_set_sender(struct program *pg, const char *address)
{
    free(pg->sender);
    pg->sender = address[0] ? qualify(address, pg->cfg.myorigin) : strdup("");
    if (pg->sender == NULL)
        return -1;
    char *r;
    int rc = rewrite_sender(pg, pg->sender, &r);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        free(pg->sender);
        pg->sender = r;
    }
    return 0;
}

char *envelope_from_address(struct program *pg)
{
    if (pg->sender[0] != '\0')
        return strdup(pg->sender);
    /* The null sender: the From still names the user, rewritten too. */
    char *r, *q = qualify(pg->user, pg->cfg.myorigin);
    if (q == NULL)
        return NULL;
    int rc = rewrite_sender(pg, q, &r);
    if (rc < 0) {
        free(q);
        return NULL;
    }
    if (rc > 0) {
        free(q);
        return r;
    }
    return q;
}

static int rewrite_field_address(void *user, const char *address, char **replacement)
{
    return rewrite_sender(user, address, replacement);
}

int envelope_edit_header(struct program *pg, const char *h, size_t len, char **out,
                         size_t *outlen)
{
    if (headers_rewrite_addresses(h, len, rewrite_sender_fields, rewrite_nsender_fields,
                                  rewrite_field_address, pg, out, outlen) != 0)
        return -1;
    /* RFC 5322 section 3.6.3: Bcc is not passed on; nor is Resent-Bcc,
     * which Postfix drops too (message_drop_headers). */
    *outlen = headers_remove(*out, *outlen, "Bcc");
    *outlen = headers_remove(*out, *outlen, "Resent-Bcc");
    (*out)[*outlen] = '\0';
    return 0;
}

void envelope_free(struct program *pg)
{
    aliases_expander_free(&pg->expander);
    aliases_free(&pg->aliases);
    rewrite_map_free(&pg->canonical);
    rewrite_map_free(&pg->generic);
}

/* ------------------------------------------------------------------ */
/* -bv and newaliases                                                 */

int verify_recipients(struct program *pg)
{
    if (pg->sender[0] != '\0')
        printf("from=<%s>\n", pg->sender);
    else
        printf("from=<>\n");
    for (size_t i = 0; i < pg->nrcpts; i++)
        printf("to=<%s>\n", pg->rcpts[i]);
    return EX_OK;
}

/* newaliases reports bad lines as errors, not warnings. */
static void say_plain(void *user, const char *message)
{
    (void)user;
    say("%s", message);
}

int newaliases(struct program *pg)
{
    char err[1024];
    const char *one[1];
    char *const *files = pg->cfg.alias_database;
    size_t nfiles = pg->cfg.nalias_database;
    bool named = pg->cfg.alias_database_set;
    if (pg->args.alias_database != NULL) {
        /* -oA[type:]path, as Postfix's sendmail takes it. */
        const char *p = pg->args.alias_database;
        const char *colon = strchr(p, ':');
        if (p[0] != '/' && colon != NULL)
            p = colon + 1;
        one[0] = p;
        files = (char *const *)one;
        nfiles = 1;
        named = true;
    }
    if (nfiles == 0) {
        say("no alias file to check: alias_database is empty in %s", pg->cfg.path);
        return EX_OK;
    }
    int ex = EX_OK;
    for (size_t i = 0; i < nfiles; i++) {
        struct aliases al = {0};
        unsigned nbad = 0;
        enum aliases_status st = aliases_load(&al, files[i], pg->args.alias_database ? "-oA"
                                                                                     : "alias_database",
                                              say_plain, NULL, &nbad, err, sizeof err);
        if (st == ALIASES_ERR_NOMEM) {
            say("out of memory reading %s", files[i]);
            aliases_free(&al);
            return EX_TEMPFAIL;
        }
        if (st == ALIASES_MISSING && !named) {
            /* Many systems have no /etc/aliases; hato then needs none. */
            say("%s does not exist; local recipients are sent as name@%s", files[i],
                pg->cfg.myorigin);
        } else if (st != ALIASES_OK) {
            say("%s", err);
            ex = EX_CONFIG;
        } else {
            aliases_check(&al, warn_say, NULL);
            if (nbad > 0) {
                say("%s: %u bad line%s (listed above); hato skips them when it sends", files[i],
                    nbad, nbad == 1 ? "" : "s");
                ex = EX_CONFIG;
            }
            printf("%s: %zu alias%s\n", files[i], al.n, al.n == 1 ? "" : "es");
        }
        aliases_free(&al);
    }
    return ex;
}
