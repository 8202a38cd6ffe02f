#include "api/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Indexed by hato_code; append only, like the codes. */
static const char *const code_names[] = {
    "HATO_OK", "HATO_E_NOMEM", "HATO_E_ARGUMENT", "HATO_E_STATE",
    "HATO_E_RESOLVE", "HATO_E_CONNECT", "HATO_E_TIMEOUT", "HATO_E_NETWORK",
    "HATO_E_TLS", "HATO_E_TLS_VERIFY", "HATO_E_TLS_REQUIRED",
    "HATO_E_PROTOCOL", "HATO_E_REPLY", "HATO_E_AUTH", "HATO_E_AUTH_MECH",
    "HATO_E_SASL", "HATO_E_RECIPIENTS", "HATO_E_BODY", "HATO_E_CONFIG",
    "HATO_E_TOO_BIG", "HATO_E_EXTENSION",
};

const char *hato_code_name(hato_code code)
{
    if ((size_t)code < sizeof code_names / sizeof code_names[0])
        return code_names[code];
    return "HATO_E_UNKNOWN";
}

void error_clear(hato_error *e)
{
    memset(e, 0, sizeof *e);
}

void error_set(hato_error *e, hato_code code, hato_layer layer, bool temporary,
               const char *fmt, ...)
{
    error_clear(e);
    e->code = code;
    e->layer = layer;
    e->temporary = temporary;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

void error_set_reply(hato_error *e, hato_code code, const reply *r,
                     const char *fmt, ...)
{
    error_clear(e);
    e->code = code;
    e->layer = code == HATO_E_AUTH ? HATO_LAYER_SASL : HATO_LAYER_SMTP;
    e->temporary = reply_class(r) == 4;
    e->reply_code = r->code;
    snprintf(e->enhanced, sizeof e->enhanced, "%s", r->enhanced);
    reply_join(r, e->server_text, sizeof e->server_text);

    char what[ERROR_MESSAGE_MAX - ERROR_SERVER_TEXT_MAX - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(e->message, sizeof e->message, "%s: %d%s%s %s", what, r->code,
             r->enhanced[0] ? " " : "", r->enhanced, e->server_text);
}

hato_code hato_error_code(const hato_error *e) { return e->code; }
hato_layer hato_error_layer(const hato_error *e) { return e->layer; }
bool hato_error_temporary(const hato_error *e) { return e->temporary; }
int hato_error_reply_code(const hato_error *e) { return e->reply_code; }
const char *hato_error_enhanced_code(const hato_error *e) { return e->enhanced; }
const char *hato_error_server_text(const hato_error *e) { return e->server_text; }
const char *hato_error_message(const hato_error *e) { return e->message; }
