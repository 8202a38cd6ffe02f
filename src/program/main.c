/*
 * main.c - hato, a sendmail-compatible program that hands each message to
 * one relay through libhato.
 *
 * Thin on purpose (STYLE.md point 11): read the arguments and the
 * configuration, read the header section, build options and a message from
 * them, let the library send, report each recipient's outcome.  --probe
 * builds the same options and lets the library diagnose the relay;
 * --tofu-accept removes one file from the state directory.  The body
 * streams from standard input through the library's reader callback, so
 * memory stays bounded whatever the message's size.
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "hato.h"

#include "args.h"
#include "config.h"
#include "creds.h"
#include "exitcode.h"
#include "headers.h"
#include "maillog.h"
#include "maps.h"
#include "wipe.h"

/* Standard input is read in pieces of this size. */
#define INPUT_CHUNK 65536

struct program {
    struct args args;
    struct config cfg;
    struct maillog log;
    bool log_open;
    struct timeval start;

    char **rcpts;          /* qualified envelope recipients, owned */
    size_t nrcpts, rcpts_cap;
    size_t nparsed;        /* addresses seen, duplicates included */
    char *sender;          /* envelope sender, owned; "" is <> */
    char *user;            /* the invoking user's login name, owned */
    char *gecos_name;      /* display name from the password file, owned */

    /* Input: raw bytes from fd 0, then the dot filter. */
    char raw[INPUT_CHUNK];
    size_t raw_len, raw_off;
    bool in_eof;
    int in_errno;
    struct headers_dot dot;

    /* What the reader hands out, in order: head (added headers + the
     * original header section, Bcc removed, + separator), then the rest
     * of hbuf already read, then more input. */
    char *head;
    size_t head_len, head_off;
    char *hbuf;
    size_t hbuf_len, rest_off;
    unsigned long long size;
};

static void say(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void say(const char *fmt, ...)
{
    va_list ap;
    fputs("hato: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void config_warning(void *user, const char *message)
{
    (void)user;
    say("warning: %s", message);
}

/* ------------------------------------------------------------------ */
/* Input                                                              */

/* Up to cap bytes of standard input after the dot filter; 0 at the end
 * (or at a single-dot line without -i), -1 on a read error. */
static ptrdiff_t input_read(struct program *pg, char *out, size_t cap)
{
    for (;;) {
        if (pg->dot.ended)
            return 0;
        if (pg->raw_off == pg->raw_len) {
            if (pg->in_eof)
                return 0;
            ssize_t r = read(STDIN_FILENO, pg->raw, sizeof pg->raw);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                pg->in_errno = errno;
                return -1;
            }
            if (r == 0) {
                /* A "." held back at the very end was a final single-dot line. */
                pg->in_eof = true;
                return 0;
            }
            pg->raw_len = (size_t)r;
            pg->raw_off = 0;
        }
        size_t avail = pg->raw_len - pg->raw_off;
        if (!pg->args.dot_ends) {
            size_t n = avail < cap ? avail : cap;
            memcpy(out, pg->raw + pg->raw_off, n);
            pg->raw_off += n;
            return (ptrdiff_t)n;
        }
        size_t used;
        size_t n = headers_dot_filter(&pg->dot, pg->raw + pg->raw_off, avail, &used, out, cap);
        pg->raw_off += used;
        if (n > 0)
            return (ptrdiff_t)n;
    }
}

/* The library's reader: head, then what was read past the header
 * section, then the rest of standard input. */
static ptrdiff_t body_reader(void *user, char *buf, size_t cap)
{
    struct program *pg = user;
    size_t n = 0;
    if (pg->head_off < pg->head_len) {
        n = pg->head_len - pg->head_off;
        if (n > cap)
            n = cap;
        memcpy(buf, pg->head + pg->head_off, n);
        pg->head_off += n;
    } else if (pg->rest_off < pg->hbuf_len) {
        n = pg->hbuf_len - pg->rest_off;
        if (n > cap)
            n = cap;
        memcpy(buf, pg->hbuf + pg->rest_off, n);
        pg->rest_off += n;
    } else {
        ptrdiff_t r = input_read(pg, buf, cap);
        if (r < 0)
            return -1;
        n = (size_t)r;
    }
    pg->size += n;
    return (ptrdiff_t)n;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                          */

/* True when a holds '@' outside a quoted local part. */
static bool has_domain(const char *a)
{
    bool quoted = false;
    for (; *a; a++) {
        if (*a == '\\' && a[1] != '\0')
            a++;
        else if (*a == '"')
            quoted = !quoted;
        else if (*a == '@' && !quoted)
            return true;
    }
    return false;
}

/* addr, or addr@origin for a bare local name; malloc'd. */
static char *qualify(const char *addr, const char *origin)
{
    if (addr[0] == '\0' || has_domain(addr))
        return strdup(addr);
    size_t n = strlen(addr) + 1 + strlen(origin) + 1;
    char *q = malloc(n);
    if (q != NULL)
        snprintf(q, n, "%s@%s", addr, origin);
    return q;
}

static int add_rcpt(void *user, const char *address)
{
    struct program *pg = user;
    pg->nparsed++;
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

static int first_address(void *user, const char *address)
{
    char **out = user;
    *out = strdup(address);
    return *out ? 1 : -1;
}

/* The invoking user's login and display name (GECOS up to the first
 * comma, '&' standing for the login name capitalised). */
static int find_user(struct program *pg)
{
    struct passwd *pw = getpwuid(getuid());
    const char *login = pw ? pw->pw_name : getenv("LOGNAME");
    if (login == NULL || login[0] == '\0') {
        say("cannot find the user name of uid %ld in the password database; give the sender with -f",
            (long)getuid());
        return EX_OSERR;
    }
    pg->user = strdup(login);
    if (pg->user == NULL)
        return EX_TEMPFAIL;
    if (pw != NULL && pw->pw_gecos != NULL && pw->pw_gecos[0] != '\0') {
        size_t glen = strcspn(pw->pw_gecos, ",");
        size_t cap = glen * (strlen(login) + 1) + 1;
        char *g = malloc(cap);
        if (g == NULL)
            return EX_TEMPFAIL;
        size_t k = 0;
        for (size_t i = 0; i < glen; i++) {
            if (pw->pw_gecos[i] == '&') {
                for (size_t j = 0; login[j]; j++)
                    g[k++] = j == 0 && login[j] >= 'a' && login[j] <= 'z' ? (char)(login[j] - 32) : login[j];
            } else if (pw->pw_gecos[i] != '\r' && pw->pw_gecos[i] != '\n') {
                g[k++] = pw->pw_gecos[i];
            }
        }
        g[k] = '\0';
        pg->gecos_name = g;
    }
    return EX_OK;
}

/* ------------------------------------------------------------------ */
/* The header section                                                 */

static int read_header_section(struct program *pg)
{
    size_t cap = 0;
    bool eof = false, need_sep = false;
    size_t hlen = 0;

    for (;;) {
        if (pg->hbuf_len > 0 &&
            headers_find_end(pg->hbuf, pg->hbuf_len, eof, &hlen, &need_sep))
            break;
        if (eof) { /* empty input */
            hlen = 0;
            break;
        }
        if (pg->hbuf_len >= HEADERS_MAX_SECTION) {
            say("the message's header section is larger than %u bytes; is the input a mail message? "
                "(the header section ends at the first empty line)", HEADERS_MAX_SECTION);
            return EX_DATAERR;
        }
        if (cap - pg->hbuf_len < INPUT_CHUNK / 4) {
            size_t ncap = cap ? cap * 2 : INPUT_CHUNK;
            if (ncap > HEADERS_MAX_SECTION + INPUT_CHUNK)
                ncap = HEADERS_MAX_SECTION + INPUT_CHUNK;
            char *nb = realloc(pg->hbuf, ncap);
            if (nb == NULL) {
                say("out of memory reading the message's header section");
                return EX_TEMPFAIL;
            }
            pg->hbuf = nb;
            cap = ncap;
        }
        ptrdiff_t r = input_read(pg, pg->hbuf + pg->hbuf_len, cap - pg->hbuf_len);
        if (r < 0) {
            say("cannot read the message from standard input: %s", strerror(pg->in_errno));
            return EX_IOERR;
        }
        if (r == 0)
            eof = true;
        pg->hbuf_len += (size_t)r;
    }

    struct headers_info info;
    headers_scan(pg->hbuf, hlen, &info);
    const char *eol = info.crlf ? "\r\n" : "\n";

    if (pg->args.extract) {
        int rc = headers_extract_recipients(pg->hbuf, hlen, add_rcpt, pg);
        if (rc != 0) {
            say("out of memory reading recipients from the message's header section");
            return EX_TEMPFAIL;
        }
    }

    /* What hato adds goes on top, as Postfix's cleanup does. */
    char date[128] = "", msgid[600] = "", from[2048] = "";
    time_t now = time(NULL);
    if (!info.has_date && headers_format_date(date, sizeof date, now, eol) == 0)
        date[0] = '\0';
    if (!info.has_message_id) {
        unsigned long long rnd = 0;
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, &rnd, sizeof rnd) != (ssize_t)sizeof rnd)
            rnd = (unsigned long long)pg->start.tv_usec * 2654435761u ^ (unsigned long long)getpid();
        if (fd >= 0)
            close(fd);
        headers_format_message_id(msgid, sizeof msgid, now, getpid(), rnd, pg->cfg.myhostname, eol);
    }
    if (!info.has_from) {
        const char *display = pg->args.full_name ? pg->args.full_name : pg->gecos_name;
        char *addr = pg->sender[0] != '\0' ? NULL : qualify(pg->user, pg->cfg.myorigin);
        if (pg->sender[0] == '\0' && addr == NULL)
            return EX_TEMPFAIL;
        if (headers_format_from(from, sizeof from, display, addr ? addr : pg->sender, eol) == 0)
            headers_format_from(from, sizeof from, NULL, addr ? addr : pg->sender, eol);
        free(addr);
    }
    size_t added = strlen(date) + strlen(msgid) + strlen(from);
    pg->head = malloc(added + hlen + 3);
    if (pg->head == NULL) {
        say("out of memory for the message's header section");
        return EX_TEMPFAIL;
    }
    size_t k = (size_t)snprintf(pg->head, added + 1, "%s%s%s", date, msgid, from);
    memcpy(pg->head + k, pg->hbuf, hlen);
    /* RFC 5322 section 3.6.3: Bcc is not passed on. */
    k += headers_remove(pg->head + k, hlen, "Bcc");
    if (need_sep) {
        memcpy(pg->head + k, eol, strlen(eol));
        k += strlen(eol);
    }
    pg->head_len = k;
    pg->rest_off = hlen;
    return EX_OK;
}

/* ------------------------------------------------------------------ */
/* Library glue                                                       */

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

static int options_fail(hato_code rc, const char *what)
{
    say("cannot apply %s: %s", what, hato_code_name(rc));
    return rc == HATO_E_NOMEM ? EX_TEMPFAIL : EX_CONFIG;
}

static uint16_t relay_port(const struct config *c)
{
    return c->relay_port ? c->relay_port : (c->tls_wrapper ? 465 : 587);
}

static int creds_exit(enum creds_status st)
{
    return st == CREDS_ERR_NOMEM ? EX_TEMPFAIL : st == CREDS_ERR_CONFIG ? EX_CONFIG : EX_TEMPFAIL;
}

/* Replaces *password with the secret from smtp_sasl_password_command or a
 * systemd credential, when either is configured (in that order); *from
 * names the source for messages. */
static int override_password(struct program *pg, const char *user, char **password,
                             const char **from)
{
    const struct config *c = &pg->cfg;
    char err[2048], *secret = NULL;
    enum creds_status st;

    if (c->password_command != NULL) {
        /* Which account and relay, for helpers that serve several. */
        char relay[320], account[600];
        snprintf(relay, sizeof relay, "HATO_RELAY=[%s]:%u", c->relay_host,
                 (unsigned)relay_port(c));
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
static int set_credentials(struct program *pg, hato_options *o)
{
    const struct config *c = &pg->cfg;
    uint16_t port = relay_port(c);
    char *user = NULL, *password = NULL, err[1024], found[1200] = "";
    const char *from = NULL;
    int ex = EX_OK;

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
                                        "smtp_sasl_password_maps", sender, c->relay_host, port,
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
                "authentication", c->relay_host, (unsigned)port, also, c->password_maps[0],
                c->npassword_maps > 1 ? " and the others" : "");
        } else {
            say("warning: smtp_sasl_auth_enable = yes but smtp_sasl_password_maps is empty in %s: "
                "sending without authentication", c->path);
        }
        return EX_OK;
    }
    if ((ex = override_password(pg, user, &password, &from)) != EX_OK)
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
static char *find_state_dir(struct program *pg)
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

static int build_options(struct program *pg, hato_options *o)
{
    const struct config *c = &pg->cfg;
    hato_code rc;

    if ((rc = hato_options_set_relay(o, c->relay_host, c->relay_port)) != HATO_OK)
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
    /* -v shows everything; smtp_tls_loglevel chooses what the maillog gets. */
    hato_log_level level = pg->args.verbose > 0 ? HATO_LOG_TRACE
                           : c->tls_loglevel >= 2 ? HATO_LOG_DEBUG
                           : c->tls_loglevel >= 1 ? HATO_LOG_INFO : HATO_LOG_WARNING;
    if ((rc = hato_options_set_log(o, on_log, pg, level)) != HATO_OK)
        return options_fail(rc, "the log callback");
    return set_credentials(pg, o);
}

static double elapsed(const struct program *pg)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - pg->start.tv_sec) + (double)(now.tv_usec - pg->start.tv_usec) / 1e6;
}

static void log_recipient(struct program *pg, const char *rcpt, const char *relay,
                          const char *dsn, const char *status, const char *reason)
{
    double d = elapsed(pg);
    maillog_record(&pg->log, "to=<%s>, relay=%s, delay=%.*f, dsn=%s, status=%s (%s)", rcpt, relay,
                   d < 10 ? 2 : 1, d, dsn, status, reason);
}

/* Reports each recipient after a send that reached RCPT; returns the
 * exit code. */
static int report_recipients(struct program *pg, hato_message *m, const char *relay)
{
    size_t n = hato_message_recipient_count(m);
    int *codes = calloc(n ? n : 1, sizeof *codes);
    const char **enh = calloc(n ? n : 1, sizeof *enh);
    int nrefused = 0;
    /* dsn= of a sent recipient: the enhanced code of the reply to the
     * final dot ("250 2.0.0 Ok: queued as X"), as Postfix logs it. */
    const char *data_enh = "", *data_text = "";
    int data_code = hato_message_data_reply(m, &data_enh, &data_text);
    const char *data_dsn = data_enh[0] ? data_enh : "2.0.0";
    char data_reply[600] = "accepted by the relay";
    if (data_code != 0)
        snprintf(data_reply, sizeof data_reply, "%d%s%s %s", data_code, data_enh[0] ? " " : "",
                 data_enh, data_text);

    for (size_t i = 0; i < n; i++) {
        const char *e = "", *text = "";
        const char *rcpt = hato_message_recipient(m, i);
        int code = hato_message_recipient_reply(m, i, &e, &text);
        char reason[1024];
        if (code >= 200 && code < 300) {
            log_recipient(pg, rcpt, relay, data_dsn, "sent", data_reply);
            continue;
        }
        snprintf(reason, sizeof reason, "%d%s%s%s%s", code, e[0] ? " " : "", e, text[0] ? " " : "", text);
        if (code == 0)
            snprintf(reason, sizeof reason, "not tried");
        say("recipient <%s> refused by %s: %s", rcpt, relay, reason);
        bool temp = code < 500;
        log_recipient(pg, rcpt, relay, e[0] ? e : temp ? "4.0.0" : "5.0.0",
                      temp ? "deferred" : "bounced", reason);
        if (codes != NULL && enh != NULL) {
            codes[nrefused] = code;
            enh[nrefused] = e;
        }
        nrefused++;
    }
    int ex = EX_OK;
    if (nrefused > 0)
        ex = codes && enh ? exitcode_for_refusals(codes, enh, nrefused) : EX_UNAVAILABLE;
    free(codes);
    free(enh);
    return ex;
}

/* The one line that describes a failed send or probe. */
static void failure_line(struct program *pg, hato_code rc, const hato_error *e, int ex,
                         const char *relay, char *line, size_t size)
{
    bool temp = e ? hato_error_temporary(e) : true;
    const char *msg = e ? hato_error_message(e) : hato_code_name(rc);
    const char *server = e ? hato_error_server_text(e) : "";
    const char *enh = e ? hato_error_enhanced_code(e) : "";
    int rcode = e ? hato_error_reply_code(e) : 0;
    int k;
    if (rc == HATO_E_BODY && pg->in_errno != 0)
        k = snprintf(line, size, "cannot read the message from standard input: %s; "
                     "nothing was delivered", strerror(pg->in_errno));
    else if (rc == HATO_E_AUTH && strstr(msg, pg->cfg.relay_host) == NULL)
        k = snprintf(line, size, "authentication to %s failed: %s", relay, msg);
    else
        k = snprintf(line, size, "%s", msg);
    if (k >= 0 && (size_t)k < size && server[0] != '\0' && strstr(msg, server) == NULL)
        k += snprintf(line + k, size - (size_t)k, " (the server said: %d%s%s %s)", rcode,
                      enh[0] ? " " : "", enh, server);
    if (k >= 0 && (size_t)k < size && rc == HATO_E_AUTH && ex == EX_TEMPFAIL && !temp)
        snprintf(line + k, size - (size_t)k, "; exit status 75 (try later) because "
                 "smtp_sasl_auth_soft_bounce = yes");
}

static int send_message(struct program *pg)
{
    hato_options *o = hato_options_new();
    hato_message *m = hato_message_new();
    hato_client *cl = NULL;
    int ex = EX_OK;

    if (o == NULL || m == NULL) {
        say("out of memory");
        ex = EX_TEMPFAIL;
        goto out;
    }
    if ((ex = build_options(pg, o)) != EX_OK)
        goto out;
    hato_code rc = hato_message_set_sender(m, pg->sender);
    if (rc != HATO_OK) {
        say("sender <%s> refused: %s", pg->sender, hato_code_name(rc));
        ex = rc == HATO_E_NOMEM ? EX_TEMPFAIL : EX_USAGE;
        goto out;
    }
    for (size_t i = 0; i < pg->nrcpts; i++) {
        rc = hato_message_add_recipient(m, pg->rcpts[i]);
        if (rc != HATO_OK) {
            say("recipient <%s> refused: %s", pg->rcpts[i], hato_code_name(rc));
            ex = rc == HATO_E_NOMEM ? EX_TEMPFAIL : pg->args.extract ? EX_DATAERR : EX_USAGE;
            goto out;
        }
    }
    if ((rc = hato_message_set_reader(m, body_reader, pg)) != HATO_OK) {
        ex = options_fail(rc, "the message reader");
        goto out;
    }
    cl = hato_client_new(o);
    /* The password now lives only in the client's copy: free ours. */
    hato_options_free(o);
    o = NULL;
    if (cl == NULL) {
        say("out of memory");
        ex = EX_TEMPFAIL;
        goto out;
    }

    rc = hato_client_send(cl, m);
    const char *peer = hato_client_peer(cl);
    const char *relay = peer[0] ? peer : "none";
    maillog_record(&pg->log, "from=<%s>, size=%llu, nrcpt=%zu", pg->sender, pg->size, pg->nrcpts);

    if (rc == HATO_OK) {
        ex = report_recipients(pg, m, relay);
        goto out;
    }
    const hato_error *e = hato_client_error(cl);
    bool temp = e ? hato_error_temporary(e) : true;
    const char *msg = e ? hato_error_message(e) : hato_code_name(rc);
    const char *enh = e ? hato_error_enhanced_code(e) : "";

    if (rc == HATO_E_RECIPIENTS) {
        /* One line per refused recipient says it all. */
        ex = report_recipients(pg, m, relay);
        if (ex == EX_OK)
            ex = exitcode_for_error(rc, temp, pg->cfg.auth_soft_bounce);
        goto out;
    }
    ex = exitcode_for_error(rc, temp, pg->cfg.auth_soft_bounce);
    char line[2048];
    failure_line(pg, rc, e, ex, relay, line, sizeof line);
    say("%s", line);
    /* A deferral never carries a 5.x.x code, even when a soft bounce
     * turned a permanent refusal into one (Postfix logs 4.7.8 for 535). */
    char dsn_buf[16];
    const char *dsn = exitcode_dsn(rc, ex == EX_TEMPFAIL);
    if (enh[0] != '\0') {
        snprintf(dsn_buf, sizeof dsn_buf, "%s", enh);
        if (ex == EX_TEMPFAIL)
            dsn_buf[0] = '4';
        dsn = dsn_buf;
    }
    for (size_t i = 0; i < pg->nrcpts; i++)
        log_recipient(pg, pg->rcpts[i], relay, dsn, exitcode_status(ex), msg);

out:
    hato_client_free(cl);
    hato_message_free(m);
    hato_options_free(o);
    return ex;
}

/* ------------------------------------------------------------------ */
/* --probe and --tofu-accept                                          */

static void on_probe_line(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
    fflush(stdout); /* each line as it comes: a slow port shows where it waits */
}

static int probe(struct program *pg)
{
    hato_options *o = hato_options_new();
    hato_client *cl = NULL;
    int ex = EX_OK;

    if (o == NULL) {
        say("out of memory");
        return EX_TEMPFAIL;
    }
    if ((ex = build_options(pg, o)) != EX_OK)
        goto out;
    cl = hato_client_new(o);
    hato_options_free(o); /* wipes the password: the client has its copy */
    o = NULL;
    if (cl == NULL) {
        say("out of memory");
        ex = EX_TEMPFAIL;
        goto out;
    }
    hato_code rc = hato_client_probe(cl, on_probe_line, pg);
    if (rc != HATO_OK) {
        const hato_error *e = hato_client_error(cl);
        const char *peer = hato_client_peer(cl);
        char line[2048];
        ex = exitcode_for_error(rc, e ? hato_error_temporary(e) : true, pg->cfg.auth_soft_bounce);
        failure_line(pg, rc, e, ex, peer[0] ? peer : pg->cfg.relay_host, line, sizeof line);
        say("%s", line);
    }
out:
    hato_client_free(cl);
    hato_options_free(o);
    return ex;
}

/* What a TOFU record pins, for a person: its "pkey-sha256 ..." line
 * (the format src/session/session.c writes), else its first line. */
static void describe_record(const char *text, char *out, size_t size)
{
    const char *line = strstr(text, "pkey-sha256 ");
    if (line == NULL || (line != text && line[-1] != '\n'))
        line = text;
    size_t n = strcspn(line, "\r\n");
    snprintf(out, size, "%.*s", (int)n, line);
    for (char *q = out; *q != '\0'; q++)
        if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
            *q = '?';
}

static int tofu_accept(struct program *pg)
{
    const struct config *c = &pg->cfg;
    char *host = NULL;
    uint16_t port = 0;
    bool bracketed;
    int ex = EX_OK;

    if (pg->args.tofu_target != NULL) {
        const char *why;
        int r = config_parse_relay(pg->args.tofu_target, &host, &port, &bracketed, &why);
        if (r == -2) {
            say("out of memory");
            return EX_TEMPFAIL;
        }
        if (r == -1) {
            say("--tofu-accept %s: %s; give the relay as [host]:port", pg->args.tofu_target, why);
            return EX_USAGE;
        }
        if (port == 0)
            port = relay_port(c);
    } else if (c->relay_host == NULL) {
        say("relayhost is not set in %s: name the relay, as in hato --tofu-accept [host]:port",
            c->path);
        return EX_CONFIG;
    } else {
        host = strdup(c->relay_host);
        port = relay_port(c);
        if (host == NULL) {
            say("out of memory");
            return EX_TEMPFAIL;
        }
    }
    char *dir = find_state_dir(pg);
    if (dir == NULL) {
        free(host);
        return EX_CONFIG;
    }
    /* The library's layout (src/tls/state.c): tofu/HOST:PORT, with bytes
     * other than letters, digits, ':', '_', '-' and a '.' after the first
     * replaced by '_'. */
    char path[4096];
    int k = snprintf(path, sizeof path, "%s/tofu/", dir);
    for (size_t i = 0; host[i] != '\0' && k > 0 && (size_t)k + 1 < sizeof path; i++) {
        char ch = host[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == ':' || ch == '_' || ch == '-' ||
                  (ch == '.' && i > 0);
        path[k++] = ok ? ch : '_';
        path[k] = '\0';
    }
    if (k > 0 && (size_t)k < sizeof path)
        snprintf(path + k, sizeof path - (size_t)k, ":%u", (unsigned)port);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            say("no key is pinned for [%s]:%u (no file %s); the next connection records the "
                "server's key", host, (unsigned)port, path);
            ex = EX_NOINPUT;
        } else {
            say("cannot open %s: %s", path, strerror(errno));
            ex = errno == EACCES ? EX_NOPERM : EX_IOERR;
        }
        goto out;
    }
    char record[4096];
    ssize_t n = read(fd, record, sizeof record - 1);
    close(fd);
    record[n > 0 ? n : 0] = '\0';
    char shown[300] = "";
    describe_record(record, shown, sizeof shown);
    if (unlink(path) != 0) {
        say("cannot remove %s: %s", path, strerror(errno));
        ex = errno == EACCES || errno == EPERM ? EX_NOPERM : EX_IOERR;
        goto out;
    }
    printf("removed the key pinned for [%s]:%u (%s) from %s; the next connection records the "
           "server's current key: check it first with hato --probe\n", host, (unsigned)port,
           shown[0] ? shown : "an empty record", path);
    if (c->tls_level != HATO_TLS_TOFU)
        say("warning: smtp_tls_security_level is not tofu in %s, so keys are not pinned",
            c->path);
out:
    free(dir);
    free(host);
    return ex;
}

/* ------------------------------------------------------------------ */

static int run(struct program *pg, int argc, char **argv)
{
    char err[2048];
    int ex;

    gettimeofday(&pg->start, NULL);
    if (args_parse(&pg->args, argc, argv, err, sizeof err) != 0) {
        say("%s", err);
        if (strstr(err, "option") != NULL)
            say("%s", args_usage());
        return EX_USAGE;
    }

    struct config_env env = {NULL, config_warning, NULL};
    enum config_status cs = config_load(&pg->cfg, pg->args.config, &env, err, sizeof err);
    if (cs != CONFIG_OK) {
        say("%s", err);
        if (cs == CONFIG_NOMEM)
            return EX_TEMPFAIL;
        return cs == CONFIG_UNREADABLE && pg->cfg.open_errno == EACCES ? EX_NOPERM : EX_CONFIG;
    }
    if (pg->args.mode == ARGS_TOFU_ACCEPT)
        return tofu_accept(pg);
    if (pg->cfg.relay_host == NULL) {
        say("relayhost is not set in %s; hato sends through a relay: write, for example, "
            "relayhost = [smtp.example.com]:587", pg->cfg.path);
        return EX_CONFIG;
    }

    if ((ex = find_user(pg)) != EX_OK)
        return ex;

    /* Envelope sender: -f, else the user at myorigin. */
    if (pg->args.sender != NULL) {
        char *a = NULL;
        int rc = headers_parse_addresses(pg->args.sender, strlen(pg->args.sender), first_address, &a);
        if (rc < 0)
            return EX_TEMPFAIL;
        pg->sender = a ? qualify(a, pg->cfg.myorigin) : strdup("");
        free(a);
    } else {
        pg->sender = qualify(pg->user, pg->cfg.myorigin);
    }
    if (pg->sender == NULL)
        return EX_TEMPFAIL;
    if (pg->args.mode == ARGS_PROBE)
        return probe(pg);

    for (size_t i = 0; i < pg->args.nrecipients; i++) {
        const char *r = pg->args.recipients[i];
        size_t before = pg->nparsed;
        if (headers_parse_addresses(r, strlen(r), add_rcpt, pg) != 0)
            return EX_TEMPFAIL;
        if (pg->nparsed == before) {
            say("recipient argument \"%s\" holds no address", r);
            return EX_USAGE;
        }
    }

    if ((ex = read_header_section(pg)) != EX_OK)
        return ex;
    if (pg->nrcpts == 0) {
        if (pg->args.extract) {
            say("no recipients: the message has no To, Cc or Bcc addresses and none were given as arguments");
            return EX_DATAERR;
        }
        say("no recipients given; name them as arguments, or use -t to read them from the message's To, Cc and Bcc");
        return EX_USAGE;
    }

    if (maillog_open(&pg->log, pg->cfg.maillog_file, pg->cfg.myhostname, err, sizeof err) != 0)
        say("warning: %s", err);
    pg->log_open = true;

    return send_message(pg);
}

int main(int argc, char **argv)
{
    static struct program pg; /* large input buffer: not on the stack */
    int ex = run(&pg, argc, argv);

    if (pg.log_open)
        maillog_close(&pg.log);
    for (size_t i = 0; i < pg.nrcpts; i++)
        free(pg.rcpts[i]);
    free(pg.rcpts);
    free(pg.sender);
    free(pg.user);
    free(pg.gecos_name);
    free(pg.head);
    free(pg.hbuf);
    config_free(&pg.cfg);
    args_free(&pg.args);
    if (fflush(stdout) != 0 && ex == EX_OK)
        ex = EX_IOERR;
    return ex;
}
