/*
 * test_rewrite.c - canonical(5) / generic(5) text tables: the lookup
 * order, "@otherdomain" results, several tables, bad lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "rewrite.h"

static char warnings[4096];

static void on_warn(void *user, const char *message)
{
    (void)user;
    size_t n = strlen(warnings);
    snprintf(warnings + n, sizeof warnings - n, "%s\n", message);
}

static void add(struct rewrite_map *m, const char *name, const char *text)
{
    CHECK_INT(rewrite_map_add_text(m, name, text, strlen(text), on_warn, NULL), 0);
}

/* The result of a lookup, "-" when none applies. */
static const char *look(const struct rewrite_map *m, const char *address, bool local)
{
    static char buf[512];
    char *out = NULL;
    int rc = rewrite_lookup(m, address, local, &out);
    CHECK(rc == 0 || rc == 1);
    snprintf(buf, sizeof buf, "%s", rc == 1 ? out : "-");
    CHECK(rc == 1 || out == NULL);
    free(out);
    return buf;
}

static void test_forms(void)
{
    struct rewrite_map m = {0};
    warnings[0] = '\0';
    add(&m, "/etc/postfix/generic",
        "# generic(5)\n"
        "root@localhost.localdomain   alice@example.test\n"
        "bob                          robert@example.test\n"
        "@localhost.localdomain       host@example.test\n"
        "@old.example                 @new.example\n"
        "ROOT@Upper.Example           upper@example.test\n"
        "root@localhost.localdomain   second-line-ignored@example.test\n");
    CHECK_STR(warnings, "");
    /* user@domain first. */
    CHECK_STR(look(&m, "root@localhost.localdomain", true), "alice@example.test");
    /* Then user, only for a local domain. */
    CHECK_STR(look(&m, "bob@localhost.localdomain", true), "robert@example.test");
    CHECK_STR(look(&m, "bob@localhost.localdomain", false), "host@example.test");
    CHECK_STR(look(&m, "bob@remote.example", false), "-");
    CHECK_STR(look(&m, "bob", false), "robert@example.test");
    /* Then @domain. */
    CHECK_STR(look(&m, "daemon@localhost.localdomain", true), "host@example.test");
    /* "@otherdomain": the same user there. */
    CHECK_STR(look(&m, "carol@old.example", false), "carol@new.example");
    CHECK_STR(look(&m, "\"a b\"@old.example", false), "\"a b\"@new.example");
    /* Keys without case. */
    CHECK_STR(look(&m, "root@UPPER.example", false), "upper@example.test");
    CHECK_STR(look(&m, "Root@LOCALHOST.localdomain", true), "alice@example.test");
    /* Nothing for the null sender or an unknown address. */
    CHECK_STR(look(&m, "", true), "-");
    CHECK_STR(look(&m, "x@y.example", false), "-");
    rewrite_map_free(&m);

    /* An empty map rewrites nothing. */
    CHECK_STR(look(&m, "root@localhost.localdomain", true), "-");
}

static void test_tables(void)
{
    struct rewrite_map m = {0};
    warnings[0] = '\0';
    add(&m, "/first", "@example.lan first-domain@example.test\n");
    add(&m, "/second", "  orphan@example.test\n"
                       "root@example.lan second-full@example.test\n"
                       "bad-line-without-result\n"
                       "two results@example.test other@example.test\n");
    /* Each form in every table before the next form: the full address in
     * the second table beats @domain in the first. */
    CHECK_STR(look(&m, "root@example.lan", false), "second-full@example.test");
    CHECK_STR(look(&m, "other@example.lan", false), "first-domain@example.test");
    CHECK_HAS(warnings, "/second:1: a continuation line");
    CHECK_HAS(warnings, "/second:3: expected \"pattern address\" (one address)");
    CHECK_HAS(warnings, "/second:4: expected \"pattern address\"");
    rewrite_map_free(&m);

    /* Files: one read, one missing. */
    char path[] = "/tmp/hato-test-generic-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        const char *t = "@localhost alice@example.test\n";
        CHECK_INT(write(fd, t, strlen(t)), (long long)strlen(t));
        close(fd);
    }
    char err[512];
    char *paths[2] = {path, (char *)"/nonexistent/hato/generic"};
    CHECK_INT(rewrite_map_load(&m, "smtp_generic_maps", paths, 1, on_warn, NULL, err, sizeof err), 0);
    CHECK_STR(look(&m, "root@localhost", true), "alice@example.test");
    rewrite_map_free(&m);
    CHECK_INT(rewrite_map_load(&m, "smtp_generic_maps", paths, 2, on_warn, NULL, err, sizeof err), -2);
    CHECK_HAS(err, "cannot read /nonexistent/hato/generic, named by smtp_generic_maps");
    CHECK_HAS(err, "not its .db");
    rewrite_map_free(&m);
    unlink(path);

    CHECK_INT(rewrite_nsender_fields, 5);
    CHECK_STR(rewrite_sender_fields[0], "From");
}

int main(void)
{
    test_forms();
    test_tables();
    return check_finish("rewrite");
}
