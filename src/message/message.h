/*
 * message.h - the envelope and content source of one message, and each
 * recipient's outcome.
 */
#ifndef HATO_MESSAGE_MESSAGE_H
#define HATO_MESSAGE_MESSAGE_H

#include "hato.h"
#include "reply/reply.h"

/* A recipient's RCPT reply is kept short: it is for reports. */
#define RCPT_TEXT_MAX 256

typedef struct rcpt {
    char *address;                     /* owned */
    int reply_code;                    /* 0 until its RCPT was answered */
    char enhanced[REPLY_ENHANCED_MAX];
    char text[RCPT_TEXT_MAX];
} rcpt;

struct hato_message {
    char *sender;          /* owned; "" for <> */
    rcpt *rcpts;           /* owned array */
    size_t nrcpts, rcptcap;
    hato_read_fn reader;   /* borrowed callback */
    void *reader_user;
    const char *content;   /* borrowed, when set_content was used */
    size_t content_len, content_pos;
    hato_body body;        /* declared BODY= (HATO_BODY_AUTO: decided at MAIL) */
    uint64_t size_hint;    /* hato_message_set_size, 0 when not given */
    bool utf8_headers;     /* hato_message_set_smtputf8 */
    bool requiretls;
    unsigned dsn_notify;   /* HATO_DSN_* bits, 0 for the server's default */
    hato_dsn_ret dsn_ret;
    char dsn_envid[101];   /* "" when none */
    bool sent;             /* the final dot was accepted */
    rcpt data_reply;       /* the reply to the final dot (address unused) */
};

/* Clears outcomes and rewinds in-memory content before a send. */
void message_reset(hato_message *m);
/* Pulls up to cap content bytes; 0 at the end, -1 on the reader's error. */
ptrdiff_t message_read(hato_message *m, char *dst, size_t cap);
void message_record_rcpt(hato_message *m, size_t i, const reply *r);
void message_record_data(hato_message *m, const reply *r);
/* Recipients the server accepted. */
size_t message_accepted(const hato_message *m);

#endif
