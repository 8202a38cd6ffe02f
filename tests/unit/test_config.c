/*
 * test_config.c - the main.cf-syntax configuration parser.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char warnings[8192];

static void on_warn(void *user, const char *message)
{
    (void)user;
    size_t n = strlen(warnings);
    snprintf(warnings + n, sizeof warnings - n, "%s\n", message);
}

static const struct config_env env = {"mail.example.org", on_warn, NULL};

static enum config_status parse(struct config *c, const char *text, char *err, size_t n)
{
    warnings[0] = '\0';
    config_free(c);
    return config_parse(c, "main.cf", text, strlen(text), &env, err, n);
}

static void test_defaults(void)
{
    struct config c = {0};
    char err[1024];
    CHECK_INT(parse(&c, "", err, sizeof err), CONFIG_OK);
    CHECK(c.relay_host == NULL);
    CHECK_INT(c.tls_level, HATO_TLS_VERIFY);
    CHECK(!c.tls_wrapper);
    CHECK(!c.sasl_enable);
    CHECK(c.auth_soft_bounce);
    CHECK_INT(c.sasl_plain, HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS);
    /* Not Postfix's default: plaintext mechanisms are fine inside TLS. */
    CHECK_INT(c.sasl_tls, HATO_SASL_NOANONYMOUS);
    CHECK_INT(c.family, HATO_FAMILY_ANY);
    CHECK_STR(c.myhostname, "mail.example.org");
    CHECK_STR(c.mydomain, "example.org");
    CHECK_STR(c.myorigin, "mail.example.org");
    CHECK_STR(c.helo_name, "mail.example.org");
    CHECK(c.maillog_file == NULL);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_CONNECT], 30000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_HELO], 300000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_STARTTLS], 300000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_MAIL], 300000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_RCPT], 300000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_DATA_INIT], 120000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_DATA_XFER], 180000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_DATA_DONE], 600000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_QUIT], 300000);
    CHECK_STR(warnings, "");
    config_free(&c);
}

/* The guide's settings, as users paste them, with comments and a
 * continuation line. */
static void test_guide(void)
{
    struct config c = {0};
    char err[1024];
    const char *text =
        "# OP25B\n"
        "relayhost = [smtp.provider.example]:587\n"
        "\n"
        "  # an indented comment does not end the logical line\n"
        "smtp_sasl_auth_enable = yes\n"
        "smtp_sasl_password_maps = hash:/etc/postfix/smtp_pass\n"
        "smtp_sasl_tls_security_options = noanonymous\n"
        "smtp_sasl_mechanism_filter = plain,\n"
        "    login\n"
        "smtp_tls_security_level = may\n"
        "smtp_tls_loglevel = 1\n"
        "inet_protocols = ipv4\n"
        "smtpd_banner = $myhostname ESMTP $mail_name\n"
        "mydestination = $myhostname, localhost.$mydomain, localhost\n";
    CHECK_INT(parse(&c, text, err, sizeof err), CONFIG_OK);
    CHECK_STR(err, "");
    CHECK_STR(c.relay_host, "smtp.provider.example");
    CHECK_INT(c.relay_port, 587);
    CHECK(c.relay_bracketed);
    CHECK_INT(c.relay_line, 2);
    CHECK(c.sasl_enable);
    CHECK_INT(c.npassword_maps, 1);
    CHECK_STR(c.password_maps[0], "/etc/postfix/smtp_pass");
    CHECK_INT(c.password_maps_line, 6);
    CHECK_INT(c.sasl_tls, HATO_SASL_NOANONYMOUS);
    CHECK_INT(c.sasl_plain, HATO_SASL_NOANONYMOUS | HATO_SASL_NOPLAINTEXT);
    CHECK_STR(c.mech_filter, "plain, login");
    CHECK_INT(c.tls_level, HATO_TLS_MAY);
    CHECK_INT(c.tls_loglevel, 1);
    CHECK_INT(c.family, HATO_FAMILY_IPV4);
    CHECK_STR(warnings, "");
    config_free(&c);
}

static void test_relayhost(void)
{
    struct config c = {0};
    char err[1024];

    CHECK_INT(parse(&c, "relayhost = smtp.example.com:2525\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.relay_host, "smtp.example.com");
    CHECK_INT(c.relay_port, 2525);
    CHECK(!c.relay_bracketed);
    CHECK_HAS(warnings, "does not look up MX records");
    CHECK_HAS(warnings, "write [smtp.example.com]:2525 to silence");
    CHECK_HAS(warnings, "main.cf:1");

    CHECK_INT(parse(&c, "relayhost = [2001:db8::25]:465\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.relay_host, "2001:db8::25");
    CHECK_INT(c.relay_port, 465);
    CHECK_STR(warnings, "");

    CHECK_INT(parse(&c, "relayhost = [ipv6:2001:db8::25]\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.relay_host, "2001:db8::25");
    CHECK_INT(c.relay_port, 0);

    CHECK_INT(parse(&c, "relayhost = [smtp.example.com]\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.relay_host, "smtp.example.com");
    CHECK_INT(c.relay_port, 0);

    CHECK_INT(parse(&c, "relayhost = smtp.example.com\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.relay_port, 0);
    CHECK(!c.relay_bracketed);

    CHECK_INT(parse(&c, "relayhost = [smtp.example.com]:submission\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.relay_port, 587);

    CHECK_INT(parse(&c, "\nrelayhost = [smtp.example.com]:99999\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:2:");
    CHECK_HAS(err, "relayhost = [smtp.example.com]:99999");
    CHECK_HAS(err, "1 to 65535");

    CHECK_INT(parse(&c, "relayhost = 2001:db8::25\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "brackets");

    CHECK_INT(parse(&c, "relayhost = [smtp.example.com\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "accepted: [host]:port");

    CHECK_INT(parse(&c, "relayhost = a.example, b.example\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "one relay");

    /* $mydomain expands in relayhost too. */
    CHECK_INT(parse(&c, "mydomain = example.net\nrelayhost = [smtp.$mydomain]\n", err, sizeof err),
              CONFIG_OK);
    CHECK_STR(c.relay_host, "smtp.example.net");
    config_free(&c);
}

static void test_expansion(void)
{
    struct config c = {0};
    char err[1024];

    CHECK_INT(parse(&c, "myorigin = $mydomain\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.myorigin, "example.org");

    CHECK_INT(parse(&c, "myhostname = host.a.example\nmyorigin = ${mydomain}\n"
                        "smtp_helo_name = $(myhostname)\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.mydomain, "a.example");
    CHECK_STR(c.myorigin, "a.example");
    CHECK_STR(c.helo_name, "host.a.example");

    /* Order in the file does not matter; later assignments win. */
    CHECK_INT(parse(&c, "myorigin = $mydomain\nmydomain = one.example\nmydomain = two.example\n",
                    err, sizeof err), CONFIG_OK);
    CHECK_STR(c.myorigin, "two.example");

    /* Unknown references are left as written. */
    CHECK_INT(parse(&c, "maillog_file = /var/log/$unknown_thing.log\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.maillog_file, "/var/log/$unknown_thing.log");

    /* smtp_sasl_tls_security_options is independent of the plain-link
     * setting, and takes $references like any value. */
    CHECK_INT(parse(&c, "smtp_sasl_security_options = noanonymous\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.sasl_tls, HATO_SASL_NOANONYMOUS);
    CHECK_INT(c.sasl_plain, HATO_SASL_NOANONYMOUS);
    CHECK_INT(parse(&c, "smtp_sasl_tls_security_options = $smtp_sasl_security_options\n",
                    err, sizeof err), CONFIG_OK);
    CHECK_INT(c.sasl_tls, HATO_SASL_NOPLAINTEXT | HATO_SASL_NOANONYMOUS);

    /* A loop is an error, not a hang. */
    CHECK_INT(parse(&c, "myhostname = $myorigin\nmyorigin = $myhostname\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_HAS(err, "nest too deep");

    /* A host name without dots: mydomain is "localdomain" as in Postfix. */
    CHECK_INT(parse(&c, "myhostname = box\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.mydomain, "localdomain");
    config_free(&c);
}

static void test_syntax(void)
{
    struct config c = {0};
    char err[1024];

    CHECK_INT(parse(&c, "relayhost = [a.example]\nthis line has no equals sign\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:2:");
    CHECK_HAS(err, "key = value");

    CHECK_INT(parse(&c, "   leading = continuation\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1:");
    CHECK_HAS(err, "continuation");

    /* CRLF files load. */
    CHECK_INT(parse(&c, "relayhost = [a.example]:587\r\nsmtp_tls_security_level = encrypt\r\n",
                    err, sizeof err), CONFIG_OK);
    CHECK_STR(c.relay_host, "a.example");
    CHECK_INT(c.tls_level, HATO_TLS_ENCRYPT);

    /* Continuation across several lines keeps the first line's number. */
    CHECK_INT(parse(&c, "a = b\nsmtp_tls_loglevel =\n\t\n   9\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:2:");
    CHECK_HAS(err, "smtp_tls_loglevel = 9");
    CHECK_HAS(err, "0 to 4");
    config_free(&c);
}

static void test_values(void)
{
    struct config c = {0};
    char err[1024];

    CHECK_INT(parse(&c, "smtp_tls_security_level = secure\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_tls_security_level = secure");
    CHECK_HAS(err, "later version");
    CHECK_HAS(err, "none, may, encrypt or verify");
    CHECK_INT(parse(&c, "smtp_tls_security_level = dane\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "later version");
    CHECK_INT(parse(&c, "smtp_tls_security_level = bogus\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "unknown level");
    CHECK_INT(parse(&c, "smtp_tls_security_level = none\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_level, HATO_TLS_NONE);
    CHECK_INT(parse(&c, "smtp_tls_security_level = verify\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_level, HATO_TLS_VERIFY);

    CHECK_INT(parse(&c, "smtp_tls_wrappermode = yes\n", err, sizeof err), CONFIG_OK);
    CHECK(c.tls_wrapper);
    CHECK_INT(parse(&c, "smtp_tls_wrappermode = maybe\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "smtp_tls_wrappermode = maybe");
    CHECK_HAS(err, "yes or no");

    CHECK_INT(parse(&c, "smtp_sasl_auth_soft_bounce = no\nsmtp_sasl_auth_enable = yes\n", err,
                    sizeof err), CONFIG_OK);
    CHECK(!c.auth_soft_bounce);
    CHECK(c.sasl_enable);

    CHECK_INT(parse(&c, "inet_protocols = ipv6\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.family, HATO_FAMILY_IPV6);
    CHECK_INT(parse(&c, "inet_protocols = ipv4, ipv6\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.family, HATO_FAMILY_ANY);
    CHECK_INT(parse(&c, "inet_protocols = all\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.family, HATO_FAMILY_ANY);
    CHECK_INT(parse(&c, "inet_protocols = ipx\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "inet_protocols = ipx");

    CHECK_INT(parse(&c, "smtp_sasl_security_options = noanonymous, nodictionary\n", err, sizeof err),
              CONFIG_OK);
    CHECK_INT(c.sasl_plain, HATO_SASL_NOANONYMOUS);
    CHECK_HAS(warnings, "nodictionary");
    CHECK_INT(parse(&c, "smtp_sasl_security_options =\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.sasl_plain, 0);

    CHECK_INT(parse(&c, "smtp_sasl_password_maps = lmdb:/etc/postfix/smtp_pass\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1:");
    CHECK_HAS(err, "lmdb");
    CHECK_INT(parse(&c, "smtp_sasl_password_maps = mysql:/etc/postfix/mysql.cf\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_HAS(err, "mysql");
    CHECK_INT(parse(&c, "smtp_sasl_password_maps = texthash:/a, /b\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.npassword_maps, 2);
    CHECK_STR(c.password_maps[0], "/a");
    CHECK_STR(c.password_maps[1], "/b");
    CHECK_INT(parse(&c, "smtp_sasl_password_maps = hash:relative\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "absolute");

    CHECK_INT(parse(&c, "maillog_file = /var/log/hato.log\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.maillog_file, "/var/log/hato.log");
    config_free(&c);
}

static void test_times(void)
{
    unsigned ms = 0;
    CHECK_INT(config_parse_time("30s", &ms), 0);
    CHECK_INT(ms, 30000);
    CHECK_INT(config_parse_time("5m", &ms), 0);
    CHECK_INT(ms, 300000);
    CHECK_INT(config_parse_time("1h", &ms), 0);
    CHECK_INT(ms, 3600000);
    CHECK_INT(config_parse_time("1d", &ms), 0);
    CHECK_INT(ms, 86400000);
    CHECK_INT(config_parse_time("1w", &ms), 0);
    CHECK_INT(ms, 604800000);
    CHECK_INT(config_parse_time("45", &ms), 0);
    CHECK_INT(ms, 45000);
    CHECK_INT(config_parse_time("", &ms), -1);
    CHECK_INT(config_parse_time("5x", &ms), -1);
    CHECK_INT(config_parse_time("s", &ms), -1);
    CHECK_INT(config_parse_time("5 m", &ms), -1);
    CHECK_INT(config_parse_time("99999999w", &ms), -1);

    struct config c = {0};
    char err[1024];
    CHECK_INT(parse(&c, "smtp_connect_timeout = 10s\nsmtp_data_done_timeout = 20m\n"
                        "smtp_quit_timeout = 7\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_CONNECT], 10000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_DATA_DONE], 1200000);
    CHECK_INT(c.timeout_ms[HATO_TIMEOUT_QUIT], 7000);
    CHECK_INT(parse(&c, "smtp_rcpt_timeout = soon\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_rcpt_timeout = soon");
    CHECK_HAS(err, "30s, 5m, 1h");
    CHECK_INT(parse(&c, "smtp_helo_timeout = 0\n", err, sizeof err), CONFIG_INVALID);
    CHECK_STR(config_timeout_key(HATO_TIMEOUT_DATA_XFER), "smtp_data_xfer_timeout");
    config_free(&c);
}

static void test_misspellings(void)
{
    struct config c = {0};
    char err[1024];

    CHECK_INT(parse(&c, "smtp_sasl_pasword_maps = hash:/x\nrelay_host = [a.example]\n"
                        "smtp_tls_cafile = /etc/ssl/certs/ca.pem\n", err, sizeof err), CONFIG_OK);
    CHECK_HAS(warnings, "main.cf:1: unknown key smtp_sasl_pasword_maps is ignored; did you mean smtp_sasl_password_maps?");
    CHECK_HAS(warnings, "main.cf:2: unknown key relay_host is ignored; did you mean relayhost?");
    CHECK_HAS(warnings, "did you mean smtp_tls_CAfile?");
    CHECK(c.relay_host == NULL);

    /* Real Postfix keys near ours are not misspellings. */
    CHECK_INT(parse(&c, "smtpd_tls_CAfile = /x\nlmtp_tls_CAfile = /x\nsmtp_rset_timeout = 20s\n"
                        "smtpd_tls_loglevel = 1\nalias_maps = hash:/etc/aliases\n", err, sizeof err),
              CONFIG_OK);
    CHECK_STR(warnings, "");

    CHECK_INT(config_edit_distance("relayhost", "relay_host"), 1);
    CHECK_INT(config_edit_distance("myorigin", "myoirgin"), 1);
    CHECK_INT(config_edit_distance("abc", "abc"), 0);
    CHECK_INT(config_edit_distance("", "abc"), 3);
    config_free(&c);
}

static void test_capath_file(void)
{
    char path[] = "/tmp/hato-test-ca-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    struct config c = {0};
    char err[1024], text[256];

    snprintf(text, sizeof text, "smtp_tls_CApath = %s\n", path);
    CHECK_INT(parse(&c, text, err, sizeof err), CONFIG_OK);
    CHECK_STR(c.ca_file, path);
    CHECK(c.ca_path == NULL);
    CHECK_HAS(warnings, "smtp_tls_CApath");
    CHECK_HAS(warnings, "smtp_tls_CAfile");
    CHECK_HAS(warnings, path);

    CHECK_INT(parse(&c, "smtp_tls_CApath = /tmp\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.ca_path, "/tmp");
    CHECK(c.ca_file == NULL);
    CHECK_STR(warnings, "");

    snprintf(text, sizeof text, "smtp_tls_CAfile = /etc/ca.pem\nsmtp_tls_CApath = %s\n", path);
    CHECK_INT(parse(&c, text, err, sizeof err), CONFIG_OK);
    CHECK_STR(c.ca_file, "/etc/ca.pem");
    CHECK(c.ca_path == NULL);
    CHECK_HAS(warnings, "ignored");
    unlink(path);
    config_free(&c);
}

static void test_load(void)
{
    char path[] = "/tmp/hato-test-conf-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    const char *text = "relayhost = [smtp.example.com]:465\nsmtp_tls_wrappermode = yes\n";
    CHECK_INT(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);
    struct config c;
    char err[1024];
    warnings[0] = '\0';
    CHECK_INT(config_load(&c, path, &env, err, sizeof err), CONFIG_OK);
    CHECK_STR(c.relay_host, "smtp.example.com");
    CHECK(c.tls_wrapper);
    CHECK_STR(c.path, path);
    config_free(&c);
    unlink(path);

    CHECK_INT(config_load(&c, "/nonexistent/hato.conf", &env, err, sizeof err), CONFIG_UNREADABLE);
    CHECK_HAS(err, "/nonexistent/hato.conf");
    CHECK_HAS(err, "-C");
    config_free(&c);
}

int main(void)
{
    test_defaults();
    test_guide();
    test_relayhost();
    test_expansion();
    test_syntax();
    test_values();
    test_times();
    test_misspellings();
    test_capath_file();
    test_load();
    return check_finish("config");
}
