/*
 * args.c - parsing the sendmail command line.
 *
 * The option letters follow Postfix's sendmail(1): flags may be grouped
 * ("-ti"), an option's argument may be joined ("-fADDR", "-oi") or the next
 * word ("-f ADDR").  Options sendmail programs pass out of habit are
 * accepted: any "-oX" (only -oi has a meaning) and "-bm".
 */
#include "args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *args_usage(void)
{
    return "usage: hato [-itv] [-f sender] [-F full_name] [-C config_file] [-oX] [--] [recipient ...]\n"
           "       hato --probe [-v] [-f sender] [-C config_file]\n"
           "       hato --tofu-accept [[host]:port] [-C config_file]";
}

bool args_has_line_break(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") != NULL;
}

/* Option letters that take an argument. */
static bool takes_argument(char c)
{
    return c == 'f' || c == 'r' || c == 'F' || c == 'C' || c == 'o' || c == 'b';
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
        /* -oi is the only one with a meaning; sendmail's other -o options
         * (-oem, -odi, -oQ...) are accepted and ignored. */
        if (arg[0] == 'i' && arg[1] == '\0')
            a->dot_ends = false;
        return 0;
    case 'b':
        if (strcmp(arg, "m") == 0)
            return 0;
        snprintf(err, errlen, "option -b%s is not supported (hato only sends: -bm)", arg);
        return -1;
    case 'i':
        a->dot_ends = false;
        return 0;
    case 't':
        a->extract = true;
        return 0;
    case 'v':
        a->verbose++;
        return 0;
    default:
        snprintf(err, errlen, "unknown option -%c", c);
        return -1;
    }
}

int args_parse(struct args *a, int argc, char **argv, char *err, size_t errlen)
{
    size_t cap = 0;
    bool options_done = false;

    memset(a, 0, sizeof *a);
    a->config = ARGS_DEFAULT_CONFIG;
    a->dot_ends = true;
    err[0] = '\0';

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
            if (!takes_argument(c)) {
                if (apply(a, c, NULL, err, errlen) != 0)
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
    if (a->mode != ARGS_SEND && a->nrecipients > 0) {
        snprintf(err, errlen, "%s sends no mail; remove the recipient arguments (%s%s)",
                 a->mode == ARGS_PROBE ? "--probe" : "--tofu-accept", a->recipients[0],
                 a->nrecipients > 1 ? " ..." : "");
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
