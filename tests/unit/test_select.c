/*
 * test_select.c - sasl_select's rules and its messages, sasl_client_first.
 */
#include "sasl/sasl.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

/* What libgsasl 2.2 lists on Debian 12. */
#define LIB_ALL                                                               \
    "ANONYMOUS EXTERNAL LOGIN PLAIN SECURID NTLM DIGEST-MD5 CRAM-MD5 "        \
    "SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS SAML20 "   \
    "OPENID20 GSSAPI GS2-KRB5"

#define PLAIN_LINK (SASL_NOPLAINTEXT | SASL_NOANONYMOUS)
#define TLS_LINK (SASL_NOANONYMOUS | SASL_LINK_TLS)

static char mech[SASL_MECH_MAX];
static char why[1024];

static bool pick(const char *offered, const char *filter, const char *lib,
                 unsigned security, bool have_password)
{
    memset(mech, 'x', sizeof mech);
    memset(why, 'x', sizeof why);
    why[sizeof why - 1] = '\0';
    return sasl_select(offered, filter, lib, security, have_password, mech,
                       why, sizeof why);
}

/* One line, printable ASCII only: it goes to logs and terminals. */
static bool one_clean_line(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static void test_preference(void)
{
    const char *all = "LOGIN PLAIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256";

    CHECK(pick(all, NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "SCRAM-SHA-256");
    CHECK(pick("LOGIN PLAIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1", NULL, LIB_ALL,
               TLS_LINK, true));
    CHECK_STR(mech, "SCRAM-SHA-1");
    CHECK(pick("LOGIN PLAIN CRAM-MD5 DIGEST-MD5", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "DIGEST-MD5");
    CHECK(pick("LOGIN PLAIN CRAM-MD5", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "CRAM-MD5");
    CHECK(pick("LOGIN PLAIN", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "PLAIN");
    CHECK(pick("LOGIN", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "LOGIN");
    /* The server's order does not matter, only hato's. */
    CHECK(pick("PLAIN SCRAM-SHA-1 LOGIN", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "SCRAM-SHA-1");
    /* The filter's order does not matter either (Postfix: it only filters). */
    CHECK(pick("PLAIN LOGIN CRAM-MD5", "login, plain", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "PLAIN");
}

static void test_only_preference_list(void)
{
    /* Later, unknown, filter-only and binding-less mechanisms are never
     * chosen, even when strongest. */
    CHECK(pick("SCRAM-SHA-256-PLUS XOAUTH2 OAUTHBEARER EXTERNAL GSSAPI NTLM "
               "LOGIN", NULL, LIB_ALL, TLS_LINK | SASL_HAVE_CERT, true));
    CHECK_STR(mech, "LOGIN");
    CHECK(!pick("ANONYMOUS", NULL, LIB_ALL, 0, true));
    CHECK_STR(mech, "");
    CHECK_HAS(why, "ANONYMOUS is not supported by hato");
    CHECK(!pick("GSSAPI NTLM SECURID", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_HAS(why, "GSSAPI is not supported by hato yet");
    CHECK_HAS(why, "NTLM and SECURID are not supported by hato;");
    CHECK_HAS(why, "; hato supports EXTERNAL OAUTHBEARER XOAUTH2 "
                   "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 "
                   "SCRAM-SHA-1 DIGEST-MD5 CRAM-MD5 PLAIN LOGIN");
    CHECK(one_clean_line(why));
}

static void test_plus(void)
{
    const char *all = "SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS "
                      "SCRAM-SHA-256-PLUS PLAIN";

    /* Binding data: the -PLUS variants first. */
    CHECK(pick(all, NULL, LIB_ALL, TLS_LINK | SASL_HAVE_BINDING, true));
    CHECK_STR(mech, "SCRAM-SHA-256-PLUS");
    CHECK_STR(why, "also usable, less preferred: SCRAM-SHA-1 SCRAM-SHA-256 "
                   "SCRAM-SHA-1-PLUS PLAIN");
    /* Binding beats the stronger hash. */
    CHECK(pick("SCRAM-SHA-256 SCRAM-SHA-1-PLUS", NULL, LIB_ALL,
               TLS_LINK | SASL_HAVE_BINDING, true));
    CHECK_STR(mech, "SCRAM-SHA-1-PLUS");
    /* None: the plain SCRAMs, and the -PLUS ones are said to need it. */
    CHECK(pick(all, NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "SCRAM-SHA-256");
    CHECK_HAS(why, "SCRAM-SHA-1-PLUS and SCRAM-SHA-256-PLUS need TLS channel "
                   "binding, which this TLS connection does not provide");
    /* The filter can leave them out (a TLS-inspecting proxy breaks them). */
    CHECK(pick(all, "scram-sha-256", LIB_ALL, TLS_LINK | SASL_HAVE_BINDING,
               true));
    CHECK_STR(mech, "SCRAM-SHA-256");
    /* Only -PLUS offered, no binding: nothing; the reason says what would
     * provide the binding (TLS 1.3 on both sides). */
    CHECK(!pick("SCRAM-SHA-256-PLUS", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_HAS(why, "SCRAM-SHA-256-PLUS needs TLS channel binding, which this "
                   "TLS connection does not provide (hato binds with tls-exporter, "
                   "which needs TLS 1.3 on both sides");
    CHECK_HAS(why, "; hato supports");
    CHECK(!pick("SCRAM-SHA-256-PLUS", NULL, LIB_ALL, PLAIN_LINK, true));
    CHECK_HAS(why, "needs TLS channel binding, and this connection has no TLS "
                   "(smtp_tls_security_level = encrypt or higher)");
    /* A library without them. */
    CHECK(pick(all, NULL, "SCRAM-SHA-1 SCRAM-SHA-256 PLAIN",
               TLS_LINK | SASL_HAVE_BINDING, true));
    CHECK_STR(mech, "SCRAM-SHA-256");
    /* Still passwords. */
    CHECK(!pick("SCRAM-SHA-256-PLUS", NULL, LIB_ALL,
                TLS_LINK | SASL_HAVE_BINDING, false));
    CHECK_HAS(why, "SCRAM-SHA-256-PLUS needs a password");
}

static void test_external(void)
{
    const char *offered = "PLAIN EXTERNAL SCRAM-SHA-256";

    /* Named and a certificate: EXTERNAL, password or not. */
    CHECK(pick(offered, "external", LIB_ALL, TLS_LINK | SASL_HAVE_CERT, false));
    CHECK_STR(mech, "EXTERNAL");
    CHECK(pick(offered, "external, scram-sha-256", LIB_ALL,
               TLS_LINK | SASL_HAVE_CERT, true));
    CHECK_STR(mech, "EXTERNAL");
    /* A certificate alone does not choose it. */
    CHECK(pick(offered, NULL, LIB_ALL, TLS_LINK | SASL_HAVE_CERT, true));
    CHECK_STR(mech, "SCRAM-SHA-256");
    CHECK_HAS(why, "EXTERNAL is used only when smtp_sasl_mechanism_filter "
                   "names it");
    /* Named without a certificate. */
    CHECK(!pick(offered, "external", LIB_ALL, TLS_LINK, true));
    CHECK_HAS(why, "EXTERNAL needs a client certificate on a TLS connection");
    CHECK_HAS(why, "or configure a client certificate "
                   "(smtp_tls_cert_file, smtp_tls_key_file)");
    CHECK(!pick("EXTERNAL", "external", LIB_ALL, PLAIN_LINK, true));
    CHECK_HAS(why, "use TLS (smtp_tls_security_level = encrypt) with a client "
                   "certificate");
    /* Not anonymous, not plaintext, not open to a dictionary. */
    CHECK(pick("EXTERNAL", "external", LIB_ALL,
               TLS_LINK | SASL_HAVE_CERT | SASL_NOPLAINTEXT |
                   SASL_NODICTIONARY,
               false));
    CHECK_STR(mech, "EXTERNAL");
    /* Case and empty "=" initial response: client first. */
    CHECK(sasl_client_first("external"));
}

static void test_oauth(void)
{
    /* What Gmail offers. */
    const char *gmail = "LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH";

    /* No filter: a password mechanism; the token ones are not guessed. */
    CHECK(pick(gmail, NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "PLAIN");
    CHECK_HAS(why, "XOAUTH2 and OAUTHBEARER are used only when "
                   "smtp_sasl_mechanism_filter names them");
    CHECK(pick(gmail, "xoauth2", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "XOAUTH2");
    CHECK(pick(gmail, "OAuthBearer", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "OAUTHBEARER");
    /* Both named: the standard one. */
    CHECK(pick(gmail, "xoauth2 oauthbearer", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "OAUTHBEARER");
    /* hato runs them, whatever libgsasl lists. */
    CHECK(pick(gmail, "xoauth2", "PLAIN LOGIN", TLS_LINK, true));
    CHECK_STR(mech, "XOAUTH2");
    /* No token. */
    CHECK(!pick(gmail, "xoauth2", LIB_ALL, TLS_LINK, false));
    CHECK_HAS(why, "XOAUTH2 and OAUTHBEARER need an OAuth access token as "
                   "the password and none is set for this server");
    CHECK_HAS(why, "smtp_sasl_password_command");
    /* A bearer token in the clear is a password in the clear. */
    CHECK(!pick(gmail, "xoauth2", LIB_ALL, PLAIN_LINK, true));
    CHECK_HAS(why, "XOAUTH2 is excluded by noplaintext without TLS");
    /* Only OAuth offered (Microsoft 365 with basic auth off). */
    CHECK(!pick("XOAUTH2 OAUTHBEARER", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(why, "no usable SASL mechanism: server offers XOAUTH2 "
                   "OAUTHBEARER; XOAUTH2 and OAUTHBEARER are used only when "
                   "smtp_sasl_mechanism_filter names them; to fix, add "
                   "oauthbearer or xoauth2 to smtp_sasl_mechanism_filter");
    CHECK(one_clean_line(why));
}

static void test_nodictionary(void)
{
    static const char *const open[] = {
        "PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1",
        "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS",
    };
    const unsigned tls = TLS_LINK | SASL_HAVE_BINDING | SASL_NODICTIONARY;

    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++) {
        CHECK(!pick(open[i], NULL, LIB_ALL, tls, true));
        CHECK_HAS(why, "is excluded by nodictionary in "
                       "smtp_sasl_tls_security_options (a recorded exchange "
                       "allows offline password guessing)");
        CHECK_HAS(why, "to fix, remove nodictionary from "
                       "smtp_sasl_tls_security_options");
        /* Without the option, each is usable. */
        CHECK(pick(open[i], NULL, LIB_ALL, tls & ~(unsigned)SASL_NODICTIONARY,
                   true));
    }
    /* What it leaves: a certificate, a token. */
    CHECK(pick("PLAIN EXTERNAL", "external plain", LIB_ALL,
               tls | SASL_HAVE_CERT, true));
    CHECK_STR(mech, "EXTERNAL");
    CHECK(pick("PLAIN OAUTHBEARER", "plain oauthbearer", LIB_ALL, tls, true));
    CHECK_STR(mech, "OAUTHBEARER");
    /* On a plain link it names the other key. */
    CHECK(!pick("CRAM-MD5", NULL, LIB_ALL, SASL_NODICTIONARY, true));
    CHECK_HAS(why, "CRAM-MD5 is excluded by nodictionary in "
                   "smtp_sasl_security_options");
}

static void test_mutual(void)
{
    const unsigned tls = TLS_LINK | SASL_MUTUAL_AUTH;

    CHECK(pick("PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1", NULL, LIB_ALL,
               tls, true));
    CHECK_STR(mech, "SCRAM-SHA-1");
    CHECK(pick("PLAIN CRAM-MD5 DIGEST-MD5", NULL, LIB_ALL, tls, true));
    CHECK_STR(mech, "DIGEST-MD5");
    CHECK_STR(why, "PLAIN and CRAM-MD5 are excluded by mutual_auth in "
                   "smtp_sasl_tls_security_options (they do not authenticate "
                   "the server)");
    CHECK(!pick("PLAIN LOGIN CRAM-MD5", NULL, LIB_ALL, SASL_MUTUAL_AUTH, true));
    CHECK_HAS(why, "to fix, remove mutual_auth from smtp_sasl_security_options");
    /* EXTERNAL and OAuth prove nothing about the server. */
    CHECK(!pick("EXTERNAL XOAUTH2", "external xoauth2", LIB_ALL,
                tls | SASL_HAVE_CERT, true));
    CHECK_HAS(why, "EXTERNAL and XOAUTH2 are excluded by mutual_auth");
    CHECK(pick("SCRAM-SHA-256-PLUS PLAIN", NULL, LIB_ALL,
               tls | SASL_HAVE_BINDING, true));
    CHECK_STR(mech, "SCRAM-SHA-256-PLUS");

    CHECK(sasl_mutual("SCRAM-SHA-1"));
    CHECK(sasl_mutual("scram-sha-256-plus"));
    CHECK(sasl_mutual("DIGEST-MD5"));
    CHECK(!sasl_mutual("PLAIN"));
    CHECK(!sasl_mutual("CRAM-MD5"));
    CHECK(!sasl_mutual("XOAUTH2"));
    CHECK(!sasl_mutual("EXTERNAL"));
    CHECK(!sasl_mutual("NTLM"));
    CHECK(!sasl_mutual(NULL));
}

static void test_passed_over(void)
{
    /* What the probe shows beside the choice. */
    CHECK(pick("PLAIN LOGIN CRAM-MD5", NULL, LIB_ALL, PLAIN_LINK, true));
    CHECK_STR(mech, "CRAM-MD5");
    CHECK_STR(why, "PLAIN and LOGIN are excluded by noplaintext without TLS");
    CHECK(pick("PLAIN", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(why, "");
    CHECK(pick("PLAIN LOGIN NTLM CRAM-MD5", "plain, login", LIB_ALL, TLS_LINK,
               true));
    CHECK_STR(why, "NTLM is not supported by hato; CRAM-MD5 is not in the "
                   "filter; also usable, less preferred: LOGIN");
    CHECK(one_clean_line(why));
}

static void test_case(void)
{
    CHECK(pick("plain login Cram-Md5", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "CRAM-MD5");
    CHECK(pick("PLAIN LOGIN", "pLaIn", "plain login", TLS_LINK, true));
    CHECK_STR(mech, "PLAIN");
    CHECK(pick("scram-sha-1 login", "LOGIN,Scram-Sha-1", "Scram-SHA-1 LOGIN",
               TLS_LINK, true));
    CHECK_STR(mech, "SCRAM-SHA-1");
}

static void test_filter_syntax(void)
{
    const char *offered = "PLAIN LOGIN CRAM-MD5 DIGEST-MD5";

    /* The guide's two filters. */
    CHECK(pick(offered, "plain,login", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "PLAIN");
    CHECK(pick(offered, "cram-md5,plain,login", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "CRAM-MD5");
    /* Postfix's documented spelling, and any mix of separators. */
    CHECK(pick(offered, "plain, login", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "PLAIN");
    CHECK(pick(offered, " \tlogin ,\n, cram-md5,,", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "CRAM-MD5");
    CHECK(pick(offered, "login", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "LOGIN");
    /* No filter: NULL, empty, or nothing but separators. */
    CHECK(pick(offered, NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "DIGEST-MD5");
    CHECK(pick(offered, "", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "DIGEST-MD5");
    CHECK(pick(offered, " , ", LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "DIGEST-MD5");
    /* Whole names only. */
    CHECK(!pick("CRAM-MD5", "cram", LIB_ALL, TLS_LINK, true));
    CHECK(!pick("SCRAM-SHA-1", "scram-sha-1-plus", LIB_ALL, TLS_LINK, true));
    CHECK(!pick("SCRAM-SHA-1-PLUS", "scram-sha-1", LIB_ALL, TLS_LINK, true));
    /* The message shows the filter normalised to one line. */
    CHECK(!pick("DIGEST-MD5", " PLAIN,\n\tLogin ", LIB_ALL, TLS_LINK, true));
    CHECK_HAS(why, "; smtp_sasl_mechanism_filter = plain, login;");
    CHECK(one_clean_line(why));
}

static void test_security(void)
{
    /* noplaintext takes PLAIN and LOGIN, nothing else. */
    CHECK(!pick("PLAIN LOGIN", NULL, LIB_ALL, SASL_NOPLAINTEXT, true));
    CHECK(pick("PLAIN LOGIN CRAM-MD5", NULL, LIB_ALL, SASL_NOPLAINTEXT, true));
    CHECK_STR(mech, "CRAM-MD5");
    CHECK(pick("PLAIN LOGIN SCRAM-SHA-1", NULL, LIB_ALL, PLAIN_LINK, true));
    CHECK_STR(mech, "SCRAM-SHA-1");
    /* noanonymous takes ANONYMOUS, and does not touch PLAIN. */
    CHECK(pick("PLAIN", NULL, LIB_ALL, SASL_NOANONYMOUS, true));
    CHECK_STR(mech, "PLAIN");
    CHECK(!pick("ANONYMOUS", NULL, LIB_ALL, SASL_NOANONYMOUS, true));
    CHECK_HAS(why, "ANONYMOUS is excluded by noanonymous");
    /* No flags: everything hato speaks. */
    CHECK(pick("LOGIN ANONYMOUS", NULL, LIB_ALL, 0, true));
    CHECK_STR(mech, "LOGIN");
}

static void test_password(void)
{
    static const char *const need[] = { "SCRAM-SHA-256", "SCRAM-SHA-1",
                                        "DIGEST-MD5", "CRAM-MD5", "PLAIN",
                                        "LOGIN" };

    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        CHECK(!pick(need[i], NULL, LIB_ALL, 0, false));
        CHECK_HAS(why, "needs a password and none is set for this server");
        CHECK(pick(need[i], NULL, LIB_ALL, 0, true));
        CHECK_STR(mech, need[i]);
    }
}

static void test_library(void)
{
    /* A libgsasl without SCRAM: the next best. */
    CHECK(pick("SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5", NULL,
               "PLAIN LOGIN CRAM-MD5", TLS_LINK, true));
    CHECK_STR(mech, "CRAM-MD5");
    /* NULL: not checked.  "": the library has nothing. */
    CHECK(pick("SCRAM-SHA-256", NULL, NULL, TLS_LINK, true));
    CHECK_STR(mech, "SCRAM-SHA-256");
    CHECK(!pick("SCRAM-SHA-256", NULL, "", TLS_LINK, true));
}

static void test_why_no_auth(void)
{
    CHECK(!pick("", NULL, LIB_ALL, PLAIN_LINK, true));
    CHECK_STR(mech, "");
    CHECK_STR(why, "no usable SASL mechanism: server offers no AUTH "
                   "mechanisms; to fix, use TLS (smtp_tls_security_level = "
                   "encrypt) since many servers offer AUTH only after "
                   "STARTTLS, or turn authentication off "
                   "(smtp_sasl_auth_enable = no)");
    CHECK(!pick(NULL, "plain", LIB_ALL, PLAIN_LINK, true));
    CHECK_HAS(why, "server offers no AUTH mechanisms; "
                   "smtp_sasl_mechanism_filter = plain;");
    /* On TLS already, the advice is not "use TLS". */
    CHECK(!pick("  ", NULL, LIB_ALL, TLS_LINK, true));
    CHECK_HAS(why, "server offers no AUTH mechanisms");
    CHECK(strstr(why, "smtp_tls_security_level") == NULL);
    CHECK_HAS(why, "smtp_sasl_auth_enable = no");
}

static void test_why_noplaintext(void)
{
    CHECK(!pick("PLAIN LOGIN", NULL, LIB_ALL, PLAIN_LINK, true));
    CHECK_STR(why, "no usable SASL mechanism: server offers PLAIN LOGIN; "
                   "PLAIN and LOGIN are excluded by noplaintext without TLS; "
                   "to fix, use TLS (smtp_tls_security_level = encrypt), or "
                   "allow plaintext mechanisms (smtp_sasl_security_options = "
                   "noanonymous)");
    /* The same, with noplaintext set for TLS links too. */
    CHECK(!pick("PLAIN LOGIN", NULL, LIB_ALL, TLS_LINK | SASL_NOPLAINTEXT,
                true));
    CHECK_HAS(why, "PLAIN and LOGIN are excluded by noplaintext in "
                   "smtp_sasl_tls_security_options");
    CHECK_HAS(why, "to fix, allow plaintext mechanisms over TLS "
                   "(smtp_sasl_tls_security_options = noanonymous)");
    CHECK(strstr(why, "smtp_tls_security_level") == NULL);
    /* One of them: singular. */
    CHECK(!pick("LOGIN", NULL, LIB_ALL, PLAIN_LINK, true));
    CHECK_HAS(why, "; LOGIN is excluded by noplaintext without TLS;");
}

static void test_why_filter(void)
{
    /* The guide's case: the filter from the guide, a server that only
     * offers the challenge-response mechanisms. */
    CHECK(!pick("CRAM-MD5 DIGEST-MD5", "plain,login", LIB_ALL, PLAIN_LINK,
                true));
    CHECK_STR(why, "no usable SASL mechanism: server offers CRAM-MD5 "
                   "DIGEST-MD5; smtp_sasl_mechanism_filter = plain, login; "
                   "CRAM-MD5 and DIGEST-MD5 are not in the filter; to fix, "
                   "add digest-md5 or cram-md5 to smtp_sasl_mechanism_filter");
    /* Reasons grouped; each fix offered. */
    CHECK(!pick("PLAIN LOGIN CRAM-MD5", "plain, login", LIB_ALL, PLAIN_LINK,
                true));
    CHECK_HAS(why, "; CRAM-MD5 is not in the filter;");
    CHECK_HAS(why, "; PLAIN and LOGIN are excluded by noplaintext without TLS;");
    CHECK_HAS(why, "to fix, add cram-md5 to smtp_sasl_mechanism_filter, or "
                   "use TLS (smtp_tls_security_level = encrypt), or allow "
                   "plaintext mechanisms (smtp_sasl_security_options = "
                   "noanonymous)");
    /* Two settings stand in the way of the same mechanism. */
    CHECK(!pick("PLAIN LOGIN", "cram-md5", LIB_ALL, PLAIN_LINK, true));
    CHECK_HAS(why, "PLAIN and LOGIN are not in the filter");
    CHECK_HAS(why, "; to use PLAIN, add plain to smtp_sasl_mechanism_filter, "
                   "and either use TLS (smtp_tls_security_level = encrypt) or "
                   "allow plaintext mechanisms");
}

static void test_why_library(void)
{
    CHECK(!pick("SCRAM-SHA-256 GSSAPI", NULL, "PLAIN LOGIN CRAM-MD5",
                TLS_LINK, true));
    CHECK_STR(why, "no usable SASL mechanism: server offers SCRAM-SHA-256 "
                   "GSSAPI; GSSAPI is not supported by hato yet; "
                   "SCRAM-SHA-256 is not supported by the local SASL "
                   "library; to fix, install a libgsasl built with "
                   "SCRAM-SHA-256");
}

static void test_why_password(void)
{
    CHECK(!pick("PLAIN LOGIN CRAM-MD5", NULL, LIB_ALL, PLAIN_LINK, false));
    CHECK_STR(why, "no usable SASL mechanism: server offers PLAIN LOGIN "
                   "CRAM-MD5; PLAIN, LOGIN and CRAM-MD5 need a password and "
                   "none is set for this server; to fix, add a password for "
                   "this server to smtp_sasl_password_maps");
    /* Without TLS, PLAIN then still needs TLS: both are said. */
    CHECK(!pick("PLAIN", NULL, LIB_ALL, PLAIN_LINK, false));
    CHECK_HAS(why, "PLAIN needs a password");
    CHECK_HAS(why, "to use PLAIN, add a password for this server to "
                   "smtp_sasl_password_maps, and either use TLS");
}

static void test_hostile_server(void)
{
    char big[4096];
    size_t n = 0;

    /* Control bytes never reach the message. */
    CHECK(!pick("PLAIN \x1b[2J\r\nEVIL LOGIN", NULL, LIB_ALL, PLAIN_LINK,
                true));
    CHECK(one_clean_line(why));
    CHECK_HAS(why, "server offers PLAIN ??2J EVIL LOGIN;");
    /* A name too long for RFC 4422 matches nothing, and is shown cut. */
    CHECK(!pick("PLAINPLAINPLAINPLAINPLAIN", NULL, LIB_ALL, 0, true));
    CHECK_HAS(why, "PLAINPLAINPLAINPLAIN is not supported by hato");
    /* A name is not matched by a prefix of a long one. */
    CHECK(!pick("SCRAM-SHA-256XXXXXXXXXXXXXX", NULL, LIB_ALL, 0, true));
    /* Repeats count once. */
    CHECK(!pick("LOGIN login LOGIN", NULL, LIB_ALL, PLAIN_LINK, true));
    CHECK_HAS(why, "server offers LOGIN; LOGIN is excluded");
    /* Hundreds of names: bounded work and message, the best still found. */
    for (int i = 0; i < 300 && n + 16 < sizeof big; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "X%d ", i);
    snprintf(big + n, sizeof big - n, "LOGIN");
    CHECK(!pick(big, NULL, LIB_ALL, PLAIN_LINK, true));
    CHECK_HAS(why, " X31 and 269 more;");
    CHECK(one_clean_line(why));
    CHECK(pick(big, NULL, LIB_ALL, TLS_LINK, true));
    CHECK_STR(mech, "LOGIN");
}

static void test_truncation(void)
{
    char small[40];
    char guard[64];
    const char *offered = "PLAIN LOGIN CRAM-MD5";

    /* The bytes past whylen stay untouched; the text ends in "...". */
    memset(guard, '#', sizeof guard);
    CHECK(!sasl_select(offered, "x", LIB_ALL, PLAIN_LINK, true, mech, guard,
                       sizeof small));
    CHECK_INT(strlen(guard), sizeof small - 1);
    CHECK(memcmp(guard + sizeof small - 4, "...", 4) == 0);
    CHECK(guard[sizeof small] == '#');
    CHECK(memcmp(guard, "no usable SASL mechanism", 24) == 0);

    memset(small, '#', sizeof small);
    CHECK(!sasl_select(offered, "x", LIB_ALL, PLAIN_LINK, true, mech, small, 1));
    CHECK_STR(small, "");
    CHECK(small[1] == '#');
    CHECK(!sasl_select(offered, "x", LIB_ALL, PLAIN_LINK, true, mech, small, 3));
    CHECK_STR(small, "no");
    CHECK(!sasl_select(offered, "x", LIB_ALL, PLAIN_LINK, true, mech, small, 4));
    CHECK_STR(small, "...");
    CHECK(!sasl_select(offered, "x", LIB_ALL, PLAIN_LINK, true, mech, NULL, 0));
    CHECK(sasl_select(offered, NULL, LIB_ALL, 0, true, mech, NULL, 0));
    CHECK_STR(mech, "CRAM-MD5");
}

static void test_client_first(void)
{
    CHECK(sasl_client_first("PLAIN"));
    CHECK(sasl_client_first("plain"));
    CHECK(sasl_client_first("SCRAM-SHA-1"));
    CHECK(sasl_client_first("SCRAM-SHA-256"));
    CHECK(sasl_client_first("scram-sha-256-plus"));
    CHECK(sasl_client_first("EXTERNAL"));
    CHECK(sasl_client_first("ANONYMOUS"));
    CHECK(sasl_client_first("OAUTHBEARER"));
    CHECK(sasl_client_first("xoauth2"));
    CHECK(sasl_client_first("GS2-KRB5"));
    CHECK(!sasl_client_first("LOGIN"));
    CHECK(!sasl_client_first("CRAM-MD5"));
    CHECK(!sasl_client_first("DIGEST-MD5"));
    CHECK(!sasl_client_first("NTLM"));
    CHECK(!sasl_client_first(""));
    CHECK(!sasl_client_first(NULL));
}

int main(void)
{
    test_preference();
    test_only_preference_list();
    test_plus();
    test_external();
    test_oauth();
    test_nodictionary();
    test_mutual();
    test_passed_over();
    test_case();
    test_filter_syntax();
    test_security();
    test_password();
    test_library();
    test_why_no_auth();
    test_why_noplaintext();
    test_why_filter();
    test_why_library();
    test_why_password();
    test_hostile_server();
    test_truncation();
    test_client_first();
    return check_finish("select");
}
