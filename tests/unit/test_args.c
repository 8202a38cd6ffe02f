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
    CHECK_INT(PARSE(&a, "-k", "r"), -1);
    CHECK_HAS(err, "unknown option -k");
    CHECK_INT(PARSE(&a, "-tk"), -1);
    CHECK_HAS(err, "unknown option -k");
    CHECK_INT(PARSE(&a, "--help"), -1);
    CHECK_HAS(err, "--help");
    CHECK_INT(PARSE(&a, "-bz"), -1);
    CHECK_HAS(err, "-bz");
    CHECK_INT(PARSE(&a, "-bd"), -1);
    CHECK_HAS(err, "not a daemon");
    CHECK_HAS(err, "hato -q");
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

/* Every option form sendmail programs pass (Postfix's sendmail(1)). */
static void test_sendmail_options(void)
{
    struct args a;

    /* Defaults of the new fields. */
    CHECK_INT(PARSE(&a, "x"), 0);
    CHECK(!a.queue_only);
    CHECK_INT(a.notify, 0);
    CHECK_INT(a.ret, ARGS_RET_UNSET);
    CHECK(a.envid == NULL);
    CHECK_INT(a.body, ARGS_BODY_UNSET);
    CHECK(a.syslog_tag == NULL);
    CHECK(a.alias_database == NULL);
    CHECK_INT(a.flush_interval, 0);
    args_free(&a);

    /* Delivery modes: -odq / -odd queue; -odi, -odb, -odf send now; the
     * last one wins. */
    CHECK_INT(PARSE(&a, "-odq", "x"), 0);
    CHECK(a.queue_only);
    CHECK_INT(a.mode, ARGS_SEND);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-odd", "x"), 0);
    CHECK(a.queue_only);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-odq", "-odi", "x"), 0);
    CHECK(!a.queue_only);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-o", "dq", "x"), 0);
    CHECK(a.queue_only);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-odb", "-odf", "x"), 0);
    CHECK(!a.queue_only);
    args_free(&a);

    /* Error modes and other -o letters: accepted, no effect. */
    CHECK_INT(PARSE(&a, "-oem", "-oep", "-oeq", "-oew", "-om", "-o7", "-o8", "-oXyz", "x"), 0);
    CHECK(a.dot_ends);
    CHECK(!a.queue_only);
    CHECK_INT(a.nrecipients, 1);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-oA/tmp/aliases"), 0);
    CHECK_STR(a.alias_database, "/tmp/aliases");
    args_free(&a);
    CHECK_INT(PARSE(&a, "-oA"), -1);
    CHECK_HAS(err, "-oA needs the alias file");

    /* -N */
    CHECK_INT(PARSE(&a, "-N", "never", "x"), 0);
    CHECK_INT(a.notify, ARGS_NOTIFY_NEVER);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-Nsuccess,delay,failure", "x"), 0);
    CHECK_INT(a.notify, ARGS_NOTIFY_SUCCESS | ARGS_NOTIFY_DELAY | ARGS_NOTIFY_FAILURE);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-N", "FAILURE, Delay", "x"), 0);
    CHECK_INT(a.notify, ARGS_NOTIFY_DELAY | ARGS_NOTIFY_FAILURE);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-N", "never,failure", "x"), -1);
    CHECK_HAS(err, "-N never,failure");
    CHECK_INT(PARSE(&a, "-N", "sometimes", "x"), -1);
    CHECK_HAS(err, "success, delay, failure");
    CHECK_INT(PARSE(&a, "-N", "", "x"), -1);

    /* -R, -V, -B */
    CHECK_INT(PARSE(&a, "-R", "hdrs", "-V", "env-42.x", "-B", "8BITMIME", "x"), 0);
    CHECK_INT(a.ret, ARGS_RET_HDRS);
    CHECK_STR(a.envid, "env-42.x");
    CHECK_INT(a.body, ARGS_BODY_8BITMIME);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-RFULL", "-Vid", "-B7bit", "x"), 0);
    CHECK_INT(a.ret, ARGS_RET_FULL);
    CHECK_STR(a.envid, "id");
    CHECK_INT(a.body, ARGS_BODY_7BIT);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-R", "some", "x"), -1);
    CHECK_HAS(err, "hdrs or full");
    CHECK_INT(PARSE(&a, "-B", "BINARYMIME", "x"), -1);
    CHECK_HAS(err, "7BIT or 8BITMIME");
    CHECK_HAS(err, "BINARYMIME is not offered"); /* the reason, not just "bad value" */
    CHECK_INT(PARSE(&a, "-B", "9BIT", "x"), -1);
    CHECK(strstr(err, "BINARYMIME") == NULL);
    CHECK_INT(PARSE(&a, "-V", "has space", "x"), -1);
    CHECK_HAS(err, "envelope id");
    CHECK_INT(PARSE(&a, "-V", "a\nb", "x"), -1);
    CHECK_INT(PARSE(&a, "-V", "a+b=c\\", "x"), 0); /* xtext-encoded when sent */
    args_free(&a);
    char longid[ARGS_MAX_ENVID + 2];
    memset(longid, 'e', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    CHECK_INT(PARSE(&a, "-V", longid, "x"), -1);
    longid[ARGS_MAX_ENVID] = '\0';
    CHECK_INT(PARSE(&a, "-V", longid, "x"), 0);
    args_free(&a);

    /* -L tag; -h hop count and the other ignored ones. */
    CHECK_INT(PARSE(&a, "-L", "cron-mail", "-h", "17", "-G", "-U", "-m", "-n", "-c", "-x",
                    "-Am", "-O", "DeliveryMode=b", "-X", "/tmp/log", "-e", "p", "-p", "smtp", "x"), 0);
    CHECK_STR(a.syslog_tag, "cron-mail");
    CHECK_INT(a.nrecipients, 1);
    CHECK_STR(a.recipients[0], "x");
    args_free(&a);
    CHECK_INT(PARSE(&a, "-L", "two words", "x"), -1);
    CHECK_HAS(err, "syslog tag");
    CHECK_INT(PARSE(&a, "-h"), -1);
    CHECK_HAS(err, "-h needs an argument");

    /* -v repeats, -C joined and apart, -r as -f. */
    CHECK_INT(PARSE(&a, "-v", "-vv", "-C/etc/alt.cf", "-rbounce@example.com", "x"), 0);
    CHECK_INT(a.verbose, 3);
    CHECK_STR(a.config, "/etc/alt.cf");
    CHECK_STR(a.sender, "bounce@example.com");
    args_free(&a);
}

static void test_queue_modes(void)
{
    struct args a;
    CHECK_INT(PARSE(&a, "-q"), 0);
    CHECK_INT(a.mode, ARGS_FLUSH);
    CHECK_INT(a.flush_interval, 0);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-q30m"), 0);
    CHECK_INT(a.mode, ARGS_FLUSH);
    CHECK_INT(a.flush_interval, 1800);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-q1h30m", "-v"), 0);
    CHECK_INT(a.flush_interval, 5400);
    CHECK_INT(a.verbose, 1);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-q15"), 0); /* minutes, as in sendmail */
    CHECK_INT(a.flush_interval, 900);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-qRexample.com"), 0);
    CHECK_INT(a.mode, ARGS_FLUSH);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-qI3F2A9C01B7"), 0);
    CHECK_INT(a.mode, ARGS_FLUSH);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-vq"), 0); /* grouped: -v, then -q */
    CHECK_INT(a.mode, ARGS_FLUSH);
    CHECK_INT(a.verbose, 1);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-q5x"), -1);
    CHECK_HAS(err, "-q5x");
    CHECK_INT(PARSE(&a, "-q", "root"), -1);
    CHECK_HAS(err, "-q sends no mail");

    CHECK_INT(PARSE(&a, "-bp"), 0);
    CHECK_INT(a.mode, ARGS_LIST);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-bp", "root"), -1);
    CHECK_HAS(err, "-bp sends no mail");
    CHECK_INT(PARSE(&a, "-bi"), 0);
    CHECK_INT(a.mode, ARGS_NEWALIASES);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-I"), 0);
    CHECK_INT(a.mode, ARGS_NEWALIASES);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-bs"), 0);
    CHECK_INT(a.mode, ARGS_SMTP_STDIO);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-bv", "root", "admin"), 0);
    CHECK_INT(a.mode, ARGS_VERIFY);
    CHECK_INT(a.nrecipients, 2);
    args_free(&a);
    CHECK_INT(PARSE(&a, "-bp", "-bm", "x"), 0); /* the last mode wins */
    CHECK_INT(a.mode, ARGS_SEND);
    args_free(&a);

    /* Invoked as mailq and newaliases. */
    const char *mq[] = {"/usr/bin/mailq", NULL};
    CHECK_INT(parse(&a, 1, mq), 0);
    CHECK_INT(a.mode, ARGS_LIST);
    args_free(&a);
    const char *mqv[] = {"mailq", "-v", "-C", "/c", NULL};
    CHECK_INT(parse(&a, 4, mqv), 0);
    CHECK_INT(a.mode, ARGS_LIST);
    CHECK_STR(a.config, "/c");
    args_free(&a);
    const char *na[] = {"/usr/sbin/newaliases", NULL};
    CHECK_INT(parse(&a, 1, na), 0);
    CHECK_INT(a.mode, ARGS_NEWALIASES);
    args_free(&a);
    const char *na2[] = {"newaliases", "-oA/etc/mail/aliases", NULL};
    CHECK_INT(parse(&a, 2, na2), 0);
    CHECK_INT(a.mode, ARGS_NEWALIASES);
    CHECK_STR(a.alias_database, "/etc/mail/aliases");
    args_free(&a);
    const char *sm[] = {"/usr/sbin/sendmail", "-t", NULL};
    CHECK_INT(parse(&a, 2, sm), 0);
    CHECK_INT(a.mode, ARGS_SEND);
    args_free(&a);
    const char *mqr[] = {"mailq", "root", NULL};
    CHECK_INT(parse(&a, 2, mqr), -1);
    CHECK_HAS(err, "-bp sends no mail");

    unsigned s = 0;
    CHECK_INT(args_parse_interval("2w", &s), 0);
    CHECK_INT(s, 1209600);
    CHECK_INT(args_parse_interval("1d2h3m4s", &s), 0);
    CHECK_INT(s, 86400 + 7200 + 180 + 4);
    CHECK_INT(args_parse_interval("", &s), -1);
    CHECK_INT(args_parse_interval("m", &s), -1);
    CHECK_INT(args_parse_interval("99999999999", &s), -1);
    CHECK_STR(args_mode_option(ARGS_NEWALIASES), "-bi");
}

/* Recipients and senders that could inject a header line or an SMTP
 * command are refused, whatever option carries them. */
static void test_injection(void)
{
    struct args a;
    CHECK_INT(PARSE(&a, "-r", "a@b\rMAIL FROM:<x>", "x"), -1);
    CHECK_HAS(err, "-r holds a line break");
    CHECK_INT(PARSE(&a, "--", "a@b\nc"), -1);
    CHECK_HAS(err, "recipient argument 2");
    CHECK_INT(PARSE(&a, "-t", "-f", "ok@example.com", "x@example.com\r"), -1);
    CHECK_HAS(err, "line break");
}

int main(void)
{
    test_defaults();
    test_forms();
    test_errors();
    test_modes();
    test_sendmail_options();
    test_queue_modes();
    test_injection();
    return check_finish("args");
}
