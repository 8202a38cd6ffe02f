/*
 * program.h - what the hato program's files share: the one struct program
 * that main() owns, say(), and the functions one file calls in another.
 *
 * main.c      arguments, config, envelope, then the rest in order
 * input.c     standard input, the header section, the library's reader
 * settings.c  the configuration turned into hato_options
 * send.c      one message sent, each recipient reported
 * commands.c  --probe and --tofu-accept
 */
#ifndef HATO_PROGRAM_PROGRAM_H
#define HATO_PROGRAM_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "hato.h"

#include "args.h"
#include "config.h"
#include "headers.h"
#include "maillog.h"

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

/* "hato: " + the message + newline on standard error. */
void say(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* main.c: envelope addresses. */
char *qualify(const char *addr, const char *origin);
int add_rcpt(void *user, const char *address);

/* input.c: the header section read and head built (an exit code), and
 * the library's reader for the whole message. */
int read_header_section(struct program *pg);
ptrdiff_t body_reader(void *user, char *buf, size_t cap);

/* settings.c: the configuration into o (an exit code); the exit code for a
 * setting the library refused; the relay's port, 465 or 587 unless set;
 * the state directory, malloc'd, or NULL. */
int build_options(struct program *pg, hato_options *o);
int options_fail(hato_code rc, const char *what);
uint16_t relay_port(const struct config *c);
char *find_state_dir(struct program *pg);

/* send.c: the message sent and each recipient reported (an exit code);
 * the one line that describes a failed send or probe. */
int send_message(struct program *pg);
void failure_line(struct program *pg, hato_code rc, const hato_error *e, int ex,
                  const char *relay, char *line, size_t size);

/* commands.c: --probe and --tofu-accept (exit codes). */
int probe(struct program *pg);
int tofu_accept(struct program *pg);

#endif
