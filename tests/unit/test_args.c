/*
 * test_args.c - the sendmail command line.
 */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "check.h"

static char err[512];

static int parse(struct args *a, int argc, const char *const *argv)
{
    return args_parse(a, argc, (char **)argv, err, sizeof err);
}

#define ARGV(...) (const char *const[]){"hato", __VA_ARGS__, NULL}
#define ARGC(...) ((int)(sizeof((const char *const[]){"hato", __VA_ARGS__}) / sizeof(const char *)))
#define PARSE(a, ...) parse(a, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_defaults(void)
{
    struct args a;
    const char *const argv[] = {"sendmail", NULL};
    CHECK_INT(parse(&a, 1, argv), 0);
    CHECK(a.sender == NULL);
    CHECK(a.full_name == NULL);
    CHECK_STR(a.config, "/etc/hato.conf");
    CHECK(a.dot_ends);
    CHECK(!a.extract);
    CHECK_INT(a.verbose, 0);
    CHECK_INT(a.nrecipients, 0);
    args_free(&a);
}

static void test_forms(void)
{
    struct args a;
    CHECK_INT(PARSE(&a, "-f", "me@example.com", "you@example.com"), 0);
    CHECK_STR(a.sender, "me@example.com");
    CHECK_INT(a.nrecipients, 1);
    CHECK_STR(a.recipients[0], "you@example.com");
    args_free(&a);

    CHECK_INT(PARSE(&a, "-fme@example.com", "-Fthe Name", "-r", "other@example.com", "x"), 0);
    CHECK_STR(a.sender, "other@example.com"); /* the last one wins */
    CHECK_STR(a.full_name, "the Name");
    args_free(&a);

    CHECK_INT(PARSE(&a, "-F", "Full Name", "-C", "/tmp/h.conf", "x"), 0);
    CHECK_STR(a.full_name, "Full Name");
    CHECK_STR(a.config, "/tmp/h.conf");
    args_free(&a);

    CHECK_INT(PARSE(&a, "-C/tmp/joined.conf", "x"), 0);
    CHECK_STR(a.config, "/tmp/joined.conf");
    args_free(&a);

    CHECK_INT(PARSE(&a, "-i", "x"), 0);
    CHECK(!a.dot_ends);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-oi", "x"), 0);
    CHECK(!a.dot_ends);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-oem", "-odi", "-oQ/var/spool", "x"), 0);
    CHECK(a.dot_ends);
    CHECK_INT(a.nrecipients, 1);
    args_free(&a);

    CHECK_INT(PARSE(&a, "-t"), 0);
    CHECK(a.extract);
    CHECK_INT(a.nrecipients, 0);
    args_free(&a);

    /* Grouped flags, and a flag group ending in an option with argument. */
    CHECK_INT(PARSE(&a, "-tiv", "-vv", "-itf", "s@example.com"), 0);
    CHECK(a.extract);
    CHECK(!a.dot_ends);
    CHECK_INT(a.verbose, 3);
    CHECK_STR(a.sender, "s@example.com");
    args_free(&a);

    CHECK_INT(PARSE(&a, "-bm", "x"), 0);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-b", "m", "x"), 0);
    args_free(&a);

    /* Options after recipients (GNU getopt permutes), and "--". */
    CHECK_INT(PARSE(&a, "a@example.com", "-i", "b@example.com", "--", "-c@example.com", "-t"), 0);
    CHECK(!a.dot_ends);
    CHECK(!a.extract);
    CHECK_INT(a.nrecipients, 4);
    CHECK_STR(a.recipients[0], "a@example.com");
    CHECK_STR(a.recipients[1], "b@example.com");
    CHECK_STR(a.recipients[2], "-c@example.com");
    CHECK_STR(a.recipients[3], "-t");
    args_free(&a);

    /* An empty -f is the null sender. */
    CHECK_INT(PARSE(&a, "-f", "", "x"), 0);
    CHECK_STR(a.sender, "");
    args_free(&a);
}

static void test_errors(void)
{
    struct args a;
    CHECK_INT(PARSE(&a, "-x", "r"), -1);
    CHECK_HAS(err, "unknown option -x");
    CHECK_INT(PARSE(&a, "-tq"), -1);
    CHECK_HAS(err, "-q");
    CHECK_INT(PARSE(&a, "--help"), -1);
    CHECK_HAS(err, "--help");
    CHECK_INT(PARSE(&a, "-bp"), -1);
    CHECK_HAS(err, "-bp");
    CHECK_INT(PARSE(&a, "-f"), -1);
    CHECK_HAS(err, "-f needs an argument");
    CHECK_INT(PARSE(&a, "-f", "a@b\r\nRCPT TO:<x@y>"), -1);
    CHECK_HAS(err, "line break");
    CHECK_INT(PARSE(&a, "-fa@b\n"), -1);
    CHECK_HAS(err, "-f");
    CHECK_INT(PARSE(&a, "ok@example.com", "bad@example.com\nx"), -1);
    CHECK_HAS(err, "recipient argument 2");
    CHECK_INT(PARSE(&a, "-F", "Name\r\nBcc: x"), -1);
    CHECK_HAS(err, "-F");
    CHECK(args_has_line_break("a\rb"));
    CHECK(!args_has_line_break("ab"));
    CHECK_HAS(args_usage(), "usage: hato");
}

static void test_modes(void)
{
    struct args a;
    CHECK_INT(PARSE(&a, "-v"), 0);
    CHECK_INT(a.mode, ARGS_SEND);
    args_free(&a);

    CHECK_INT(PARSE(&a, "--probe", "-v", "-C", "/etc/x.conf", "-f", "me@example.com"), 0);
    CHECK_INT(a.mode, ARGS_PROBE);
    CHECK_INT(a.verbose, 1);
    CHECK_STR(a.config, "/etc/x.conf");
    CHECK_STR(a.sender, "me@example.com");
    CHECK_INT(a.nrecipients, 0);
    args_free(&a);
    CHECK_INT(PARSE(&a, "--probe", "root"), -1);
    CHECK_HAS(err, "--probe sends no mail");
    CHECK_HAS(err, "root");

    CHECK_INT(PARSE(&a, "--tofu-accept"), 0);
    CHECK_INT(a.mode, ARGS_TOFU_ACCEPT);
    CHECK(a.tofu_target == NULL);
    args_free(&a);
    CHECK_INT(PARSE(&a, "--tofu-accept", "[smtp.example.com]:465", "-C", "/c"), 0);
    CHECK_INT(a.mode, ARGS_TOFU_ACCEPT);
    CHECK_STR(a.tofu_target, "[smtp.example.com]:465");
    CHECK_STR(a.config, "/c");
    args_free(&a);
    CHECK_INT(PARSE(&a, "--tofu-accept", "-C", "/c"), 0);
    CHECK(a.tofu_target == NULL);
    args_free(&a);
    CHECK_INT(PARSE(&a, "--tofu-accept=[h]:587"), 0);
    CHECK_STR(a.tofu_target, "[h]:587");
    args_free(&a);
    CHECK_INT(PARSE(&a, "--tofu-accept", "[h]:587", "extra"), -1);
    CHECK_HAS(err, "--tofu-accept sends no mail");
    CHECK_INT(PARSE(&a, "--tofu-accept=[h]\n:587"), -1);
    CHECK_HAS(err, "line break");
    CHECK_INT(PARSE(&a, "--probes"), -1);
    CHECK_HAS(err, "unknown option --probes");
    CHECK_HAS(args_usage(), "hato --probe");
    CHECK_HAS(args_usage(), "hato --tofu-accept");
}

int main(void)
{
    test_defaults();
    test_forms();
    test_errors();
    test_modes();
    return check_finish("args");
}
