/*
 * args.h - the sendmail-compatible command line.
 */
#ifndef HATO_PROGRAM_ARGS_H
#define HATO_PROGRAM_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#define ARGS_DEFAULT_CONFIG "/etc/hato.conf"

enum args_mode {
    ARGS_SEND = 0,        /* read a message and send it */
    ARGS_PROBE,           /* --probe: diagnose the relay, send nothing */
    ARGS_TOFU_ACCEPT,     /* --tofu-accept [[host]:port]: forget a pinned key */
};

struct args {
    enum args_mode mode;
    const char *tofu_target; /* --tofu-accept's argument, or NULL: the relay */
    const char *sender;      /* -f / -r, or NULL; borrowed from argv */
    const char *full_name;   /* -F, or NULL; borrowed from argv */
    const char *config;      /* -C, else ARGS_DEFAULT_CONFIG */
    bool dot_ends;           /* false with -i / -oi */
    bool extract;            /* -t */
    int verbose;             /* count of -v */
    /* Recipients on the command line: pointers into argv, in order.  The
     * array is owned by the struct (args_free); the strings are not. */
    const char **recipients;
    size_t nrecipients;
};

/* Parses argv (options may appear anywhere before "--", as GNU getopt
 * permutes; everything after "--" is a recipient).  --probe and
 * --tofu-accept take no recipients; --tofu-accept takes one optional word,
 * the relay ("--tofu-accept [host]:port" or "--tofu-accept=[host]:port").  Returns 0, or -1 with a
 * one-line reason in err (usage error, exit 64) -- then nothing needs
 * freeing.  On success free with args_free(). */
int args_parse(struct args *a, int argc, char **argv, char *err, size_t errlen);
void args_free(struct args *a);

/* The usage text, one line per form, without the "hato: " prefix. */
const char *args_usage(void);

/* True when s holds CR or LF (NUL cannot occur in argv). */
bool args_has_line_break(const char *s);

#endif
