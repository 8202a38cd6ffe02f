/*
 * smtp_private.h - the SMTP state machine's insides, shared by its three
 * files: smtp.c (the connection: greeting, EHLO, STARTTLS, dispatch),
 * auth.c (AUTH) and transaction.c (MAIL, RCPT, DATA or BDAT, the body).
 *
 * Two things move independently once commands are pipelined: the state
 * says what the client is doing (writing the envelope, streaming the body,
 * waiting for the end of data); the queue of awaited replies says which
 * command the next reply answers.  Replies are matched through the queue,
 * never guessed from the state.
 */
#ifndef HATO_SESSION_SMTP_PRIVATE_H
#define HATO_SESSION_SMTP_PRIVATE_H

#include "message/body.h"
#include "message/params.h"
#include "reply/ehlo.h"
#include "reply/reply.h"
#include "sasl/sasl.h"
#include "session/smtp.h"

typedef enum smtp_state {
    SMTP_GREETING,
    SMTP_EHLO,
    SMTP_HELO,
    SMTP_STARTTLS,
    SMTP_TLS,      /* waiting for session.c to run the handshake */
    SMTP_AUTH,
    SMTP_ENVELOPE, /* MAIL, RCPT..., DATA: waiting for their replies */
    SMTP_BODY,     /* streaming the content (after 354, or in BDAT chunks) */
    SMTP_DOT,      /* the content is out; waiting for its final reply */
    SMTP_RSET,     /* after a refused transaction, before the next */
    SMTP_IDLE,     /* a message is done; the connection waits for the next */
    SMTP_QUIT,
    SMTP_DONE,
} smtp_state;

/* What an awaited reply answers. */
typedef enum smtp_expect {
    EXPECT_GREETING,
    EXPECT_EHLO,
    EXPECT_HELO,
    EXPECT_STARTTLS,
    EXPECT_AUTH,   /* the AUTH command or one response line */
    EXPECT_MAIL,
    EXPECT_RCPT,
    EXPECT_DATA,
    EXPECT_BDAT,
    EXPECT_DOT,
    EXPECT_RSET,
    EXPECT_QUIT,
} smtp_expect;

/* Awaited replies as runs of one kind (MAIL, RCPT x n, BDAT x k...): a
 * whole pipelined transaction and the AUTH and QUIT around it fit. */
#define SMTP_PENDING_RUNS 8

struct smtp {
    smtp_state state;
    const hato_options *opt; /* borrowed */
    hato_message *msg;       /* borrowed */
    const logger *log;       /* borrowed, inside opt */
    reply_parser parser;
    buf out;                 /* owned: plaintext to send */
    ehlo_caps caps;
    bool tls_active;
    char helo_name[256];

    struct {
        smtp_expect kind;
        size_t count;
    } pending[SMTP_PENDING_RUNS];
    unsigned pending_head, pending_runs;
    size_t awaiting;         /* replies awaited, all runs together */

    /* AUTH (auth.c) */
    sasl_lib *sasl;          /* owned, made when AUTH starts */
    sasl_exchange *auth;     /* owned, during an exchange */
    char mech[SASL_MECH_MAX];
    sasl_status auth_last;   /* the exchange's last step */
    char *auth_left;         /* owned: the offered mechanisms not tried yet,
                                for the one fallback after 504/534/538 */
    unsigned auth_attempts;  /* AUTH commands sent */
    bool auth_pipelined;     /* the transaction follows AUTH in one write */
    bool auth_failed;        /* ... and AUTH was refused: auth_err says why */
    bool auth_answered;      /* ... and its final reply came (235 or refusal) */
    bool auth_retry;         /* ... with a code that allows one fallback */
    hato_error auth_err;

    /* The transaction (transaction.c) */
    mail_plan plan;
    bool pipelining;
    bool mail_answered, mail_refused;
    size_t rcpt_sent, rcpt_answered;
    size_t bdat_sent, bdat_answered;
    bool chunk_refused;      /* a BDAT was refused: no more chunks */
    bool txn_failed;         /* the envelope failed: no more chunks */
    hato_error first_refusal; /* why the envelope failed, kept for the error */
    body_encoder body;
    bool body_done;          /* the end of data (dot or BDAT LAST) is out */
    bool quit_sent;
    bool settled;            /* the message's outcome is final; the message
                                may be freed by its owner from here on */

    hato_error err;

    /* Channel bindings of the TLS link (smtp_set_channel_binding), for
     * AUTH; len 0 when the link offers none of that type.  Wiped in
     * smtp_free. */
    unsigned char cb_exporter[SMTP_CB_MAX];
    size_t cb_exporter_len;
    unsigned char cb_unique[SMTP_CB_MAX];
    size_t cb_unique_len;

    /* Probe mode (hato_client_probe): report what is learnt, stop before MAIL. */
    hato_probe_fn report;    /* NULL when sending */
    void *report_user;
};

/* smtp.c */
void smtp_set_state(smtp *s, smtp_state next);
/* Writes one command line awaiting a reply of kind; trace is what the log
 * shows instead of the line when it carries a secret (NULL: the line). */
void smtp_command(smtp *s, smtp_expect kind, const char *trace, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Awaits a reply to bytes written without smtp_command (the end of data,
 * a BDAT chunk). */
void smtp_await(smtp *s, smtp_expect kind);
void smtp_enter_quit(smtp *s);
/* A refusal by the server: record it and say goodbye. */
void smtp_fail_reply(smtp *s, hato_code code, const reply *r, const char *what);
const char *smtp_state_label(smtp_state st);

/* auth.c */
void auth_enter(smtp *s);
void auth_on_reply(smtp *s, const reply *r);
/* After a pipelined AUTH was refused and the transaction that followed it
 * is over unsent: true when another mechanism is being tried. */
bool auth_fall_back(smtp *s);
void auth_free(smtp *s);

/* transaction.c */
/* Decides how the message goes (mail_plan); false when it cannot go to
 * this server, with the failure recorded and the transaction ended. */
bool txn_plan(smtp *s);
/* Writes MAIL (and with PIPELINING every RCPT and DATA, or the first BDAT
 * chunk), after txn_plan. */
void txn_start(smtp *s);
void txn_on_reply(smtp *s, smtp_expect kind, const reply *r);
/* More body into the output when the transaction may send it. */
void txn_pump(smtp *s);
bool txn_wants_write(const smtp *s);
/* The transaction's outcome is final: with keep-alive the connection
 * stays (RSET first unless clean); otherwise goodbye. */
void txn_end(smtp *s, bool clean);

#endif
