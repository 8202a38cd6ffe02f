/*
 * args.h - the sendmail-compatible command line.
 *
 * Every option Postfix's sendmail(1) knows is parsed: the ones with a
 * meaning for hato set a field below, the rest are accepted and ignored as
 * Postfix ignores them (docs/hato.8 lists which).  What the program then
 * does with each mode is main.c's business; this file only records it.
 */
#ifndef HATO_PROGRAM_ARGS_H
#define HATO_PROGRAM_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#define ARGS_DEFAULT_CONFIG "/etc/hato.conf"

/* RFC 3461 section 4.4: an ENVID is at most 100 characters. */
#define ARGS_MAX_ENVID 100

enum args_mode {
    ARGS_SEND = 0,        /* read a message and send it (-bm, the default) */
    ARGS_PROBE,           /* --probe: diagnose the relay, send nothing */
    ARGS_TOFU_ACCEPT,     /* --tofu-accept [[host]:port]: forget a pinned key */
    ARGS_FLUSH,           /* -q, -qTIME, -qRsite, -qIid: flush the queue once */
    ARGS_LIST,            /* -bp, or invoked as mailq: list the queue */
    ARGS_NEWALIASES,      /* -bi, -I, or invoked as newaliases: check aliases */
    ARGS_SMTP_STDIO,      /* -bs: SMTP on standard input and output */
    ARGS_VERIFY,          /* -bv: print where each recipient goes, send nothing */
};

/* -N: RFC 3461 NOTIFY.  0 means "not given" (the relay's default). */
#define ARGS_NOTIFY_NEVER   0x1u
#define ARGS_NOTIFY_SUCCESS 0x2u
#define ARGS_NOTIFY_DELAY   0x4u
#define ARGS_NOTIFY_FAILURE 0x8u

enum args_ret { ARGS_RET_UNSET = 0, ARGS_RET_HDRS, ARGS_RET_FULL };            /* -R */
enum args_body { ARGS_BODY_UNSET = 0, ARGS_BODY_7BIT, ARGS_BODY_8BITMIME };    /* -B */

/* Every pointer is borrowed from argv, except the recipients array. */
struct args {
    enum args_mode mode;
    const char *tofu_target; /* --tofu-accept's argument, or NULL: the relay */
    const char *sender;      /* -f / -r, or NULL */
    const char *full_name;   /* -F, or NULL */
    const char *config;      /* -C, else ARGS_DEFAULT_CONFIG */
    bool dot_ends;           /* false with -i / -oi */
    bool extract;            /* -t */
    int verbose;             /* count of -v */

    bool queue_only;         /* -odq / -odd: queue the message, do not send now */
    unsigned flush_interval; /* -qTIME in seconds (hato flushes once: see hato.8); 0 none */
    unsigned notify;         /* -N: ARGS_NOTIFY_* bits, 0 when not given */
    enum args_ret ret;       /* -R */
    const char *envid;       /* -V, or NULL; printable ASCII, at most ARGS_MAX_ENVID */
    enum args_body body;     /* -B */
    const char *syslog_tag;  /* -L, or NULL: "hato" */
    const char *alias_database; /* -oA, or NULL: alias_database from the config */

    /* Recipients on the command line: pointers into argv, in order.  The
     * array is owned by the struct (args_free); the strings are not. */
    const char **recipients;
    size_t nrecipients;
};

/* Parses argv (options may appear anywhere before "--", as GNU getopt
 * permutes; everything after "--" is a recipient).  argv[0]'s last path
 * component "mailq" starts in ARGS_LIST and "newaliases" in
 * ARGS_NEWALIASES; a later mode option wins.  Only ARGS_SEND and
 * ARGS_VERIFY take recipients; --tofu-accept takes one optional word, the
 * relay ("--tofu-accept [host]:port" or "--tofu-accept=[host]:port").
 * Returns 0, or -1 with a one-line reason in err (usage error, exit 64) --
 * then nothing needs freeing.  On success free with args_free(). */
int args_parse(struct args *a, int argc, char **argv, char *err, size_t errlen);
void args_free(struct args *a);

/* The usage text, one line per form, without the "hato: " prefix. */
const char *args_usage(void);

/* The option that selects a mode, for messages ("-bp", "--probe"). */
const char *args_mode_option(enum args_mode mode);

/* True when s holds CR or LF (NUL cannot occur in argv). */
bool args_has_line_break(const char *s);

/* sendmail's queue interval: one or more NUMBER UNIT pairs ("30m",
 * "1h30m"), units s, m, h, d, w; a bare number is minutes as in sendmail.
 * Returns 0 and *seconds, or -1. */
int args_parse_interval(const char *s, unsigned *seconds);

#endif
