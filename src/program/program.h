/*
 * program.h - what the hato program's files share: the one struct program
 * that main() owns, say(), and the functions one file calls in another.
 *
 * main.c      arguments, config, envelope, then the rest in order
 * envelope.c  sender and recipients: aliases, rewriting; -bv, newaliases
 * input.c     standard input, the header section, the library's reader
 * settings.c  the configuration turned into hato_options
 * send.c      spool first, then deliver from the queue; retry and bounce
 * commands.c  --probe, --tofu-accept, -q and -bp
 * smtpd.c     -bs: an SMTP server dialogue on standard input and output
 * queue.c     the spool's files (queue.h); dsn.c the bounce report
 */
#ifndef HATO_PROGRAM_PROGRAM_H
#define HATO_PROGRAM_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "hato.h"

#include "aliases.h"
#include "args.h"
#include "config.h"
#include "headers.h"
#include "maillog.h"
#include "rewrite.h"

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
    size_t nrcpts_over;    /* addresses past HATO_MAX_RECIPIENTS + 1, not kept */
    size_t nparsed;        /* addresses seen, duplicates included */
    char *sender;          /* envelope sender, owned; "" is <> */
    char *user;            /* the invoking user's login name, owned */
    char *gecos_name;      /* display name from the password file, owned */

    /* envelope.c: alias_maps (read at the first local recipient) and the
     * sender rewriting tables; freed by envelope_free(). */
    struct aliases aliases;
    bool aliases_loaded;
    struct aliases_expander expander;
    struct rewrite_map canonical, generic;

    /* Input: raw bytes from fd 0 (or from in_read: -bs hands each
     * message's DATA this way, smtpd.c), then the dot filter. */
    ptrdiff_t (*in_read)(void *user, char *buf, size_t cap); /* -1 error, 0 end */
    void *in_user;
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

/* main.c: opens maillog_file (through the spool group where hato is
 * installed setgid), or syslog; sets pg->log_open. */
void open_maillog(struct program *pg);

/* envelope.c: addr, or addr@origin for a bare local name (malloc'd);
 * one recipient, local ones through the aliases, each final address
 * qualified and kept once (a headers_parse_addresses callback for the
 * arguments and for -t); the envelope sender from -f or the user,
 * rewritten (an exit code; loads the rewriting tables); the same for a
 * given address once the tables are loaded (-bs's MAIL FROM; "" is <>;
 * 0, or -1 out of memory); the address for
 * the From hato adds (malloc'd, NULL out of memory); the header section
 * h[0..len) as it is sent -- Bcc and Resent-Bcc removed, sender fields
 * rewritten -- into *out (malloc'd; 0, or -1 out of memory); -bv's report
 * and newaliases (exit codes); what envelope.c allocated, freed. */
char *qualify(const char *addr, const char *origin);
int add_rcpt(void *user, const char *address);
int envelope_sender(struct program *pg);
int envelope_set_sender(struct program *pg, const char *address);
char *envelope_from_address(struct program *pg);
int envelope_edit_header(struct program *pg, const char *h, size_t len, char **out,
                         size_t *outlen);
int verify_recipients(struct program *pg);
int newaliases(struct program *pg);
void envelope_free(struct program *pg);

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
/* The relay for mail from sender: its entry in
 * sender_dependent_relayhost_maps, else relayhost.  r->host is malloc'd
 * (the caller frees it).  EX_OK, or an exit code after saying why. */
int relay_for_sender(struct program *pg, const char *sender, struct config_relay *r);
char *find_state_dir(struct program *pg);

/* send.c: the message spooled, then sent from the queue, each recipient
 * reported (an exit code: 0 once the message is safe in the queue); the
 * one line that describes a failed send or probe. */
int submit_message(struct program *pg);

/* send.c, for -bs: the message (pg's envelope, the header section already
 * read) into d's spool -- e loaded and locked on QUEUE_OK, logged as a
 * submission is -- and later its first attempt (an exit code). */
struct delivery;
struct queue_entry;
int submit_spool(struct delivery *d, struct queue_entry *e, bool *read_failed, char *err,
                 size_t errlen);
int submit_attempt(struct delivery *d, struct queue_entry *e);
void failure_line(struct program *pg, hato_code rc, const hato_error *e, int ex,
                  const char *relay, char *line, size_t size);

/* send.c: a run over the queue (flush).  delivery_start opens the spool
 * (NULL with *ex set); delivery_run tries one loaded, locked entry -- or,
 * with skip_error, only applies expiry -- and sets *relay_down when no
 * connection could be made; delivery_end frees. */
struct delivery;
struct queue_entry;
struct queue_spool;
struct delivery *delivery_start(struct program *pg, int *ex);
struct queue_spool *delivery_spool(struct delivery *d);
int delivery_run(struct delivery *d, struct queue_entry *e, const char *skip_error,
                 bool *relay_down);
void delivery_end(struct delivery *d);

/* commands.c: --probe, --tofu-accept, -q (flush) and -bp (list), exit
 * codes. */
int probe(struct program *pg);
int tofu_accept(struct program *pg);
int flush_queue(struct program *pg);
int list_queue(struct program *pg);

#endif
