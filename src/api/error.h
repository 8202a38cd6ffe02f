/*
 * error.h - building the one error object every layer reports through.
 */
#ifndef HATO_API_ERROR_H
#define HATO_API_ERROR_H

#include "hato.h"
#include "reply/reply.h"

/* Room for one line to a person, and for the server's reply text. */
#define ERROR_MESSAGE_MAX 1024
#define ERROR_SERVER_TEXT_MAX 512

struct hato_error {
    hato_code code;
    hato_layer layer;
    bool temporary;
    int reply_code;
    char enhanced[REPLY_ENHANCED_MAX];
    char server_text[ERROR_SERVER_TEXT_MAX];
    char message[ERROR_MESSAGE_MAX];
};

void error_clear(hato_error *e);
/* Sets a failure that did not come from a server reply. */
void error_set(hato_error *e, hato_code code, hato_layer layer, bool temporary,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Sets a failure caused by reply r: temporary follows its class (4xx), the
 * reply code, enhanced code and text are recorded, and the message is fmt
 * followed by ": " and the reply. */
void error_set_reply(hato_error *e, hato_code code, const reply *r,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* True once set. */
static inline bool error_is_set(const hato_error *e) { return e->code != HATO_OK; }

#endif
