/*
 * transaction.c - one mail transaction: MAIL FROM and RCPT TO with their
 * ESMTP parameters, then the content after DATA or in BDAT chunks (RFC
 * 5321, 2920, 3030), and each recipient's outcome.
 *
 * With PIPELINING the whole envelope goes in one write, and with CHUNKING
 * the first chunk of content goes with it: a message that fits in one
 * chunk is one write, "BDAT n LAST" and QUIT included.  Later chunks wait
 * until the envelope's replies say someone will receive them; behind a
 * pipelined AUTH even the first waits for the login's 235 (may_pump).
 */
#include <stdio.h>
#include <string.h>

#include "session/smtp_private.h"
#include "util/secret.h"

/* Content pulled per piece: one full TLS record's worth, in fixed memory
 * whatever the message size (the bytes of a thousand sessions at once are
 * what an event loop pays for). */
#define BODY_PIECE (16 * 1024)
/* "BDAT 18446744073709551615 LAST\r\n" */
#define BDAT_HEADER_MAX 32

static bool link_verified(const smtp *s)
{
    hato_tls_level l = s->opt->tls_level;
    return s->tls_active &&
           (l == HATO_TLS_VERIFY || l == HATO_TLS_SECURE || l == HATO_TLS_FINGERPRINT);
}

bool txn_plan(smtp *s)
{
    mail_link link = {
        .caps = &s->caps,
        .tls_verified = link_verified(s),
        .host = s->opt->host,
    };
    if (mail_plan_make(&s->plan, s->msg, &link, &s->err))
        return true;
    log_line(s->log, HATO_LOG_INFO, "%s", s->err.message);
    s->settled = true;
    /* Nothing of this message was sent.  An idle connection stays for the
     * next message; one not yet logged in has no use left. */
    if (s->state != SMTP_IDLE)
        smtp_enter_quit(s);
    return false;
}

void txn_end(smtp *s, bool clean)
{
    s->settled = true;
    /* A connection whose login failed carries no next message. */
    if (s->opt->keep_alive_ms == 0 || s->report != NULL || s->auth_failed) {
        smtp_enter_quit(s);
    } else if (clean) {
        smtp_set_state(s, SMTP_IDLE);
        /* Nothing is waiting to go: give the memory back while idle (and
         * wipe what AUTH left in it). */
        if (buf_size(&s->out) == 0)
            buf_free_wipe(&s->out);
    } else {
        /* RFC 5321 4.1.1.5 (and RFC 3030 after a refused chunk). */
        smtp_set_state(s, SMTP_RSET);
        smtp_command(s, EXPECT_RSET, NULL, "RSET");
    }
}

/* Every RCPT was refused: the first refusal stands for all. */
static void fail_all_refused(smtp *s)
{
    const rcpt *first = &s->msg->rcpts[0];
    error_set(&s->err, HATO_E_RECIPIENTS, HATO_LAYER_SMTP, first->reply_code / 100 == 4,
              "the server refused every recipient; first: <%s>: %d %s", first->address,
              first->reply_code, first->text);
    s->err.reply_code = first->reply_code;
    snprintf(s->err.enhanced, sizeof s->err.enhanced, "%s", first->enhanced);
    snprintf(s->err.server_text, sizeof s->err.server_text, "%s", first->text);
}

/* Why the transaction failed, the most telling cause first: a refused
 * login explains the refusals after it. */
static void set_failure(smtp *s, const reply *last, const char *what)
{
    hato_message *m = s->msg;
    if (s->auth_failed)
        s->err = s->auth_err;
    else if (s->mail_refused)
        // NOLINTNEXTLINE(bugprone-branch-clone): an order of precedence; two causes, one error
        s->err = s->first_refusal;
    else if (s->rcpt_answered == m->nrcpts && message_accepted(m) == 0)
        fail_all_refused(s);
    else if (error_is_set(&s->first_refusal))
        s->err = s->first_refusal;
    else if (last != NULL)
        error_set_reply(&s->err, HATO_E_REPLY, last, "%s", what);
}

/* The transaction is over unsent (or sent despite a refused login). */
static void finish(smtp *s, bool clean)
{
    if (s->auth_failed && !s->msg->sent) {
        hato_error why = s->err;
        error_clear(&s->err);
        if (auth_fall_back(s))
            return; /* the message goes again after the next login */
        s->err = why;
    }
    txn_end(s, clean);
}

static bool envelope_answered(const smtp *s)
{
    return s->mail_answered && s->rcpt_answered == s->msg->nrcpts;
}

static bool envelope_failed(const smtp *s)
{
    return s->mail_refused || (envelope_answered(s) && message_accepted(s->msg) == 0);
}

/* ------------------------------------------------------------------ */
/* The envelope                                                       */

static void send_mail(smtp *s)
{
    char line[PARAMS_LINE_MAX];
    if (!mail_from_line(&s->plan, s->msg, line, sizeof line)) {
        smtp_fail(s, HATO_E_ARGUMENT, HATO_LAYER_MESSAGE, false,
                  "the MAIL command for <%s> is too long", s->msg->sender);
        return;
    }
    smtp_command(s, EXPECT_MAIL, NULL, "%s", line);
}

static void send_rcpt(smtp *s)
{
    char line[PARAMS_LINE_MAX];
    size_t i = s->rcpt_sent++;
    if (!rcpt_to_line(&s->plan, s->msg, i, line, sizeof line)) {
        smtp_fail(s, HATO_E_ARGUMENT, HATO_LAYER_MESSAGE, false,
                  "the RCPT command for <%s> is too long", s->msg->rcpts[i].address);
        return;
    }
    smtp_command(s, EXPECT_RCPT, NULL, "%s", line);
}

/* Every RCPT is out: DATA, or straight into the content with BDAT. */
static void envelope_sent(smtp *s)
{
    if (s->plan.chunking)
        smtp_set_state(s, SMTP_BODY);
    else
        smtp_command(s, EXPECT_DATA, NULL, "DATA");
}

void txn_start(smtp *s)
{
    if (s->report != NULL) {
        /* A probe ends where a message would begin. */
        smtp_report(s, "ready: a message can be sent with these settings%s",
                    s->tls_active ? "" : " (without TLS)");
        smtp_enter_quit(s);
        return;
    }
    hato_message *m = s->msg;
    s->pipelining = (s->caps.flags & EHLO_PIPELINING) != 0;
    s->mail_answered = s->mail_refused = false;
    s->rcpt_sent = s->rcpt_answered = s->bdat_sent = s->bdat_answered = 0;
    s->chunk_refused = s->txn_failed = s->body_done = false;
    error_clear(&s->first_refusal);
    body_init(&s->body, s->plan.body_mode);
    smtp_set_state(s, SMTP_ENVELOPE);
    send_mail(s);
    if (!s->pipelining)
        return;
    /* RFC 2920: MAIL and every RCPT anywhere in a group, DATA last. */
    while (s->rcpt_sent < m->nrcpts && s->state == SMTP_ENVELOPE)
        send_rcpt(s);
    if (s->state == SMTP_ENVELOPE)
        envelope_sent(s);
}

/* ------------------------------------------------------------------ */
/* The content                                                        */

static void fail_8bit(smtp *s)
{
    if (s->msg->body == HATO_BODY_7BIT)
        error_set(&s->err, HATO_E_ARGUMENT, HATO_LAYER_MESSAGE, false,
                  "the message was declared 7BIT but holds 8-bit bytes; it was not "
                  "delivered (declare it 8BITMIME)");
    else
        error_set(&s->err, HATO_E_EXTENSION, HATO_LAYER_MESSAGE, false,
                  "the message holds 8-bit bytes but %s does not offer 8BITMIME; it was "
                  "not delivered (encode it as quoted-printable or base64, or use a relay "
                  "that takes 8-bit mail)", s->opt->host);
    snprintf(s->err.enhanced, sizeof s->err.enhanced, "5.6.3");
    /* Dropping the connection before the end of data: the server throws
     * the partial message away. */
    smtp_fail(s, s->err.code, HATO_LAYER_MESSAGE, false, "%s", s->err.message);
}

static void fail_reader(smtp *s)
{
    /* Never end the data of a body we could not read whole: the server
     * would deliver it truncated.  Drop the connection. */
    smtp_fail(s, HATO_E_BODY, HATO_LAYER_MESSAGE, true,
              "reading the message failed after %llu bytes; the message was not sent",
              s->body.bytes_in);
}

/* The end of data is out: wait for its reply, saying goodbye in the same
 * write when the connection is not kept (RFC 2920: QUIT ends a group). */
static void content_sent(smtp *s)
{
    s->body_done = true;
    log_line(s->log, HATO_LOG_TRACE, "> [%llu bytes of message]", s->body.bytes_in);
    smtp_set_state(s, SMTP_DOT);
    if (s->pipelining && s->opt->keep_alive_ms == 0 && s->report == NULL && !s->quit_sent) {
        smtp_command(s, EXPECT_QUIT, NULL, "QUIT");
        s->quit_sent = true;
    }
}

/* After DATA's 354: one piece of content, dot-stuffed, or the end.  The
 * piece is encoded on the stack and appended at its exact size, so the
 * output buffer never holds room for the worst case. */
static void pump_data(smtp *s)
{
    char piece[BODY_PIECE];
    char encoded[2 * BODY_PIECE + BODY_FINISH_MAX];
    ptrdiff_t n = message_read(s->msg, piece, sizeof piece);
    if (n < 0) {
        fail_reader(s);
        return;
    }
    size_t len = body_encode(&s->body, piece, (size_t)n, encoded);
    if (s->plan.refuse_8bit && s->body.eight_bit) {
        fail_8bit(s);
        return;
    }
    if (n == 0)
        len += body_finish(&s->body, encoded + len);
    if (!buf_append(&s->out, encoded, len)) {
        smtp_fail(s, HATO_E_NOMEM, HATO_LAYER_SMTP, true, "out of memory for the output buffer");
        return;
    }
    if (n > 0)
        return;
    log_line(s->log, HATO_LOG_TRACE, "> .");
    smtp_await(s, EXPECT_DOT);
    content_sent(s);
}

/* One BDAT chunk: the piece is filled as far as the content goes, so a
 * message that fits is a single "BDAT n LAST". */
static void pump_chunk(smtp *s)
{
    char piece[BODY_PIECE];
    char encoded[BDAT_HEADER_MAX + 2 * BODY_PIECE + BODY_FINISH_MAX];
    size_t n = 0;
    bool last = false;
    while (n < sizeof piece) {
        ptrdiff_t k = message_read(s->msg, piece + n, sizeof piece - n);
        if (k < 0) {
            fail_reader(s);
            return;
        }
        if (k == 0) {
            last = true;
            break;
        }
        n += (size_t)k;
    }
    /* Encoded behind room for the header, whose length depends on the
     * encoded size; the header then goes right in front. */
    char *data = encoded + BDAT_HEADER_MAX;
    size_t len = body_encode(&s->body, piece, n, data);
    if (last)
        len += body_finish(&s->body, data + len);
    if (s->plan.refuse_8bit && s->body.eight_bit) {
        fail_8bit(s);
        return;
    }
    char head[BDAT_HEADER_MAX + 1];
    int h = snprintf(head, sizeof head, "BDAT %zu%s\r\n", len, last ? " LAST" : "");
    memcpy(data - h, head, (size_t)h);
    if (!buf_append(&s->out, data - h, (size_t)h + len)) {
        smtp_fail(s, HATO_E_NOMEM, HATO_LAYER_SMTP, true, "out of memory for the output buffer");
        return;
    }
    log_line(s->log, HATO_LOG_TRACE, "> BDAT %zu%s", len, last ? " LAST" : "");
    s->bdat_sent++;
    smtp_await(s, EXPECT_BDAT);
    if (last)
        content_sent(s);
}

static bool envelope_ok(const smtp *s)
{
    return envelope_answered(s) && !envelope_failed(s);
}

/* Whether more content may go now. */
static bool may_pump(const smtp *s)
{
    if (s->state != SMTP_BODY || s->body_done)
        return false;
    if (!s->plan.chunking)
        return true; /* after 354 */
    if (s->txn_failed || s->chunk_refused)
        return false;
    /* Without PIPELINING each chunk waits for the last one's reply. */
    if (!s->pipelining && s->awaiting > 0)
        return false;
    /* Behind a pipelined AUTH the content waits for the replies to the
     * login and the envelope (they come in one flight), and never follows
     * a refusal: a server that refuses the login may not know BDAT before
     * it (Dovecot 2.3's submission-login answers 530 and reads the chunk's
     * lines as commands), so the message would be spoken to it as SMTP. */
    if (s->auth_pipelined)
        return s->auth_answered && !s->auth_failed && envelope_ok(s);
    /* The first chunk rides with the envelope; the rest wait to hear that
     * someone will receive them. */
    return s->bdat_sent == 0 || envelope_ok(s);
}

bool txn_wants_write(const smtp *s)
{
    return may_pump(s);
}

void txn_pump(smtp *s)
{
    if (!may_pump(s) || buf_size(&s->out) >= BODY_PIECE)
        return;
    if (s->plan.chunking)
        pump_chunk(s);
    else
        pump_data(s);
}

/* ------------------------------------------------------------------ */
/* Replies                                                            */

static void on_mail(smtp *s, const reply *r)
{
    s->mail_answered = true;
    if (reply_class(r) == 2)
        return;
    error_set_reply(&s->first_refusal, HATO_E_REPLY, r, "sender <%s> refused", s->msg->sender);
    s->mail_refused = true;
}

static void on_rcpt(smtp *s, const reply *r)
{
    hato_message *m = s->msg;
    size_t i = s->rcpt_answered++;
    message_record_rcpt(m, i, r);
    if (reply_class(r) != 2)
        log_line(s->log, HATO_LOG_INFO, "recipient <%s> refused: %d %s", m->rcpts[i].address,
                 r->code, r->nlines ? r->lines[0] : "");
}

/* The reply to the end of data: the dot, or BDAT LAST. */
static void on_final(smtp *s, const reply *r)
{
    hato_message *m = s->msg;
    message_record_data(m, r);
    if (reply_class(r) == 2 && !s->mail_refused && message_accepted(m) > 0) {
        m->sent = true;
        log_line(s->log, HATO_LOG_INFO, "message accepted by %s: %d %s", s->opt->host, r->code,
                 r->nlines ? r->lines[0] : "");
        if (s->auth_failed)
            log_line(s->log, HATO_LOG_WARNING, "%s took the message although it refused the "
                     "login (%s)", s->opt->host, s->auth_err.message);
        txn_end(s, true);
        return;
    }
    set_failure(s, r, "message refused at end of data");
    log_line(s->log, HATO_LOG_DEBUG, "smtp: %s", s->err.message);
    /* A refused dot ends the transaction on the server too; after a
     * refused chunk RFC 3030 asks for RSET. */
    finish(s, !s->plan.chunking);
}

static void on_data(smtp *s, const reply *r)
{
    hato_message *m = s->msg;
    if (r->code == 354 && !s->mail_refused && message_accepted(m) > 0) {
        smtp_set_state(s, SMTP_BODY);
        return;
    }
    set_failure(s, r, "DATA refused");
    if (r->code == 354) {
        /* The server wants data we will not send: an empty message closes
         * the transaction.  Its reply changes nothing; goodbye. */
        buf_append(&s->out, ".\r\n", 3);
        log_line(s->log, HATO_LOG_TRACE, "> .");
        smtp_await(s, EXPECT_DOT);
        s->settled = true;
        smtp_enter_quit(s);
        return;
    }
    finish(s, false);
}

static void on_bdat(smtp *s, const reply *r)
{
    s->bdat_answered++;
    if (s->body_done && s->bdat_answered == s->bdat_sent) {
        on_final(s, r);
        return;
    }
    if (reply_class(r) != 2 && !s->chunk_refused) {
        s->chunk_refused = true;
        if (!error_is_set(&s->first_refusal))
            error_set_reply(&s->first_refusal, HATO_E_REPLY, r, "message data refused");
    }
}

/* After a reply to MAIL, RCPT or a BDAT before the last: the next command
 * without PIPELINING, or the end of a failed transaction. */
static void progress(smtp *s)
{
    hato_message *m = s->msg;
    if (!s->pipelining && s->state == SMTP_ENVELOPE) {
        /* One command at a time: is the next one worth sending? */
        if (envelope_failed(s)) {
            set_failure(s, NULL, "");
            finish(s, false);
        } else if (s->rcpt_sent < m->nrcpts) {
            send_rcpt(s);
        } else {
            envelope_sent(s);
        }
        return;
    }
    if (!s->plan.chunking || s->body_done)
        return; /* DATA's reply, or BDAT LAST's, decides */
    /* A refused pipelined login ends it too, even where the server took
     * the envelope: no content goes (may_pump). */
    if (envelope_failed(s) || s->chunk_refused || (s->auth_pipelined && s->auth_failed)) {
        s->txn_failed = true;
        if (envelope_answered(s) && s->bdat_answered == s->bdat_sent) {
            set_failure(s, NULL, "");
            finish(s, false);
        }
    }
}

void txn_on_reply(smtp *s, smtp_expect kind, const reply *r)
{
    if (s->settled)
        return; /* e.g. the reply to an abandoned DATA's dot */
    switch (kind) {
    case EXPECT_MAIL: on_mail(s, r); break;
    case EXPECT_RCPT: on_rcpt(s, r); break;
    case EXPECT_DATA: on_data(s, r); return;
    case EXPECT_BDAT:
        on_bdat(s, r);
        if (s->settled || s->state == SMTP_DONE)
            return;
        break;
    case EXPECT_DOT: on_final(s, r); return;
    default: return;
    }
    progress(s);
}
