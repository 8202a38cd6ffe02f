/*
 * smtpd.h - hato -bs: a small SMTP server dialogue on standard input and
 * output, run per connection by inetd or a systemd socket unit
 * (Accept=yes), in front of the same queue as a command-line submission.
 *
 * Three parts, the first two without I/O so the unit tests drive them:
 * the command parser (smtpd_parse), the session state machine (smtpd_*:
 * one complete command line in, replies appended to an output buffer, an
 * action out), and the DATA decoder (dot-unstuffing, CRLF to the spool's
 * LF, the end-of-data line).  smtpd_run() is the blocking loop on fd 0/1
 * that spools each message through send.c.  docs/lan.md is the user's
 * page; what is not offered (STARTTLS) is listed there.
 *
 * AUTH (RFC 4954, PLAIN and LOGIN) is offered only when the program sets
 * auth_offered, which it does only for a client already in mynetworks; the
 * session decodes the exchange and asks the program's auth hook, which
 * checks smtpd_sasl_password_file through smtpd_password_check().
 */
#ifndef HATO_PROGRAM_SMTPD_H
#define HATO_PROGRAM_SMTPD_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1.4 allows 512 octets for a command line; ESMTP
 * parameters lengthen MAIL (4.5.3.1.4 again), so hato takes up to the
 * 1000 octets of a text line (4.5.3.1.6), CRLF included. */
#define SMTPD_MAX_LINE 1000
/* RFC 5321 4.5.3.1.3: a path is at most 256 octets with its brackets. */
#define SMTPD_MAX_PATH 256
/* RFC 5321 4.5.3.1.8 asks for at least 100; Postfix's
 * smtpd_recipient_limit is 1000. */
#define SMTPD_MAX_RCPTS 1000
/* Replies wait here until the loop would block (PIPELINING, RFC 2920
 * section 3.1: the server may group replies). */
#define SMTPD_OUT 8192
/* A SASL user name (RFC 4954 leaves it open; Postfix's limit for a
 * login name is 255, and it is logged with every message). */
#define SMTPD_MAX_USER 255
/* The smtpd_sasl_password_file read per attempt: a household's list of
 * users, not a directory; a larger file is refused, not read in part. */
#define SMTPD_MAX_PASSWORD_FILE (1024 * 1024)

enum smtpd_verb {
    SMTPD_CMD_UNKNOWN = 0,
    SMTPD_CMD_EHLO, SMTPD_CMD_HELO, SMTPD_CMD_MAIL, SMTPD_CMD_RCPT, SMTPD_CMD_DATA,
    SMTPD_CMD_RSET, SMTPD_CMD_NOOP, SMTPD_CMD_QUIT, SMTPD_CMD_VRFY, SMTPD_CMD_HELP,
    SMTPD_CMD_AUTH,         /* 502 unless auth_offered */
    SMTPD_CMD_NOT_OFFERED,  /* STARTTLS, EXPN, BDAT, ETRN, TURN: 502 */
};

enum smtpd_body { SMTPD_BODY_UNSET = 0, SMTPD_BODY_7BIT, SMTPD_BODY_8BITMIME };

struct smtpd_command {
    enum smtpd_verb verb;
    const char *arg;                /* into the line: after the verb, trimmed */
    size_t arg_len;
    char path[SMTPD_MAX_PATH + 1];  /* MAIL/RCPT: inside <>, source route
                                       dropped; "" for <> */
    bool has_size;                  /* MAIL SIZE= (RFC 1870) */
    unsigned long long size;
    enum smtpd_body body;           /* MAIL BODY= (RFC 6152) */
    const char *mech;               /* AUTH: the mechanism, into the line */
    size_t mech_len;
    const char *initial;            /* AUTH: the initial response or NULL */
    size_t initial_len;
    char reply[160];                /* the error reply when parsing fails */
};

/* Parses one command line, its CRLF removed.  Returns 0, or -1 with
 * c->reply holding the whole reply line without CRLF ("501 5.5.4 ...").
 * An unknown verb is not a parse error: verb is SMTPD_CMD_UNKNOWN. */
int smtpd_parse(const char *line, size_t len, struct smtpd_command *c);

enum smtpd_state {
    SMTPD_REFUSED = 0,  /* 554 greeting sent: only QUIT (RFC 5321 3.1) */
    SMTPD_GREETED,      /* 220 sent, waiting for EHLO/HELO */
    SMTPD_READY,        /* no transaction */
    SMTPD_MAIL,         /* sender accepted */
    SMTPD_RCPT,         /* one or more recipients accepted */
    SMTPD_DATA,         /* 354 sent: the loop reads the message */
    SMTPD_AUTH,         /* 334 sent: the next line is a SASL response */
    SMTPD_CLOSED,       /* 221 or 421 sent */
    SMTPD_STATE_COUNT_
};
const char *smtpd_state_name(enum smtpd_state s);

enum smtpd_action {
    SMTPD_CONTINUE = 0,
    SMTPD_RECEIVE,      /* read the message, then smtpd_data_done() */
    SMTPD_CLOSE,        /* flush the output and end the connection */
};

enum smtpd_auth_result { SMTPD_AUTH_OK = 0, SMTPD_AUTH_BAD, SMTPD_AUTH_TEMPFAIL };

/* What the session asks of the program.  mail and rcpt return NULL, or a
 * reply line for a failure (static or in the program's memory).  refused
 * sees every 4xx/5xx reply, for the maillog (a failed AUTH with the
 * mechanism and user name, never the password).  auth checks a user name
 * and password (both borrowed, wiped by the session afterwards); it is
 * called only when auth_offered. */
struct smtpd_hooks {
    const char *(*mail)(void *user, const char *sender);
    const char *(*rcpt)(void *user, const char *recipient);
    void (*reset)(void *user);
    void (*refused)(void *user, const char *command, const char *reply);
    void (*trace)(void *user, enum smtpd_state from, enum smtpd_state to);
    enum smtpd_auth_result (*auth)(void *user, const char *username, const char *password);
    void *user;
};

enum smtpd_mech { SMTPD_MECH_NONE = 0, SMTPD_MECH_PLAIN, SMTPD_MECH_LOGIN };

struct smtpd {
    enum smtpd_state state;
    struct smtpd_hooks hooks;
    const char *hostname;           /* borrowed */
    char client[80];                /* "[192.0.2.1]" or "local", for replies */
    unsigned long long size_limit;  /* message_size_limit; 0 none */
    unsigned error_limit;           /* smtpd_hard_error_limit; 0 none */
    unsigned message_limit;         /* per connection; 0 none */
    bool auth_offered;              /* smtpd_sasl_auth_enable, client trusted */
    bool auth_required;             /* smtpd_sasl_auth_required: 530 before AUTH */
    unsigned errors, messages, nrcpts;
    /* AUTH: the mechanism in progress (state SMTPD_AUTH) or that succeeded,
     * and the user name (LOGIN's first step; after 235 the one logged
     * with each message as sasl_username=). */
    enum smtpd_mech mech;
    bool authenticated;
    char auth_user[SMTPD_MAX_USER + 1];
    char out[SMTPD_OUT];
    size_t out_len;
};

/* Starts a session: the 220 greeting, or for a refused client the 554
 * with why (e.g. "client [192.0.2.1] is not in mynetworks"). */
void smtpd_start(struct smtpd *s, bool refused, const char *why);

/* One command line without its line end; too_long when the client's line
 * was longer than SMTPD_MAX_LINE (the line is then ignored). */
enum smtpd_action smtpd_line(struct smtpd *s, const char *line, size_t len, bool too_long);

/* The message's outcome after SMTPD_RECEIVE: reply is the whole reply
 * line; a 2xx counts the message. */
void smtpd_data_done(struct smtpd *s, const char *reply);

/* The client stayed silent for smtpd_timeout: 421, closed. */
void smtpd_timed_out(struct smtpd *s);

/* The DATA decoder: a byte-wise state machine, so a line of any length
 * passes with bounded memory.  Leading dots are removed (RFC 5321
 * 4.5.2), CRLF becomes LF (the spool holds Unix line ends; the relay
 * client turns them back), a lone CR stays, ".CRLF" ends the message and
 * nothing after it is consumed (pipelined commands stay buffered). */
struct smtpd_data {
    int state;
    bool ended;
};
/* Decodes in[0..len) into out (cap >= 2), returns bytes written, *used
 * bytes consumed. */
size_t smtpd_data_decode(struct smtpd_data *d, const char *in, size_t len, size_t *used,
                         char *out, size_t cap);

/* Strict base64 (RFC 4648 section 4, padding required) of in[0..len)
 * into out (cap bytes): the decoded length, or -1 for a bad character,
 * bad padding, or output that would pass cap. */
ptrdiff_t smtpd_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* Checks user and password against the text of an smtpd_sasl_password_file
 * (lines "user:crypt-hash"; blank lines and '#' comments skipped) with
 * crypt(3).  SMTPD_AUTH_OK, SMTPD_AUTH_BAD (no such user, wrong password,
 * a hash crypt() does not know), never TEMPFAIL.  The text is borrowed
 * and not changed; crypt()'s static result is wiped. */
enum smtpd_auth_result smtpd_password_check(const char *text, size_t len, const char *user,
                                            const char *password);

struct program;
/* The whole -bs session on fd 0 and 1; an exit code. */
int smtpd_run(struct program *pg);

#endif
