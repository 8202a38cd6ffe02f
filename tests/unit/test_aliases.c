/*
 * test_aliases.c - aliases(5) files and the expansion of local recipients:
 * format (continuation lines, comments, quoted names, case), several
 * levels, loops, refused targets, :include:, the local-domain rule.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "aliases.h"
#include "check.h"

static char warnings[8192];
static char delivered[4096];

static void on_warn(void *user, const char *message)
{
    (void)user;
    size_t n = strlen(warnings);
    snprintf(warnings + n, sizeof warnings - n, "%s\n", message);
}

static int on_deliver(void *user, const char *address)
{
    (void)user;
    size_t n = strlen(delivered);
    snprintf(delivered + n, sizeof delivered - n, "%s|", address);
    return 0;
}

static bool local_domain(void *user, const char *domain, size_t n)
{
    (void)user;
    return (n == 9 && strncasecmp(domain, "localhost", n) == 0) ||
           (n == 17 && strncasecmp(domain, "host.home.example", n) == 0);
}

static void load(struct aliases *al, const char *text, unsigned *nbad)
{
    memset(al, 0, sizeof *al);
    warnings[0] = '\0';
    CHECK_INT(aliases_parse_text(al, "/etc/aliases", text, strlen(text), on_warn, NULL, nbad),
              ALIASES_OK);
}

/* Expands each of the ';'-separated recipients; returns what was
 * delivered, "a|b|". */
static const char *expand(const struct aliases *al, const char *rcpts)
{
    struct aliases_expander x = {.table = al, .is_local_domain = local_domain,
                                 .deliver = on_deliver, .warn = on_warn};
    delivered[0] = '\0';
    warnings[0] = '\0';
    char buf[512];
    snprintf(buf, sizeof buf, "%s", rcpts);
    for (char *save = NULL, *r = strtok_r(buf, ";", &save); r; r = strtok_r(NULL, ";", &save))
        CHECK_INT(aliases_expand(&x, r), 0);
    aliases_expander_free(&x);
    return delivered;
}

static void test_format(void)
{
    struct aliases al;
    unsigned bad = 99;
    load(&al,
         "# See man 5 aliases for format\n"
         "postmaster:    root\n"
         "\n"
         "ROOT: admin@example.org,\n"
         "   ops@example.org\n"
         "  # a comment inside the continuation\n"
         "\tlast@example.org\n"
         "\"john doe\": jd@example.org\n"
         "\"odd:name#1\" : odd@example.org\n"
         "spaced :  s@example.org  \n"
         "crlf: c@example.org\r\n"
         "root: second@example.org\n",
         &bad);
    CHECK_INT(bad, 0);
    CHECK_INT(al.n, 6);
    const struct alias *a = aliases_find(&al, "root");
    CHECK(a != NULL);
    if (a != NULL) {
        CHECK_STR(a->value, "admin@example.org, ops@example.org last@example.org");
        CHECK_INT(a->line, 4);
        CHECK_STR(a->file, "/etc/aliases");
    }
    CHECK(aliases_find(&al, "Root") != NULL);
    CHECK(aliases_find(&al, "john doe") != NULL);
    CHECK(aliases_find(&al, "odd:name#1") != NULL);
    CHECK(aliases_find(&al, "spaced") != NULL);
    a = aliases_find(&al, "crlf");
    CHECK(a != NULL && strcmp(a->value, "c@example.org") == 0);
    CHECK(aliases_find(&al, "nobody") == NULL);
    /* The first definition wins, as postalias keeps it. */
    CHECK_HAS(warnings, "/etc/aliases:12: alias root is defined again; the first definition "
                        "(/etc/aliases:4) is used");
    aliases_free(&al);

    load(&al,
         "  orphan@example.org\n"
         "no colon here\n"
         "empty:\n"
         "commas: , ,\n"
         "rel: :include:relative/path\n"
         "\"unclosed: x@example.org\n"
         "nothing: <>\n"
         "good: g@example.org\n",
         &bad);
    CHECK_INT(bad, 7);
    CHECK_INT(al.n, 1);
    CHECK_HAS(warnings, "/etc/aliases:1: a continuation line");
    CHECK_HAS(warnings, "/etc/aliases:2: expected name: value");
    CHECK_HAS(warnings, "/etc/aliases:3: alias empty: the alias has no value");
    CHECK_HAS(warnings, "/etc/aliases:4: alias commas: the alias has no value");
    CHECK_HAS(warnings, "/etc/aliases:5: alias rel: :include:relative/path: an :include: target "
                        "needs an absolute path");
    CHECK_HAS(warnings, "/etc/aliases:6: the quoted name has no closing");
    CHECK_HAS(warnings, "/etc/aliases:7: alias nothing: <>: this target holds no address");
    aliases_free(&al);

    char *d;
    const char *dom;
    d = aliases_local_name("\"John Doe\"@Example.ORG", &dom);
    CHECK_STR(d, "john doe");
    CHECK_STR(dom, "Example.ORG");
    free(d);
    d = aliases_local_name("Root", &dom);
    CHECK_STR(d, "root");
    CHECK(dom == NULL);
    free(d);
    d = aliases_local_name("\"a@b\"@c", &dom);
    CHECK_STR(d, "a@b");
    CHECK_STR(dom, "c");
    free(d);
}

static void test_expand(void)
{
    struct aliases al;
    load(&al,
         "root: admin@example.test\n"
         "postmaster: root\n"
         "webmaster: postmaster, Web Team <web@example.test>\n"
         "team: alice, bob@example.test,\n"
         "  root\n"
         "alice: alice@example.test\n"
         "\"john doe\": \"jd\"@example.test\n"
         "me: me, copy@example.test\n"
         "direct: \\root, other@example.test\n",
         NULL);

    /* The cron case, and several levels. */
    CHECK_STR(expand(&al, "root"), "admin@example.test|");
    CHECK_STR(expand(&al, "postmaster"), "admin@example.test|");
    CHECK_STR(expand(&al, "webmaster"), "admin@example.test|web@example.test|");
    CHECK_STR(expand(&al, "team"), "alice@example.test|bob@example.test|admin@example.test|");
    CHECK_STR(warnings, "");
    /* Case-insensitive names; a local domain; a remote one is not aliased. */
    CHECK_STR(expand(&al, "ROOT"), "admin@example.test|");
    CHECK_STR(expand(&al, "root@localhost"), "admin@example.test|");
    CHECK_STR(expand(&al, "Root@HOST.home.example"), "admin@example.test|");
    CHECK_STR(expand(&al, "root@example.test"), "root@example.test|");
    /* Quoted local parts. */
    CHECK_STR(expand(&al, "\"John Doe\""), "\"jd\"@example.test|");
    CHECK_STR(expand(&al, "\"john doe\"@localhost"), "\"jd\"@example.test|");
    /* No alias: as given (the caller qualifies bare names). */
    CHECK_STR(expand(&al, "nobody"), "nobody|");
    CHECK_STR(expand(&al, "nobody@localhost"), "nobody@localhost|");
    /* A name reached twice in one message is expanded once. */
    CHECK_STR(expand(&al, "root;postmaster;webmaster"), "admin@example.test|web@example.test|");
    /* "me: me, copy": the name's own mailbox, silently, as Postfix does. */
    CHECK_STR(expand(&al, "me"), "me|copy@example.test|");
    CHECK_STR(warnings, "");
    /* "\name" is not expanded further. */
    CHECK_STR(expand(&al, "direct"), "root|other@example.test|");
    aliases_free(&al);
}

static void test_loops_and_depth(void)
{
    struct aliases al;
    load(&al,
         "a: b\n"
         "b: c, x@example.test\n"
         "c: a\n",
         NULL);
    CHECK_STR(expand(&al, "a"), "a|x@example.test|");
    CHECK_HAS(warnings, "alias loop a -> b -> c -> a (/etc/aliases:1): a is kept as an address");
    /* The address kept is the one met at the loop: "c" from a's value. */
    CHECK_STR(expand(&al, "c@localhost"), "c|x@example.test|");
    CHECK_HAS(warnings, "alias loop c -> a -> b -> c");
    aliases_free(&al);

    /* A chain deeper than ALIASES_MAX_DEPTH stops with the name kept. */
    char text[2048] = "";
    for (int i = 0; i < ALIASES_MAX_DEPTH + 3; i++) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "n%d: n%d\n", i, i + 1);
    }
    load(&al, text, NULL);
    char want[32];
    snprintf(want, sizeof want, "n%d|", ALIASES_MAX_DEPTH);
    CHECK_STR(expand(&al, "n0"), want);
    CHECK_HAS(warnings, "aliases nest deeper than 10 levels");
    aliases_free(&al);
}

static void test_refused(void)
{
    struct aliases al;
    load(&al,
         "pipe: |/usr/bin/procmail, keep@example.test\n"
         "quoted: \"|/usr/bin/vacation -a x\", \"/var/mail/archive box\"\n"
         "file: /var/log/mail.archive\n"
         "mixed: root, /dev/null\n"
         "root: admin@example.test\n",
         NULL);
    CHECK_STR(expand(&al, "pipe"), "keep@example.test|");
    CHECK_HAS(warnings, "/etc/aliases:1: alias pipe: |/usr/bin/procmail is skipped: hato relays "
                        "mail and runs no commands");
    /* Every target refused: the name is kept, never dropped. */
    CHECK_STR(expand(&al, "quoted"), "quoted|");
    CHECK_HAS(warnings, "\"|/usr/bin/vacation -a x\" is skipped");
    CHECK_HAS(warnings, "\"/var/mail/archive box\" is skipped");
    CHECK_HAS(warnings, "alias quoted has no target hato can relay to; quoted is kept");
    CHECK_STR(expand(&al, "file@localhost"), "file@localhost|");
    CHECK_STR(expand(&al, "mixed"), "admin@example.test|");

    warnings[0] = '\0';
    CHECK_INT(aliases_check(&al, on_warn, NULL), 5);
    CHECK_HAS(warnings, "/etc/aliases:1: alias pipe: |/usr/bin/procmail: hato relays only and "
                        "skips command targets");
    CHECK_HAS(warnings, "/etc/aliases:3: alias file: /var/log/mail.archive: hato relays only and "
                        "skips file targets");
    aliases_free(&al);
}

static void test_include(void)
{
    char dir[] = "/tmp/hato-test-aliases-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char list[256], self[256], text[1024];
    snprintf(list, sizeof list, "%s/list", dir);
    snprintf(self, sizeof self, "%s/self", dir);
    FILE *f = fopen(list, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("# the list\none@example.test, two@example.test\n\nroot\n|/bin/cat\n", f);
        fclose(f);
    }
    f = fopen(self, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fprintf(f, ":include:%s\nself@example.test\n", self);
        fclose(f);
    }
    snprintf(text, sizeof text,
             "list: :include:%s\n"
             "quoted: \":include:%s\", extra@example.test\n"
             "self: :include:%s\n"
             "missing: :include:%s/none, fallback@example.test\n"
             "root: admin@example.test\n",
             list, list, self, dir);
    struct aliases al;
    load(&al, text, NULL);
    CHECK_STR(expand(&al, "list"), "one@example.test|two@example.test|admin@example.test|");
    CHECK_HAS(warnings, "/bin/cat is skipped");
    CHECK_STR(expand(&al, "quoted"),
              "one@example.test|two@example.test|admin@example.test|extra@example.test|");
    CHECK_STR(expand(&al, "self"), "self@example.test|");
    CHECK_HAS(warnings, "includes itself; skipped");
    CHECK_STR(expand(&al, "missing"), "fallback@example.test|");
    CHECK_HAS(warnings, "cannot read");
    warnings[0] = '\0';
    CHECK_INT(aliases_check(&al, on_warn, NULL), 1); /* only the unreadable include */
    CHECK_HAS(warnings, "alias missing: cannot read");
    aliases_free(&al);

    /* aliases_load: a real file, a missing one. */
    char err[512];
    unsigned bad = 9;
    memset(&al, 0, sizeof al);
    CHECK_INT(aliases_load(&al, list, "alias_maps", on_warn, NULL, &bad, err, sizeof err),
              ALIASES_OK);
    CHECK_INT(bad, 3); /* the include file's lines are not "name: value" */
    char none[300];
    snprintf(none, sizeof none, "%s/none", dir);
    CHECK_INT(aliases_load(&al, none, "alias_maps", on_warn, NULL, &bad, err, sizeof err),
              ALIASES_MISSING);
    CHECK_HAS(err, "named by alias_maps, does not exist");
    CHECK_INT(aliases_load(&al, dir, "alias_maps", on_warn, NULL, &bad, err, sizeof err),
              ALIASES_ERR_OPEN);
    CHECK_HAS(err, "not a regular file");
    aliases_free(&al);

    unlink(list);
    unlink(self);
    rmdir(dir);
}

int main(void)
{
    test_format();
    test_expand();
    test_loops_and_depth();
    test_refused();
    test_include();
    return check_finish("aliases");
}
