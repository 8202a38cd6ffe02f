/*
 * args.c - parsing the sendmail command line.
 *
 * The option letters and their arguments follow Postfix's sendmail(1)
 * (getopt "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx"): flags may be
 * grouped ("-ti"), an option's argument may be joined ("-fADDR", "-oi") or
 * the next word ("-f ADDR").  -q is the exception, as in sendmail: its
 * argument (an interval, R site, I queue id) is only ever joined, so that
 * "-q" alone flushes.  Options that mean nothing to a relay-only program are
 * accepted and ignored where Postfix ignores them.
 */
#include "args.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *args_usage(void)
{
    return "usage: hato [-itv] [-f sender] [-F full_name] [-C config_file] [-N dsn] [-R hdrs|full]\n"
           "            [-V envid] [-B 7BIT|8BITMIME] [-odi|-odq] [-oX] [--] [recipient ...]\n"
           "       hato -q[interval] | -bp | -bi [-C config_file]   (also as mailq, newaliases)\n"
           "       hato -bv [-t] [-C config_file] recipient ...\n"
           "       hato --probe [-v] [-f sender] [-C config_file]\n"
           "       hato --tofu-accept [[host]:port] [-C config_file]";
}

const char *args_mode_option(enum args_mode mode)
{
    switch (mode) {
    case ARGS_SEND: return "-bm";
    case ARGS_PROBE: return "--probe";
    case ARGS_TOFU_ACCEPT: return "--tofu-accept";
    case ARGS_FLUSH: return "-q";
    case ARGS_LIST: return "-bp";
    case ARGS_NEWALIASES: return "-bi";
    case ARGS_SMTP_STDIO: return "-bs";
    case ARGS_VERIFY: return "-bv";
    }
    return "?";
}

bool args_has_line_break(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") != NULL;
}

int args_parse_interval(const char *s, unsigned *seconds)
{
    unsigned long long total = 0;
    if (*s == '\0')
        return -1;
    while (*s != '\0') {
        if (!isdigit((unsigned char)*s))
            return -1;
        unsigned long long n = 0;
        while (isdigit((unsigned char)*s)) {
            n = n * 10 + (unsigned)(*s++ - '0');
            if (n > UINT_MAX)
                return -1;
        }
        unsigned long long mult;
        switch (*s) {
        case '\0': mult = 60; break; /* sendmail's unit for -q is minutes */
        case 's': mult = 1; s++; break;
        case 'm': mult = 60; s++; break;
        case 'h': mult = 3600; s++; break;
        case 'd': mult = 86400; s++; break;
        case 'w': mult = 604800; s++; break;
        default: return -1;
        }
        total += n * mult;
        if (total > UINT_MAX)
            return -1;
    }
    *seconds = (unsigned)total;
    return 0;
}

/* Option letters that take an argument (joined or the next word). */
static bool takes_argument(char c)
{
    return c != '\0' && strchr("ABCFLNORVXbefhopr", c) != NULL;
}

static int add_recipient(struct args *a, const char *r, size_t *cap)
{
    if (a->nrecipients == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        const char **v = realloc(a->recipients, ncap * sizeof *v);
        if (v == NULL)
            return -1;
        a->recipients = v;
        *cap = ncap;
    }
    a->recipients[a->nrecipients++] = r;
    return 0;
}

/* -N: "never", or a list of success, delay, failure (commas or spaces). */
static int parse_notify(const char *arg, unsigned *out)
{
    unsigned bits = 0;
    const char *p = arg;
    while (*p != '\0') {
        size_t n = strcspn(p, ", \t");
        if (n == 0) {
            p++;
            continue;
        }
        if (n == 5 && strncasecmp(p, "never", 5) == 0)
            bits |= ARGS_NOTIFY_NEVER;
        else if (n == 7 && strncasecmp(p, "success", 7) == 0)
            bits |= ARGS_NOTIFY_SUCCESS;
        else if (n == 5 && strncasecmp(p, "delay", 5) == 0)
            bits |= ARGS_NOTIFY_DELAY;
        else if (n == 7 && strncasecmp(p, "failure", 7) == 0)
            bits |= ARGS_NOTIFY_FAILURE;
        else
            return -1;
        p += n;
    }
    /* RFC 3461 section 4.1: NEVER stands alone. */
    if (bits == 0 || ((bits & ARGS_NOTIFY_NEVER) && bits != ARGS_NOTIFY_NEVER))
        return -1;
    *out = bits;
    return 0;
}

static bool printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 33 || (unsigned char)*s > 126)
            return false;
    return true;
}

/* -b: the mode letters. */
static int apply_b(struct args *a, const char *arg, char *err, size_t errlen)
{
    if (strcmp(arg, "m") == 0) {
        a->mode = ARGS_SEND;
    } else if (strcmp(arg, "p") == 0) {
        a->mode = ARGS_LIST;
    } else if (strcmp(arg, "i") == 0) {
        a->mode = ARGS_NEWALIASES;
    } else if (strcmp(arg, "s") == 0) {
        a->mode = ARGS_SMTP_STDIO;
    } else if (strcmp(arg, "v") == 0) {
        a->mode = ARGS_VERIFY;
    } else if (strcmp(arg, "d") == 0 || strcmp(arg, "D") == 0) {
        snprintf(err, errlen, "option -b%s: hato is not a daemon; run \"hato -q\" from cron or a "
                              "systemd timer to flush the queue, and \"hato -bs\" from a socket unit "
                              "to take mail from the network", arg);
        return -1;
    } else {
        snprintf(err, errlen, "option -b%s is not supported (hato knows -bm, -bp, -bi, -bs and -bv)",
                 arg);
        return -1;
    }
    return 0;
}

/* -o: sendmail's one-letter options; only -oi, -oA and -od have a meaning. */
static int apply_o(struct args *a, const char *arg, char *err, size_t errlen)
{
    switch (arg[0]) {
    case 'i':
        if (arg[1] == '\0')
            a->dot_ends = false;
        return 0;
    case 'A':
        if (arg[1] == '\0') {
            snprintf(err, errlen, "option -oA needs the alias file, joined: -oA/etc/aliases");
            return -1;
        }
        a->alias_database = arg + 1;
        return 0;
    case 'd':
        /* Delivery mode: i(nteractive), b(ackground), f(oreground) send
         * now; q(ueue) and d(efer) only queue. */
        if (arg[1] == 'q' || arg[1] == 'd')
            a->queue_only = true;
        else if (arg[1] == 'i' || arg[1] == 'b' || arg[1] == 'f')
            a->queue_only = false;
        return 0;
    default:
        /* -oem/-oep/-oeq/-oew (error mode), -om, -o7, -o8, -oQ... */
        return 0;
    }
}

/* -q with its joined argument (may be ""). */
static int apply_q(struct args *a, const char *arg, char *err, size_t errlen)
{
    a->mode = ARGS_FLUSH;
    if (arg[0] == '\0')
        return 0;
    /* -qRsite, -qIqueueid, -qSsender: hato keeps one queue for one relay,
     * so every form flushes all of it (more than asked, never less). */
    if (arg[0] == 'R' || arg[0] == 'I' || arg[0] == 'S')
        return 0;
    if (args_parse_interval(arg, &a->flush_interval) != 0) {
        snprintf(err, errlen, "option -q%s: not a queue interval; write -q alone, or -q with a time "
                              "such as -q30m or -q1h", arg);
        return -1;
    }
    return 0;
}

/* Applies option c with its argument; 0 or -1 with err set. */
static int apply(struct args *a, char c, const char *arg, char *err, size_t errlen)
{
    switch (c) {
    case 'f':
    case 'r':
        if (args_has_line_break(arg)) {
            snprintf(err, errlen, "sender given with -%c holds a line break; refused", c);
            return -1;
        }
        a->sender = arg;
        return 0;
    case 'F':
        if (args_has_line_break(arg)) {
            snprintf(err, errlen, "full name given with -F holds a line break; refused");
            return -1;
        }
        a->full_name = arg;
        return 0;
    case 'C':
        a->config = arg;
        return 0;
    case 'o':
        return apply_o(a, arg, err, errlen);
    case 'b':
        return apply_b(a, arg, err, errlen);
    case 'N':
        if (parse_notify(arg, &a->notify) != 0) {
            snprintf(err, errlen, "option -N %s: use never, or one or more of success, delay, "
                                  "failure separated by commas", arg);
            return -1;
        }
        return 0;
    case 'R':
        if (strcasecmp(arg, "hdrs") == 0) {
            a->ret = ARGS_RET_HDRS;
        } else if (strcasecmp(arg, "full") == 0) {
            a->ret = ARGS_RET_FULL;
        } else {
            snprintf(err, errlen, "option -R %s: use hdrs or full", arg);
            return -1;
        }
        return 0;
    case 'V':
        if (arg[0] == '\0' || strlen(arg) > ARGS_MAX_ENVID || !printable_ascii(arg)) {
            snprintf(err, errlen, "option -V: the envelope id must be 1 to %d printable ASCII "
                                  "characters without spaces (RFC 3461)", ARGS_MAX_ENVID);
            return -1;
        }
        a->envid = arg;
        return 0;
    case 'B':
        if (strcasecmp(arg, "7BIT") == 0) {
            a->body = ARGS_BODY_7BIT;
        } else if (strcasecmp(arg, "8BITMIME") == 0) {
            a->body = ARGS_BODY_8BITMIME;
        } else {
            /* BINARYMIME needs the content byte for byte (RFC 3030); hato,
             * like sendmail and Postfix, sends lines ending in CRLF. */
            snprintf(err, errlen, "option -B %s: use 7BIT or 8BITMIME%s", arg,
                     strcasecmp(arg, "BINARYMIME") == 0
                         ? " (BINARYMIME is not offered: hato, as sendmail and Postfix, sends "
                           "text lines; send binary data MIME-encoded)"
                         : "");
            return -1;
        }
        return 0;
    case 'L':
        if (arg[0] == '\0' || !printable_ascii(arg)) {
            snprintf(err, errlen, "option -L: the syslog tag must be printable ASCII without spaces");
            return -1;
        }
        a->syslog_tag = arg;
        return 0;
    case 'I':
        a->mode = ARGS_NEWALIASES;
        return 0;
    case 'i':
        a->dot_ends = false;
        return 0;
    case 't':
        a->extract = true;
        return 0;
    case 'v':
        a->verbose++;
        return 0;
    case 'h': /* hop count: Postfix ignores it too (hopcount_limit) */
    case 'A': /* -Am, -Ac: submission or relay config file */
    case 'O': /* -O option=value */
    case 'X': /* -X logfile; -XV (VERP) */
    case 'e': /* old error-mode letter */
    case 'p': /* protocol */
    case 'G': /* gateway submission */
    case 'U': /* initial user submission */
    case 'c': /* old: hold expensive connections */
    case 'm': /* me too: hato expands no sender out of aliases anyway */
    case 'n': /* no aliasing: Postfix ignores it, and so does hato */
    case 'x':
        return 0;
    default:
        snprintf(err, errlen, "unknown option -%c", c);
        return -1;
    }
}

/* The last path component of argv[0]. */
static const char *program_name(const char *argv0)
{
    if (argv0 == NULL)
        return "";
    const char *slash = strrchr(argv0, '/');
    return slash ? slash + 1 : argv0;
}

int args_parse(struct args *a, int argc, char **argv, char *err, size_t errlen)
{
    size_t cap = 0;
    bool options_done = false;

    memset(a, 0, sizeof *a);
    a->config = ARGS_DEFAULT_CONFIG;
    a->dot_ends = true;
    err[0] = '\0';

    const char *name = program_name(argc > 0 ? argv[0] : NULL);
    if (strcmp(name, "mailq") == 0)
        a->mode = ARGS_LIST;
    else if (strcmp(name, "newaliases") == 0)
        a->mode = ARGS_NEWALIASES;

    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (options_done || w[0] != '-' || w[1] == '\0') {
            if (args_has_line_break(w)) {
                snprintf(err, errlen, "recipient argument %d holds a line break; refused", i);
                goto fail;
            }
            if (add_recipient(a, w, &cap) != 0) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            continue;
        }
        if (strcmp(w, "--") == 0) {
            options_done = true;
            continue;
        }
        if (w[1] == '-') {
            if (strcmp(w, "--probe") == 0) {
                a->mode = ARGS_PROBE;
            } else if (strcmp(w, "--tofu-accept") == 0) {
                a->mode = ARGS_TOFU_ACCEPT;
                /* An optional relay: the next word unless it is an option. */
                if (i + 1 < argc && argv[i + 1][0] != '-')
                    a->tofu_target = argv[++i];
            } else if (strncmp(w, "--tofu-accept=", 14) == 0 && w[14] != '\0') {
                a->mode = ARGS_TOFU_ACCEPT;
                a->tofu_target = w + 14;
            } else {
                snprintf(err, errlen, "unknown option %s", w);
                goto fail;
            }
            continue;
        }
        for (const char *p = w + 1; *p != '\0'; p++) {
            char c = *p;
            if (c == 'q') {
                if (apply_q(a, p + 1, err, errlen) != 0)
                    goto fail;
                break; /* the rest of the word was -q's argument */
            }
            if (!takes_argument(c)) {
                if (apply(a, c, "", err, errlen) != 0)
                    goto fail;
                continue;
            }
            const char *arg = p + 1;
            if (*arg == '\0') {
                if (i + 1 >= argc) {
                    snprintf(err, errlen, "option -%c needs an argument", c);
                    goto fail;
                }
                arg = argv[++i];
            }
            if (apply(a, c, arg, err, errlen) != 0)
                goto fail;
            break; /* the rest of the word was the argument */
        }
    }
    if (a->mode != ARGS_SEND && a->mode != ARGS_VERIFY && a->nrecipients > 0) {
        snprintf(err, errlen, "%s sends no mail; remove the recipient arguments (%s%s)",
                 args_mode_option(a->mode), a->recipients[0], a->nrecipients > 1 ? " ..." : "");
        goto fail;
    }
    if (a->tofu_target != NULL && args_has_line_break(a->tofu_target)) {
        snprintf(err, errlen, "the relay given to --tofu-accept holds a line break; refused");
        goto fail;
    }
    return 0;

fail:
    free(a->recipients);
    a->recipients = NULL;
    a->nrecipients = 0;
    return -1;
}

void args_free(struct args *a)
{
    free(a->recipients);
    a->recipients = NULL;
    a->nrecipients = 0;
}
