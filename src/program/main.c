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
 *
 * This file is the outline: run() goes arguments, configuration,
 * envelope, header section, then send, probe or tofu-accept; program.h
 * says which file holds each part.
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include "hato.h"

#include "args.h"
#include "config.h"
#include "headers.h"
#include "maillog.h"
#include "privilege.h"
#include "program.h"
#include "smtpd.h"

void say(const char *fmt, ...)
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

    /* The spool group serves the system's spool under the system's
     * configuration only: an invoker who names another file gets a plain
     * program with their own rights (docs/security.md). */
    if (privilege_restricted() && strcmp(pg->args.config, ARGS_DEFAULT_CONFIG) != 0 &&
        privilege_give_up() != 0) {
        say("cannot drop the group privilege: %s", strerror(errno));
        return EX_OSERR;
    }
    privilege_check(pg->args.config);
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
    if (pg->args.mode == ARGS_NEWALIASES)
        return newaliases(pg);
    /* The queue (issue 4): listing needs no relay. */
    if (pg->args.mode == ARGS_LIST)
        return list_queue(pg);
    if (pg->cfg.relay_host == NULL && pg->args.mode != ARGS_VERIFY) {
        say("relayhost is not set in %s; hato sends through a relay: write, for example, "
            "relayhost = [smtp.example.com]:587", pg->cfg.path);
        return EX_CONFIG;
    }

    if ((ex = find_user(pg)) != EX_OK)
        return ex;

    /* Envelope sender: -f, else the user at myorigin; rewritten. */
    if ((ex = envelope_sender(pg)) != EX_OK)
        return ex;
    if (pg->args.mode == ARGS_SMTP_STDIO) /* LAN submission (issue 4, smtpd.h) */
        return smtpd_run(pg);
    if (pg->args.mode == ARGS_PROBE)
        return probe(pg);
    if (pg->args.mode == ARGS_FLUSH) /* the queue (issue 4) */
        return flush_queue(pg);

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

    if (pg->args.mode == ARGS_VERIFY && !pg->args.extract)
        return verify_recipients(pg);
    if ((ex = read_header_section(pg)) != EX_OK)
        return ex;
    if (pg->args.mode == ARGS_VERIFY)
        return verify_recipients(pg);
    if (pg->nrcpts == 0) {
        if (pg->args.extract) {
            say("no recipients: the message has no To, Cc or Bcc addresses and none were given as arguments");
            return EX_DATAERR;
        }
        say("no recipients given; name them as arguments, or use -t to read them from the message's To, Cc and Bcc");
        return EX_USAGE;
    }
    /* Refused before spooling: a queued message the library cannot send
     * would wait in the queue until it expires. */
    if (pg->nrcpts > HATO_MAX_RECIPIENTS) {
        say("too many recipients: %s%zu; hato sends at most %d in one message (after alias "
            "expansion); the message was NOT accepted: send it as several messages",
            pg->nrcpts_over > 0 ? "more than " : "", pg->nrcpts, HATO_MAX_RECIPIENTS);
        return pg->args.extract ? EX_DATAERR : EX_USAGE;
    }

    open_maillog(pg);

    /* The queue (issue 4): spooled first, then sent from the queue file. */
    return submit_message(pg);
}

void open_maillog(struct program *pg)
{
    char err[512];
    /* While the group is held the configuration is the system's, so
     * maillog_file is the admin's: an ordinary user's hato appends to it
     * through the spool group (a file root:hato 0660), as Postfix's
     * postdrop reaches postlogd through its group.  Any other file: syslog,
     * quietly (the warning would reach every cron job's mail). */
    bool raised = privilege_restricted() && privilege_raise() == 0;
    int lr = maillog_open(&pg->log, pg->cfg.maillog_file, pg->cfg.myhostname, err, sizeof err);
    if (raised)
        privilege_lower();
    if (lr != 0 && !privilege_restricted())
        say("warning: %s", err);
    pg->log_open = true;
}

int main(int argc, char **argv)
{
    static struct program pg; /* large input buffer: not on the stack */
    /* Before anything else: a setgid hato holds its group only around
     * spool operations (privilege.h). */
    if (privilege_init() != 0)
        return EX_OSERR;
    int ex = run(&pg, argc, argv);

    if (pg.log_open)
        maillog_close(&pg.log);
    for (size_t i = 0; i < pg.nrcpts; i++)
        free(pg.rcpts[i]);
    free(pg.rcpts);
    free(pg.sender);
    free(pg.user);
    free(pg.gecos_name);
    envelope_free(&pg);
    free(pg.head);
    free(pg.hbuf);
    config_free(&pg.cfg);
    args_free(&pg.args);
    if (fflush(stdout) != 0 && ex == EX_OK)
        ex = EX_IOERR;
    return ex;
}
