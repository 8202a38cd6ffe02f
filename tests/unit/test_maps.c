/*
 * test_maps.c - the smtp_sasl_password_maps text file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "maps.h"
#include "wipe.h"

static enum maps_status lookup(const char *text, const char *host, unsigned port, char **u,
                               char **p, char *err, size_t n)
{
    wipe_free_str(*u);
    wipe_free_str(*p);
    return maps_lookup_text(text, strlen(text), "smtp_pass", host, (uint16_t)port, u, p, err, n);
}

static void test_order(void)
{
    char *u = NULL, *p = NULL, err[512];
    const char *all =
        "host.example u4:p4\n"
        "host.example:587 u3:p3\n"
        "[host.example] u2:p2\n"
        "[host.example]:587 u1:p1\n";
    CHECK_INT(lookup(all, "host.example", 587, &u, &p, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "u1");
    CHECK_STR(p, "p1");
    /* Another port: [host] comes before host:port and host. */
    CHECK_INT(lookup(all, "host.example", 465, &u, &p, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "u2");
    const char *no_brackets = "host.example u4:p4\nhost.example:587 u3:p3\n";
    CHECK_INT(lookup(no_brackets, "host.example", 587, &u, &p, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "u3");
    CHECK_INT(lookup(no_brackets, "host.example", 25, &u, &p, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "u4");
    /* Keys fold case, as postmap does. */
    CHECK_INT(lookup("[HOST.Example]:587 me:x\n", "host.example", 587, &u, &p, err, sizeof err),
              MAPS_FOUND);
    CHECK_STR(u, "me");
    CHECK_INT(lookup(all, "other.example", 587, &u, &p, err, sizeof err), MAPS_NOT_FOUND);
    CHECK(u == NULL && p == NULL);
    /* The first of duplicate keys wins. */
    CHECK_INT(lookup("[h]:587 a:1\n[h]:587 b:2\n", "h", 587, &u, &p, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "a");
    /* IPv6 literal. */
    CHECK_INT(lookup("[2001:db8::1]:587 v6:pw\n", "2001:db8::1", 587, &u, &p, err, sizeof err),
              MAPS_FOUND);
    CHECK_STR(u, "v6");
    wipe_free_str(u);
    wipe_free_str(p);
}

static void test_format(void)
{
    char *u = NULL, *p = NULL, err[512];
    const char *text =
        "# the provider\n"
        "\n"
        "   # indented comment\n"
        "[smtp.example.com]:587\talice@example.com:pa:ss word: with colons  \n"
        "[cont.example]:587\n"
        "    bob:secret\n";
    CHECK_INT(lookup(text, "smtp.example.com", 587, &u, &p, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "alice@example.com");
    CHECK_STR(p, "pa:ss word: with colons");
    CHECK_INT(lookup(text, "cont.example", 587, &u, &p, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "bob");
    CHECK_STR(p, "secret");
    CHECK_INT(lookup("[h]:587 user:\n", "h", 587, &u, &p, err, sizeof err), MAPS_FOUND);
    CHECK_STR(p, "");
    CHECK_INT(lookup("[h]:587 user:pw\r\n", "h", 587, &u, &p, err, sizeof err), MAPS_FOUND);
    CHECK_STR(p, "pw");

    CHECK_INT(lookup("x a:b\n[h]:587 nocolon\n", "h", 587, &u, &p, err, sizeof err), MAPS_ERR_SYNTAX);
    CHECK_HAS(err, "smtp_pass:2:");
    CHECK_HAS(err, "user:password");
    CHECK(strstr(err, "nocolon") == NULL); /* the value is never echoed */
    CHECK_INT(lookup("[h]:587\n", "h", 587, &u, &p, err, sizeof err), MAPS_ERR_SYNTAX);
    CHECK_HAS(err, "no value");
    CHECK_INT(lookup("  [h]:587 a:b\n", "h", 587, &u, &p, err, sizeof err), MAPS_ERR_SYNTAX);
    CHECK_HAS(err, "continuation");
    wipe_free_str(u);
    wipe_free_str(p);
}

static void test_file(void)
{
    char path[] = "/tmp/hato-test-pass-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    const char *text = "[smtp.example.com]:587 alice:correct horse\n";
    CHECK_INT(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);

    char *u = NULL, *p = NULL, err[1024];
    int e = 0;
    /* mkstemp makes mode 600. */
    CHECK_INT(maps_lookup(path, "smtp_sasl_password_maps", "smtp.example.com", 587, &u, &p, &e, err,
                          sizeof err), MAPS_FOUND);
    CHECK_STR(u, "alice");
    CHECK_STR(p, "correct horse");
    wipe_free_str(u);
    wipe_free_str(p);

    CHECK_INT(chmod(path, 0644), 0);
    CHECK_INT(maps_lookup(path, "smtp_sasl_password_maps", "smtp.example.com", 587, &u, &p, &e, err,
                          sizeof err), MAPS_ERR_MODE);
    char want[256];
    snprintf(want, sizeof want, "chmod 600 %s", path);
    CHECK_HAS(err, want);
    CHECK_HAS(err, "smtp_sasl_password_maps");
    CHECK_HAS(err, "644");
    CHECK(u == NULL && p == NULL);
    CHECK_INT(chmod(path, 0640), 0);
    CHECK_INT(maps_lookup(path, "k", "smtp.example.com", 587, &u, &p, &e, err, sizeof err), MAPS_ERR_MODE);
    CHECK_INT(chmod(path, 0604), 0);
    CHECK_INT(maps_lookup(path, "k", "smtp.example.com", 587, &u, &p, &e, err, sizeof err), MAPS_ERR_MODE);
    CHECK_INT(chmod(path, 0400), 0);
    CHECK_INT(maps_lookup(path, "k", "smtp.example.com", 587, &u, &p, &e, err, sizeof err), MAPS_FOUND);
    wipe_free_str(u);
    wipe_free_str(p);
    unlink(path);

    CHECK_INT(maps_lookup(path, "smtp_sasl_password_maps", "smtp.example.com", 587, &u, &p, &e, err,
                          sizeof err), MAPS_ERR_OPEN);
    CHECK_HAS(err, path);
    CHECK_HAS(err, "smtp_sasl_password_maps");
    CHECK_HAS(err, "No such file");

    /* Only the .db left: say hato reads the text file. */
    char db[300];
    snprintf(db, sizeof db, "%s.db", path);
    FILE *f = fopen(db, "w");
    CHECK(f != NULL);
    if (f != NULL)
        fclose(f);
    CHECK_INT(maps_lookup(path, "smtp_sasl_password_maps", "smtp.example.com", 587, &u, &p, &e, err,
                          sizeof err), MAPS_ERR_OPEN);
    CHECK_HAS(err, "not its .db");
    unlink(db);
}

/* A mode-600 file in dir holding text; its path in out. */
static void write_table(const char *dir, const char *name, const char *text, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    fputs(text, f);
    fclose(f);
    CHECK_INT(chmod(out, 0600), 0);
}

static void test_sender_dependent(void)
{
    char dir[] = "/tmp/hato-test-maps-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char a[300], b[300], err[1024], found[1200];
    /* Table a: the relay and a domain; table b: one exact sender. */
    write_table(dir, "a", "[smtp.example.com]:587 relayuser:r\n@example.org domainuser:d\n", a, sizeof a);
    write_table(dir, "b", "alice@example.org aliceuser:x\nsmtp.example.com hostuser:h\n", b, sizeof b);
    const char *both[] = {a, b};
    char *u = NULL, *p = NULL;
    int e = 0;

    /* Postfix's order: the exact address in every table first... */
    CHECK_INT(maps_find(both, 2, "smtp_sasl_password_maps", "alice@example.org", "smtp.example.com",
                        587, &u, &p, found, sizeof found, &e, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "aliceuser");
    CHECK_STR(p, "x");
    char want[700];
    snprintf(want, sizeof want, "%s alice@example.org", b);
    CHECK_STR(found, want);
    wipe_free_str(u);
    wipe_free_str(p);
    /* ...then @domain in every table... */
    CHECK_INT(maps_find(both, 2, "k", "bob@example.org", "smtp.example.com", 587, &u, &p, found,
                        sizeof found, &e, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "domainuser");
    snprintf(want, sizeof want, "%s @example.org", a);
    CHECK_STR(found, want);
    wipe_free_str(u);
    wipe_free_str(p);
    /* ...then the relay, each table for all its forms before the next. */
    CHECK_INT(maps_find(both, 2, "k", "carol@example.net", "smtp.example.com", 587, &u, &p, found,
                        sizeof found, &e, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "relayuser");
    snprintf(want, sizeof want, "%s [smtp.example.com]:587", a);
    CHECK_STR(found, want);
    wipe_free_str(u);
    wipe_free_str(p);
    const char *b_first[] = {b, a};
    CHECK_INT(maps_find(b_first, 2, "k", NULL, "smtp.example.com", 587, &u, &p, found, sizeof found,
                        &e, err, sizeof err), MAPS_FOUND);
    CHECK_STR(u, "hostuser");
    wipe_free_str(u);
    wipe_free_str(p);
    /* Not sender-dependent (NULL) and the null sender: the relay only. */
    CHECK_INT(maps_find(both, 2, "k", NULL, "smtp.example.com", 587, &u, &p, NULL, 0, &e, err,
                        sizeof err), MAPS_FOUND);
    CHECK_STR(u, "relayuser");
    wipe_free_str(u);
    wipe_free_str(p);
    CHECK_INT(maps_find(both, 2, "k", "", "smtp.example.com", 587, &u, &p, NULL, 0, &e, err,
                        sizeof err), MAPS_FOUND);
    CHECK_STR(u, "relayuser");
    wipe_free_str(u);
    wipe_free_str(p);
    CHECK_INT(maps_find(both, 2, "k", "x@y.example", "other.example", 587, &u, &p, NULL, 0, &e, err,
                        sizeof err), MAPS_NOT_FOUND);
    CHECK(u == NULL && p == NULL);
    /* An error in a table stops the search and names it. */
    CHECK_INT(chmod(b, 0644), 0);
    CHECK_INT(maps_find(both, 2, "smtp_sasl_password_maps", "alice@example.org", "smtp.example.com",
                        587, &u, &p, NULL, 0, &e, err, sizeof err), MAPS_ERR_MODE);
    CHECK_HAS(err, b);
    unlink(a);
    unlink(b);
    rmdir(dir);
}

/* sender_dependent_relayhost_maps: whole values (a relay holds ':'),
 * the address before "@domain" across tables, "<>" for the null sender,
 * and no mode check (the table holds no secret). */
static void test_sender_values(void)
{
    char dir[] = "/tmp/hato-test-maps-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char a[300], b[300], err[1024], found[1200];
    write_table(dir, "a", "@example.org [smtp.org.example]:587\n<> [bounce.example]:25\n", a,
                sizeof a);
    write_table(dir, "b", "alice@example.org  smtp.alice.example:2525\n", b, sizeof b);
    CHECK_INT(chmod(a, 0644), 0);
    const char *both[] = {a, b};
    char *v = NULL;
    int e = 0;

    CHECK_INT(maps_find_sender_value(both, 2, "sender_dependent_relayhost_maps",
                                     "alice@example.org", &v, found, sizeof found, &e, err,
                                     sizeof err), MAPS_FOUND);
    CHECK_STR(v, "smtp.alice.example:2525");
    CHECK_HAS(found, "alice@example.org");
    free(v);
    CHECK_INT(maps_find_sender_value(both, 2, "k", "bob@example.org", &v, found, sizeof found,
                                     &e, err, sizeof err), MAPS_FOUND);
    CHECK_STR(v, "[smtp.org.example]:587");
    CHECK_HAS(found, "@example.org");
    free(v);
    CHECK_INT(maps_find_sender_value(both, 2, "k", "", &v, NULL, 0, &e, err, sizeof err),
              MAPS_FOUND);
    CHECK_STR(v, "[bounce.example]:25");
    free(v);
    CHECK_INT(maps_find_sender_value(both, 2, "k", "carol@example.net", &v, NULL, 0, &e, err,
                                     sizeof err), MAPS_NOT_FOUND);
    CHECK(v == NULL);
    unlink(a);
    unlink(b);
    rmdir(dir);
}

int main(void)
{
    test_sender_values();
    test_order();
    test_format();
    test_file();
    test_sender_dependent();
    return check_finish("maps");
}
