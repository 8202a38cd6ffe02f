/*
 * test_config.c - the main.cf-syntax configuration parser.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    /* Without brackets the relay's MX records are looked up, as in
     * Postfix: nothing to warn about any more. */
    CHECK_STR(warnings, "");

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

    /* Since 0.2: secure, fingerprint (with pins: test_fingerprints), tofu. */
    CHECK_INT(parse(&c, "smtp_tls_security_level = secure\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_level, HATO_TLS_SECURE);
    CHECK_INT(parse(&c, "smtp_tls_security_level = TOFU\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_level, HATO_TLS_TOFU);
    CHECK_INT(parse(&c, "smtp_tls_security_level = dane\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_tls_security_level = dane");
    CHECK_HAS(err, "DNSSEC");
    CHECK_HAS(err, "none, may, encrypt, verify, secure, fingerprint or tofu");
    CHECK_INT(parse(&c, "smtp_tls_security_level = dane-only\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "DNSSEC");
    CHECK_INT(parse(&c, "smtp_tls_security_level = bogus\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "unknown level");
    CHECK_HAS(err, "none, may, encrypt, verify, secure, fingerprint or tofu");
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
    CHECK_INT(c.sasl_plain, HATO_SASL_NOANONYMOUS | HATO_SASL_NODICTIONARY);
    CHECK_STR(warnings, "");
    CHECK_INT(parse(&c, "smtp_sasl_tls_security_options = mutual_auth noactive\n", err, sizeof err),
              CONFIG_OK);
    CHECK_INT(c.sasl_tls, HATO_SASL_MUTUAL_AUTH);
    CHECK_HAS(warnings, "main.cf:1: smtp_sasl_tls_security_options: option noactive is not used");
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
                        "smtpd_tls_loglevel = 1\nalias_maps = hash:/etc/aliases\n"
                        "meta_directory = /etc/postfix\nsmtp_tls_dcert_file = /d\n"
                        "smtp_tls_dkey_file = /d\nsmtp_tls_eccert_file = /e\n"
                        "smtp_tls_eckey_file = /e\n", err, sizeof err),
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

static void test_protocols(void)
{
    struct config c = {0};
    char err[1024];

    CHECK_INT(parse(&c, "", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_2);
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = >=TLSv1.2\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_2);
    CHECK_STR(warnings, "");
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = !SSLv2, !SSLv3, !TLSv1, !TLSv1.1\n", err,
                    sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_2);
    CHECK_STR(warnings, "");
    /* Colons separate too, as in Postfix. */
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = !SSLv2:!SSLv3:!TLSv1:!TLSv1.1\n", err,
                    sizeof err), CONFIG_OK);
    CHECK_STR(warnings, "");
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = TLSv1.3\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_3);
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = >=TLSv1.3\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_3);
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = TLSv1.2 TLSv1.3\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_2);
    CHECK_STR(warnings, "");

    /* Postfix's old defaults allow TLS 1.0: accepted, with a warning. */
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = !SSLv2, !SSLv3\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_2);
    CHECK_HAS(warnings, "main.cf:1: smtp_tls_mandatory_protocols allows versions older than TLSv1.2");
    CHECK_HAS(warnings, "never goes below TLSv1.2");
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = >=TLSv1\n", err, sizeof err), CONFIG_OK);
    CHECK_HAS(warnings, "never goes below");
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = <=TLSv1.2\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_2);
    CHECK_HAS(warnings, "maximum");

    /* Level may reads smtp_tls_protocols; the other list is only checked. */
    CHECK_INT(parse(&c, "smtp_tls_security_level = may\nsmtp_tls_protocols = TLSv1.3\n"
                        "smtp_tls_mandatory_protocols = !SSLv2\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_3);
    CHECK_STR(warnings, "");
    CHECK_INT(parse(&c, "smtp_tls_security_level = encrypt\nsmtp_tls_protocols = !SSLv2\n", err,
                    sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_min_version, HATO_TLS_V1_2);
    CHECK_STR(warnings, "");

    CHECK_INT(parse(&c, "\nsmtp_tls_protocols = TLSv9\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:2: smtp_tls_protocols = TLSv9");
    CHECK_HAS(err, "unknown protocol \"TLSv9\"");
    CHECK_HAS(err, "TLSv1.2 or TLSv1.3");
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = TLSv1, TLSv1.1\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_tls_mandatory_protocols = TLSv1, TLSv1.1");
    CHECK_HAS(err, ">=TLSv1.2");
    CHECK_INT(parse(&c, "smtp_tls_mandatory_protocols = !TLSv1.2 !TLSv1.3\n", err, sizeof err),
              CONFIG_INVALID);
    config_free(&c);
}

static const char sha256_pin[] =
    "3d:95:34:51:24:66:33:b9:d2:40:99:c0:c1:17:0b:d1:3d:95:34:51:24:66:33:b9:d2:40:99:c0:c1:17:0b:d1";
static const char sha256_pin_upper[] =
    "3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1";

static void test_fingerprints(void)
{
    struct config c = {0};
    char err[2048], text[1024];

    CHECK_INT(parse(&c, "", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.fp_digest, "sha256");
    CHECK_INT(c.nfp_cert + c.nfp_pkey, 0);

    snprintf(text, sizeof text, "smtp_tls_security_level = fingerprint\n"
                                "smtp_tls_fingerprint_cert_match = %s\n", sha256_pin);
    CHECK_INT(parse(&c, text, err, sizeof err), CONFIG_OK);
    CHECK_INT(c.tls_level, HATO_TLS_FINGERPRINT);
    CHECK_INT(c.nfp_cert, 1);
    if (c.nfp_cert == 1)
        CHECK_STR(c.fp_cert[0], sha256_pin_upper);

    /* Plain hex, several separated by commas and white space, continued. */
    snprintf(text, sizeof text, "smtp_tls_security_level = fingerprint\n"
                                "smtp_tls_fingerprint_pkey_match = "
                                "3D9534512466 33B9D24099C0C1170BD13D953451246633B9D24099C0C1170BD1,\n"
                                "  %s\n", sha256_pin);
    CHECK_INT(parse(&c, text, err, sizeof err), CONFIG_INVALID); /* split hex is not a pin */
    CHECK_HAS(err, "main.cf:2: smtp_tls_fingerprint_pkey_match");
    snprintf(text, sizeof text, "smtp_tls_security_level = fingerprint\n"
                                "smtp_tls_fingerprint_pkey_match = "
                                "3D953451246633B9D24099C0C1170BD13D953451246633B9D24099C0C1170BD1,\n"
                                "  %s\n", sha256_pin);
    CHECK_INT(parse(&c, text, err, sizeof err), CONFIG_OK);
    CHECK_INT(c.nfp_pkey, 2);
    if (c.nfp_pkey == 2) {
        CHECK_STR(c.fp_pkey[0], sha256_pin_upper);
        CHECK_STR(c.fp_pkey[1], sha256_pin_upper);
    }
    CHECK_STR(warnings, "");

    /* A SHA-1 pin under the sha256 digest: wrong length. */
    CHECK_INT(parse(&c, "smtp_tls_security_level = fingerprint\nsmtp_tls_fingerprint_cert_match = "
                        "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01\n",
                    err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:2: smtp_tls_fingerprint_cert_match");
    CHECK_HAS(err, "not a sha256 fingerprint");
    CHECK_HAS(err, "32 bytes");
    CHECK_HAS(err, "AB:CD:...");
    CHECK_INT(parse(&c, "smtp_tls_security_level = fingerprint\nsmtp_tls_fingerprint_digest = SHA1\n"
                        "smtp_tls_fingerprint_cert_match = "
                        "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01\n",
                    err, sizeof err), CONFIG_OK);
    CHECK_STR(c.fp_digest, "sha1");
    CHECK_INT(c.nfp_cert, 1);
    CHECK_INT(parse(&c, "smtp_tls_fingerprint_cert_match = AB:CD:XY\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_INT(parse(&c, "smtp_tls_fingerprint_cert_match = AB:CD:\n", err, sizeof err),
              CONFIG_INVALID);

    CHECK_INT(parse(&c, "smtp_tls_fingerprint_digest = md5\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_tls_fingerprint_digest = md5");
    CHECK_HAS(err, "sha256, sha384, sha512 or sha1");
    CHECK_HAS(err, "too weak");

    /* The level needs a pin; pins without the level are ignored, loudly. */
    CHECK_INT(parse(&c, "\nsmtp_tls_security_level = fingerprint\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:2: smtp_tls_security_level = fingerprint");
    CHECK_HAS(err, "smtp_tls_fingerprint_cert_match or smtp_tls_fingerprint_pkey_match");
    snprintf(text, sizeof text, "smtp_tls_fingerprint_cert_match = %s\n", sha256_pin);
    CHECK_INT(parse(&c, text, err, sizeof err), CONFIG_OK);
    CHECK_HAS(warnings, "only with smtp_tls_security_level = fingerprint");
    config_free(&c);
}

static void test_client_cert(void)
{
    struct config c = {0};
    char err[1024];

    CHECK_INT(parse(&c, "", err, sizeof err), CONFIG_OK);
    CHECK(c.cert_file == NULL && c.key_file == NULL);
    /* As in Postfix, the key defaults to $smtp_tls_cert_file. */
    CHECK_INT(parse(&c, "smtp_tls_cert_file = /etc/hato/client.pem\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.cert_file, "/etc/hato/client.pem");
    CHECK_STR(c.key_file, "/etc/hato/client.pem");
    CHECK_INT(parse(&c, "smtp_tls_cert_file = /c.pem\nsmtp_tls_key_file = /k.pem\n", err, sizeof err),
              CONFIG_OK);
    CHECK_STR(c.key_file, "/k.pem");
    CHECK_INT(parse(&c, "smtp_tls_key_file = /k.pem\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_tls_key_file = /k.pem");
    CHECK_HAS(err, "smtp_tls_cert_file");
    config_free(&c);
}

static void test_state(void)
{
    struct config c = {0};
    char err[1024], *dir = NULL;

    CHECK_INT(parse(&c, "", err, sizeof err), CONFIG_OK);
    CHECK(c.data_directory == NULL);
    CHECK_INT(c.session_cache_timeout, 3600);
    /* Postfix's usual line loads; the table type and place do not matter. */
    CHECK_INT(parse(&c, "data_directory = /var/lib/hato-test/\n"
                        "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache\n"
                        "smtp_tls_session_cache_timeout = 1h\n", err, sizeof err), CONFIG_OK);
    CHECK_STR(c.data_directory, "/var/lib/hato-test/");
    CHECK_INT(c.session_cache_timeout, 3600);
    CHECK_STR(warnings, "");
    CHECK_INT(parse(&c, "smtp_tls_session_cache_timeout = 2d\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.session_cache_timeout, 172800);
    CHECK_INT(parse(&c, "smtp_tls_session_cache_timeout = often\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_tls_session_cache_timeout = often");
    CHECK_INT(parse(&c, "data_directory = state\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: data_directory = state: not an absolute path");

    CHECK_INT(config_state_dir("/srv/hato/", 1000, "/x", "/home/a", &dir), 0);
    CHECK_STR(dir, "/srv/hato");
    free(dir);
    CHECK_INT(config_state_dir(NULL, 0, "/root/.state", "/root", &dir), 0);
    CHECK_STR(dir, "/var/lib/hato");
    free(dir);
    CHECK_INT(config_state_dir(NULL, 1000, "/home/a/.st", "/home/a", &dir), 0);
    CHECK_STR(dir, "/home/a/.st/hato");
    free(dir);
    /* A relative XDG_STATE_HOME is ignored, as the XDG spec says. */
    CHECK_INT(config_state_dir(NULL, 1000, "rel", "/home/a/", &dir), 0);
    CHECK_STR(dir, "/home/a/.local/state/hato");
    free(dir);
    CHECK_INT(config_state_dir(NULL, 1000, NULL, NULL, &dir), -1);
    CHECK(dir == NULL);
    config_free(&c);
}

static void test_sasl_sources(void)
{
    struct config c = {0};
    char err[1024];

    CHECK_INT(parse(&c, "", err, sizeof err), CONFIG_OK);
    CHECK(!c.sender_dependent);
    CHECK(c.password_command == NULL);
    CHECK_STR(c.password_credential, "hato-password");
    CHECK(!c.password_credential_set);
    CHECK(c.config_user == NULL && c.config_password == NULL);

    CHECK_INT(parse(&c, "smtp_sender_dependent_authentication = yes\n"
                        "smtp_sasl_password_command = /usr/bin/secret-tool lookup host smtp\n"
                        "smtp_sasl_password_credential = smtp-token\n", err, sizeof err), CONFIG_OK);
    CHECK(c.sender_dependent);
    CHECK_STR(c.password_command, "/usr/bin/secret-tool lookup host smtp");
    CHECK_STR(c.password_credential, "smtp-token");
    CHECK(c.password_credential_set);
    CHECK_STR(warnings, "");

    CHECK_INT(parse(&c, "smtp_sasl_password_command = secret-tool lookup\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_sasl_password_command = secret-tool lookup");
    CHECK_HAS(err, "absolute path");
    CHECK_INT(parse(&c, "smtp_sender_dependent_authentication = perhaps\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_HAS(err, "yes or no");
    CHECK_INT(parse(&c, "smtp_sasl_password_credential = ../etc/shadow\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_sasl_password_credential = ../etc/shadow");
    CHECK_HAS(err, "LoadCredential=");

    /* The password in the configuration: taken as written ('$' and ':'
     * included), never echoed in a message. */
    CHECK_INT(parse(&c, "smtp_sasl_password = alice@example.com:pa$$:word\n", err, sizeof err),
              CONFIG_OK);
    CHECK_STR(c.config_user, "alice@example.com");
    CHECK_STR(c.config_password, "pa$$:word");
    CHECK_INT(c.config_password_line, 1);
    CHECK_INT(parse(&c, "smtp_sasl_password = s3cr3t-no-colon\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_sasl_password");
    CHECK_HAS(err, "user:password");
    CHECK(strstr(err, "s3cr3t") == NULL);
    CHECK_INT(parse(&c, "smtp_sasl_password = u:s3cr3t\nmyhostname = $smtp_sasl_password\n", err,
                    sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "may not be referenced");
    CHECK(strstr(err, "s3cr3t") == NULL);
    CHECK_INT(parse(&c, "smtp_sasl_password u:s3cr3t\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1:");
    CHECK(strstr(err, "s3cr3t") == NULL);
    CHECK_INT(parse(&c, "smtp_sasl_password u:s3cr3t = x\n", err, sizeof err), CONFIG_INVALID);
    CHECK(strstr(err, "s3cr3t") == NULL);
    config_free(&c);
}

static void test_config_password_mode(void)
{
    char path[] = "/tmp/hato-test-conf-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    const char *text = "relayhost = [smtp.example.com]\nsmtp_sasl_password = bob:hunter2\n";
    CHECK_INT(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);
    struct config c;
    char err[1024], want[300];
    warnings[0] = '\0';
    /* mkstemp makes mode 600. */
    CHECK_INT(config_load(&c, path, &env, err, sizeof err), CONFIG_OK);
    CHECK_STR(c.config_user, "bob");
    CHECK_STR(c.config_password, "hunter2");
    config_free(&c);

    CHECK_INT(chmod(path, 0640), 0);
    CHECK_INT(config_load(&c, path, &env, err, sizeof err), CONFIG_INVALID);
    snprintf(want, sizeof want, "%s:2: smtp_sasl_password is set but %s may be read by other users "
                                "(mode 640); run: chmod 600 %s", path, path, path);
    CHECK_HAS(err, want);
    CHECK(strstr(err, "hunter2") == NULL);
    CHECK(c.config_password == NULL);
    config_free(&c);

    /* Without the password the same file is fine at any mode. */
    const char *plain = "relayhost = [smtp.example.com]\n";
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_INT(write(fd, plain, strlen(plain)), (long long)strlen(plain));
        close(fd);
    }
    CHECK_INT(chmod(path, 0644), 0);
    CHECK_INT(config_load(&c, path, &env, err, sizeof err), CONFIG_OK);
    config_free(&c);
    unlink(path);
}

static void test_parse_relay(void)
{
    char *host = NULL;
    uint16_t port = 1;
    bool br = false;
    const char *why = NULL;
    CHECK_INT(config_parse_relay("[smtp.example.com]:465", &host, &port, &br, &why), 0);
    CHECK_STR(host, "smtp.example.com");
    CHECK_INT(port, 465);
    CHECK(br);
    free(host);
    CHECK_INT(config_parse_relay("[2001:db8::1]", &host, &port, &br, &why), 0);
    CHECK_STR(host, "2001:db8::1");
    CHECK_INT(port, 0);
    free(host);
    CHECK_INT(config_parse_relay("mx.example:smtp", &host, &port, &br, &why), 0);
    CHECK_INT(port, 25);
    CHECK(!br);
    free(host);
    CHECK_INT(config_parse_relay("[x]:0", &host, &port, &br, &why), -1);
    CHECK(host == NULL);
    CHECK_HAS(why, "1 to 65535");
    CHECK_INT(config_parse_relay("", &host, &port, &br, &why), -1);
}

/* mydestination, alias_maps, alias_database and the rewriting tables. */
/* smtp_fallback_relay: a list in relayhost's syntax; the relayhost maps. */
static void test_fallback_relays(void)
{
    struct config c = {0};
    char err[1024];

    CHECK_INT(parse(&c, "relayhost = [a.example]:587\n"
                        "smtp_fallback_relay = [b.example]:2525, c.example\n"
                        "  [2001:db8::1]\n"
                        "sender_dependent_relayhost_maps = hash:/etc/hato/relays, /etc/r2\n",
                    err, sizeof err), CONFIG_OK);
    CHECK_INT(c.nfallback_relays, 3);
    if (c.nfallback_relays == 3) {
        CHECK_STR(c.fallback_relays[0].host, "b.example");
        CHECK_INT(c.fallback_relays[0].port, 2525);
        CHECK(c.fallback_relays[0].bracketed);
        CHECK_STR(c.fallback_relays[1].host, "c.example");
        CHECK_INT(c.fallback_relays[1].port, 0);
        CHECK(!c.fallback_relays[1].bracketed);
        CHECK_STR(c.fallback_relays[2].host, "2001:db8::1");
        CHECK(c.fallback_relays[2].bracketed);
    }
    CHECK_INT(c.nrelayhost_maps, 2);
    if (c.nrelayhost_maps == 2) {
        CHECK_STR(c.relayhost_maps[0], "/etc/hato/relays");
        CHECK_STR(c.relayhost_maps[1], "/etc/r2");
    }

    CHECK_INT(parse(&c, "relayhost = [a.example]\nsmtp_fallback_relay = [b.example]:x\n",
                    err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "smtp_fallback_relay = [b.example]:x");
    CHECK_HAS(err, "the port must be a number");

    CHECK_INT(parse(&c, "relayhost = [a.example]\n", err, sizeof err), CONFIG_OK);
    CHECK_INT(c.nfallback_relays, 0);
    CHECK_INT(c.nrelayhost_maps, 0);
    config_free(&c);
}

static void test_local_keys(void)
{
    struct config c = {0};
    char err[1024];
    CHECK_INT(parse(&c, "", err, sizeof err), CONFIG_OK);
    /* Postfix's defaults. */
    CHECK_INT(c.nmydestination, 3);
    if (c.nmydestination == 3) {
        CHECK_STR(c.mydestination[0], "mail.example.org");
        CHECK_STR(c.mydestination[1], "localhost.example.org");
        CHECK_STR(c.mydestination[2], "localhost");
    }
    CHECK_INT(c.nalias_maps, 1);
    if (c.nalias_maps == 1)
        CHECK_STR(c.alias_maps[0], "/etc/aliases");
    CHECK(!c.alias_maps_set);
    CHECK_INT(c.nalias_database, 1);
    if (c.nalias_database == 1)
        CHECK_STR(c.alias_database[0], "/etc/aliases");
    CHECK(!c.alias_database_set);
    CHECK_INT(c.ncanonical_maps, 0);
    CHECK_INT(c.ngeneric_maps, 0);

    CHECK_INT(parse(&c, "mydestination = $myhostname, home.example mysql:/etc/x.cf\n"
                        "alias_maps = hash:/etc/aliases, nis:mail.aliases, texthash:/etc/more\n"
                        "sender_canonical_maps = hash:/etc/postfix/canonical\n"
                        "smtp_generic_maps = /etc/postfix/generic btree:/etc/postfix/g2\n",
                    err, sizeof err), CONFIG_OK);
    CHECK_INT(c.nmydestination, 2);
    CHECK_HAS(warnings, "main.cf:1: mydestination: mysql:/etc/x.cf is ignored");
    CHECK_INT(c.nalias_maps, 2);
    if (c.nalias_maps == 2)
        CHECK_STR(c.alias_maps[1], "/etc/more");
    CHECK(c.alias_maps_set);
    CHECK_HAS(warnings, "main.cf:2: alias_maps: table nis:mail.aliases is ignored");
    /* alias_database follows alias_maps by default. */
    CHECK_INT(c.nalias_database, 2);
    CHECK(c.alias_database_set);
    CHECK_INT(c.ncanonical_maps, 1);
    CHECK_INT(c.ngeneric_maps, 2);
    if (c.ngeneric_maps == 2) {
        CHECK_STR(c.generic_maps[0], "/etc/postfix/generic");
        CHECK_STR(c.generic_maps[1], "/etc/postfix/g2");
    }

    /* A rewriting table hato cannot read is an error, not silence. */
    CHECK_INT(parse(&c, "smtp_generic_maps = ldap:/etc/postfix/ldap-generic.cf\n", err, sizeof err),
              CONFIG_INVALID);
    CHECK_HAS(err, "main.cf:1: smtp_generic_maps = ldap:/etc/postfix/ldap-generic.cf: table type ldap: is not supported");
    CHECK_INT(parse(&c, "sender_canonical_maps = hash:canonical\n", err, sizeof err), CONFIG_INVALID);
    CHECK_HAS(err, "canonical is not an absolute path");
    CHECK_INT(parse(&c, "alias_maps =\nalias_database = hash:/etc/mail/aliases\n", err, sizeof err),
              CONFIG_OK);
    CHECK_INT(c.nalias_maps, 0);
    CHECK_INT(c.nalias_database, 1);
    CHECK(c.alias_database_set);
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
    test_protocols();
    test_fingerprints();
    test_client_cert();
    test_state();
    test_sasl_sources();
    test_config_password_mode();
    test_parse_relay();
    test_local_keys();
    test_fallback_relays();
    return check_finish("config");
}
