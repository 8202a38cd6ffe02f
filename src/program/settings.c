/*
 * settings.c - the configuration turned into hato_options: relay, timeouts,
 * TLS, the state directory, SASL and the credentials (password map or
 * smtp_sasl_password, then a password command or systemd credential), and
 * the log callback that routes the library's lines to stderr and the
 * maillog.  Errors here map to EX_CONFIG, EX_NOPERM or EX_TEMPFAIL.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "hato.h"

#include "config.h"
#include "creds.h"
#include "maillog.h"
#include "maps.h"
#include "privilege.h"
#include "program.h"
#include "wipe.h"

/* The library's log lines: to stderr with -v (warnings always), to the
 * maillog as smtp_tls_loglevel says. */
static void on_log(void *user, hato_log_level level, const char *line)
{
    struct program *pg = user;

    if (pg->args.verbose > 0)
        say("%s", line);
    else if (level == HATO_LOG_WARNING)
        say("warning: %s", line);
    if (pg->log_open) {
        if (level == HATO_LOG_WARNING)
            maillog_plain(&pg->log, "warning: %s", line);
        else if ((level == HATO_LOG_INFO && pg->cfg.tls_loglevel >= 1) ||
                 (level == HATO_LOG_DEBUG && pg->cfg.tls_loglevel >= 2))
            maillog_plain(&pg->log, "%s", line);
    }
}

int options_fail(hato_code rc, const char *what)
{
    say("cannot apply %s: %s", what, hato_code_name(rc));
    return rc == HATO_E_NOMEM ? EX_TEMPFAIL : EX_CONFIG;
}

uint16_t relay_port(const struct config *c)
{
    return c->relay_port ? c->relay_port : (c->tls_wrapper ? 465 : 587);
}

/* The port a relay of the config is reached on. */
static uint16_t port_of(const struct config *c, const struct config_relay *r)
{
    return r->port ? r->port : (c->tls_wrapper ? 465 : 587);
}

int relay_for_sender(struct program *pg, const char *sender, struct config_relay *r)
{
    const struct config *c = &pg->cfg;
    char *value = NULL, found[1200], err[1024];
    int err_no = 0;

    r->host = NULL;
    r->port = c->relay_port;
    r->bracketed = c->relay_bracketed;
    /* No sender (--probe): relayhost. */
    if (c->nrelayhost_maps > 0 && sender != NULL) {
        /* Tables are opened with the invoker's rights, as the password
         * maps are (privilege.h). */
        privilege_check("sender_dependent_relayhost_maps");
        enum maps_status st = maps_find_sender_value((const char *const *)c->relayhost_maps,
                                                     c->nrelayhost_maps,
                                                     "sender_dependent_relayhost_maps", sender,
                                                     &value, found, sizeof found, &err_no, err,
                                                     sizeof err);
        if (st != MAPS_FOUND && st != MAPS_NOT_FOUND) {
            say("%s", err);
            return st == MAPS_ERR_NOMEM ? EX_TEMPFAIL
                   : st == MAPS_ERR_OPEN && err_no == EACCES ? EX_NOPERM : EX_CONFIG;
        }
        /* DUNNO: Postfix's "stop looking, use relayhost". */
        if (value != NULL && strcasecmp(value, "DUNNO") != 0) {
            const char *why;
            int rc = config_parse_relay(value, &r->host, &r->port, &r->bracketed, &why);
            if (rc == -2) {
                free(value);
                say("out of memory");
                return EX_TEMPFAIL;
            }
            if (rc == -1) {
                say("sender_dependent_relayhost_maps: the entry %s gives %s: %s; write a relay "
                    "as relayhost takes it, e.g. [smtp.example.com]:587", found, value, why);
                free(value);
                return EX_CONFIG;
            }
            if (pg->args.verbose > 0)
                say("relay for <%s>: %s (from %s)", sender, value, found);
            free(value);
            return EX_OK;
        }
        free(value);
    }
    if (c->relay_host == NULL) {
        say("relayhost is not set in %s and sender_dependent_relayhost_maps has no entry for "
            "<%s>: write, for example, relayhost = [smtp.example.com]:587", c->path,
            sender ? sender : "");
        return EX_CONFIG;
    }
    if ((r->host = strdup(c->relay_host)) == NULL) {
        say("out of memory");
        return EX_TEMPFAIL;
    }
    r->port = c->relay_port;
    r->bracketed = c->relay_bracketed;
    return EX_OK;
}

static int creds_exit(enum creds_status st)
{
    return st == CREDS_ERR_NOMEM ? EX_TEMPFAIL : st == CREDS_ERR_CONFIG ? EX_CONFIG : EX_TEMPFAIL;
}

/* Replaces *password with the secret from smtp_sasl_password_command or a
 * systemd credential, when either is configured (in that order); *from
 * names the source for messages. */
static int override_password(struct program *pg, const struct config_relay *r, const char *user,
                             char **password, const char **from)
{
    const struct config *c = &pg->cfg;
    char err[2048], *secret = NULL;
    enum creds_status st;

    /* The command and the credential run and open with the invoker's
     * rights, never the spool group's (privilege.h). */
    privilege_check("the password command or credential");

    if (c->password_command != NULL) {
        /* Which account and relay, for helpers that serve several. */
        char relay[320], account[600];
        snprintf(relay, sizeof relay, "HATO_RELAY=[%s]:%u", r->host, (unsigned)port_of(c, r));
        snprintf(account, sizeof account, "HATO_SASL_USER=%s", user);
        const char *extra[] = {relay, account, NULL};
        st = creds_run_command("smtp_sasl_password_command", c->password_command, extra,
                               CREDS_COMMAND_TIMEOUT_MS, &secret, err, sizeof err);
        if (st != CREDS_OK) {
            say("%s", err);
            return creds_exit(st);
        }
        *from = "smtp_sasl_password_command";
    } else {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        if (dir == NULL || dir[0] == '\0')
            return EX_OK;
        st = creds_read_credential(dir, c->password_credential, &secret, err, sizeof err);
        if (st == CREDS_NOT_FOUND && c->password_credential_set) {
            say("smtp_sasl_password_credential = %s: no such credential in $CREDENTIALS_DIRECTORY "
                "(%s); pass it with LoadCredential=%s:FILE or SetCredentialEncrypted= in the unit",
                c->password_credential, dir, c->password_credential);
            return EX_CONFIG;
        }
        if (st == CREDS_NOT_FOUND)
            return EX_OK;
        if (st != CREDS_OK) {
            say("%s", err);
            return creds_exit(st);
        }
        *from = "the systemd credential";
    }
    if ((*password)[0] != '\0')
        say("warning: the password written for %s is not used: %s gives it", user, *from);
    wipe_free_str(*password);
    *password = secret;
    return EX_OK;
}

/* Finds the user name (password map, else smtp_sasl_password) and the
 * password (command, else credential, else beside the user name) and
 * hands them to the options, wiping the program's copies. */
static int set_credentials(struct program *pg, hato_options *o, const struct config_relay *r)
{
    const struct config *c = &pg->cfg;
    uint16_t port = port_of(c, r);
    char *user = NULL, *password = NULL, err[1024], found[1200] = "";
    const char *from = NULL;
    int ex = EX_OK;

    /* Password maps are opened with the invoker's rights (privilege.h). */
    privilege_check("smtp_sasl_password_maps");
    if (!c->sasl_enable) {
        if (c->npassword_maps > 0 || c->config_user != NULL)
            say("warning: %s is set but smtp_sasl_auth_enable = no: not authenticating "
                "(set smtp_sasl_auth_enable = yes in %s)",
                c->npassword_maps > 0 ? "smtp_sasl_password_maps" : "smtp_sasl_password", c->path);
        return EX_OK;
    }
    if (c->npassword_maps > 0) {
        int err_no = 0;
        const char *sender = c->sender_dependent ? pg->sender : NULL;
        enum maps_status st = maps_find((const char *const *)c->password_maps, c->npassword_maps,
                                        "smtp_sasl_password_maps", sender, r->host, port,
                                        &user, &password, found, sizeof found, &err_no, err,
                                        sizeof err);
        if (st != MAPS_FOUND && st != MAPS_NOT_FOUND) {
            say("%s", err);
            if (st == MAPS_ERR_NOMEM)
                return EX_TEMPFAIL;
            return st == MAPS_ERR_OPEN && err_no == EACCES ? EX_NOPERM : EX_CONFIG;
        }
    }
    if (user == NULL && c->config_user != NULL) {
        user = strdup(c->config_user);
        password = strdup(c->config_password);
        snprintf(found, sizeof found, "smtp_sasl_password in %s", c->path);
        if (user == NULL || password == NULL) {
            say("out of memory");
            ex = EX_TEMPFAIL;
            goto out;
        }
    }
    if (user == NULL) {
        if (c->npassword_maps > 0) {
            char also[700] = "";
            if (c->sender_dependent && pg->sender[0] != '\0')
                snprintf(also, sizeof also, " nor for the sender <%s>", pg->sender);
            say("warning: no entry for [%s]:%u%s in smtp_sasl_password_maps (%s%s): sending without "
                "authentication", r->host, (unsigned)port, also, c->password_maps[0],
                c->npassword_maps > 1 ? " and the others" : "");
        } else {
            say("warning: smtp_sasl_auth_enable = yes but smtp_sasl_password_maps is empty in %s: "
                "sending without authentication", c->path);
        }
        return EX_OK;
    }
    if ((ex = override_password(pg, r, user, &password, &from)) != EX_OK)
        goto out;
    /* An empty password is a placeholder for a command or credential;
     * only a client certificate (SASL EXTERNAL) needs none. */
    if (password[0] == '\0' && c->cert_file == NULL) {
        say("the entry for %s (%s) has an empty password and neither smtp_sasl_password_command "
            "nor a systemd credential (%s in $CREDENTIALS_DIRECTORY) gave one", user, found,
            c->password_credential);
        ex = EX_CONFIG;
        goto out;
    }
    if (pg->args.verbose > 0)
        say("authenticating as %s (from %s; password from %s)", user, found,
            from ? from : "the same entry");
    hato_code rc = hato_options_set_credentials(o, user, password);
    if (rc != HATO_OK)
        ex = options_fail(rc, "the credentials");

out:
    wipe_free_str(password);
    wipe_free_str(user);
    return ex;
}

/* hato's state directory for this user, malloc'd, or NULL: no files
 * (sessions are then resumed only within one run). */
char *find_state_dir(struct program *pg)
{
    const struct config *c = &pg->cfg;
    const char *home = getenv("HOME");
    if (home == NULL || home[0] != '/') {
        struct passwd *pw = getpwuid(geteuid());
        home = pw ? pw->pw_dir : NULL;
    }
    const char *data = c->data_directory;
    struct stat sb;
    /* Never shared between users: another user's directory, or one others
     * may read, is passed over. */
    /* The library's test (src/tls/state.c): ours, and nobody else may
     * add files. */
    if (data != NULL && stat(data, &sb) == 0 &&
        (sb.st_uid != geteuid() || (sb.st_mode & 022) != 0 || !S_ISDIR(sb.st_mode))) {
        say("warning: data_directory = %s is not a directory of uid %ld that only it may write "
            "(owner uid %ld, mode %03o); using the default state directory instead (give "
            "data_directory a directory of your own, mode 700)", data, (long)geteuid(),
            (long)sb.st_uid, (unsigned)(sb.st_mode & 0777));
        data = NULL;
    }
    char *dir = NULL;
    int r = config_state_dir(data, (unsigned long)geteuid(), getenv("XDG_STATE_HOME"), home, &dir);
    if (r == -1)
        say("warning: no home directory for uid %ld: TLS sessions are not kept between runs "
            "(set data_directory)", (long)geteuid());
    return dir;
}

/* The options for one relay r: everything from the config, with r's
 * host, port, MX choice and credentials. */
static int relay_options(struct program *pg, hato_options *o, const struct config_relay *r)
{
    const struct config *c = &pg->cfg;
    hato_code rc;

    if ((rc = hato_options_set_relay(o, r->host, r->port)) != HATO_OK)
        return options_fail(rc, "relayhost");
    /* Postfix: a relay without brackets is a domain whose MX records
     * name the servers. */
    if ((rc = hato_options_set_relay_mx(o, !r->bracketed)) != HATO_OK)
        return options_fail(rc, "relayhost");
    if ((rc = hato_options_set_family(o, c->family)) != HATO_OK)
        return options_fail(rc, "inet_protocols");
    for (int i = 0; i < HATO_TIMEOUT_COUNT_; i++)
        if ((rc = hato_options_set_timeout(o, (hato_timeout)i, c->timeout_ms[i])) != HATO_OK)
            return options_fail(rc, config_timeout_key((hato_timeout)i));
    if ((rc = hato_options_set_tls_level(o, c->tls_level)) != HATO_OK)
        return options_fail(rc, "smtp_tls_security_level");
    if ((rc = hato_options_set_tls_wrapper(o, c->tls_wrapper)) != HATO_OK)
        return options_fail(rc, "smtp_tls_wrappermode");
    if (c->ca_file != NULL && (rc = hato_options_set_ca_file(o, c->ca_file)) != HATO_OK)
        return options_fail(rc, "smtp_tls_CAfile");
    if (c->ca_path != NULL && (rc = hato_options_set_ca_path(o, c->ca_path)) != HATO_OK)
        return options_fail(rc, "smtp_tls_CApath");
    if (c->tls_level != HATO_TLS_NONE &&
        (rc = hato_options_set_tls_min_version(o, c->tls_min_version)) != HATO_OK)
        return options_fail(rc, c->tls_level == HATO_TLS_MAY ? "smtp_tls_protocols"
                                                             : "smtp_tls_mandatory_protocols");
    if (c->cert_file != NULL &&
        (rc = hato_options_set_client_cert(o, c->cert_file, c->key_file ? c->key_file : c->cert_file)) != HATO_OK)
        return options_fail(rc, "smtp_tls_cert_file and smtp_tls_key_file");
    if ((rc = hato_options_set_tls_fingerprint_digest(o, c->fp_digest)) != HATO_OK)
        return options_fail(rc, "smtp_tls_fingerprint_digest");
    for (size_t i = 0; i < c->nfp_cert; i++)
        if ((rc = hato_options_add_tls_fingerprint(o, false, c->fp_cert[i])) != HATO_OK)
            return options_fail(rc, "smtp_tls_fingerprint_cert_match");
    for (size_t i = 0; i < c->nfp_pkey; i++)
        if ((rc = hato_options_add_tls_fingerprint(o, true, c->fp_pkey[i])) != HATO_OK)
            return options_fail(rc, "smtp_tls_fingerprint_pkey_match");
    char *state = find_state_dir(pg);
    if (state == NULL && c->tls_level == HATO_TLS_TOFU) {
        say("smtp_tls_security_level = tofu needs a state directory to record the server's key; "
            "set data_directory in %s", c->path);
        return EX_CONFIG;
    }
    rc = state ? hato_options_set_state_dir(o, state) : HATO_OK;
    free(state);
    if (rc != HATO_OK)
        return options_fail(rc, "data_directory");
    if ((rc = hato_options_set_sasl_mechanisms(o, c->mech_filter)) != HATO_OK)
        return options_fail(rc, "smtp_sasl_mechanism_filter");
    if ((rc = hato_options_set_sasl_security(o, c->sasl_plain, c->sasl_tls)) != HATO_OK)
        return options_fail(rc, "smtp_sasl_security_options");
    if ((rc = hato_options_set_helo_name(o, c->helo_name)) != HATO_OK)
        return options_fail(rc, "smtp_helo_name");
    if ((rc = hato_options_set_discard_ehlo_keywords(o, c->discard_ehlo)) != HATO_OK)
        return options_fail(rc, "smtp_discard_ehlo_keywords");
    /* -v shows everything; smtp_tls_loglevel chooses what the maillog gets. */
    hato_log_level level = pg->args.verbose > 0 ? HATO_LOG_TRACE
                           : c->tls_loglevel >= 2 ? HATO_LOG_DEBUG
                           : c->tls_loglevel >= 1 ? HATO_LOG_INFO : HATO_LOG_WARNING;
    if ((rc = hato_options_set_log(o, on_log, pg, level)) != HATO_OK)
        return options_fail(rc, "the log callback");
    return set_credentials(pg, o, r);
}

int build_options(struct program *pg, hato_options *o)
{
    const struct config *c = &pg->cfg;
    struct config_relay r;
    int ex = relay_for_sender(pg, pg->sender, &r);
    if (ex == EX_OK)
        ex = relay_options(pg, o, &r);
    free(r.host);
    /* smtp_fallback_relay: each with its own credentials (a password map
     * entry is per relay, as in Postfix), tried by the library in order. */
    for (size_t i = 0; ex == EX_OK && i < c->nfallback_relays; i++) {
        hato_options *f = hato_options_new();
        if (f == NULL) {
            say("out of memory");
            return EX_TEMPFAIL;
        }
        ex = relay_options(pg, f, &c->fallback_relays[i]);
        hato_code rc = ex == EX_OK ? hato_options_add_fallback_relay(o, f) : HATO_OK;
        hato_options_free(f); /* wipes its password: o has its own copy */
        if (rc != HATO_OK)
            ex = options_fail(rc, "smtp_fallback_relay");
    }
    return ex;
}
